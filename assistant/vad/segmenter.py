"""The end-of-speech state machine: booleans in, events out.

Pure on purpose (no audio, no clock, no VAD): each setting can be tested with a list of
"this frame is speech" values, like Home Assistant's VoiceCommandSegmenter. Whether what was
said so far is a complete command is an input too (`complete()`), not a dependency on a model:
at the first pause (`SpeechPaused`) the caller may recognise the command so far and, when it is
complete, end it at once instead of waiting for the long silence window. Frames are
numbered from 0 in the order `process` sees them; events carry frame numbers, and the caller
turns them into seconds and audio.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.vad.settings import SegmenterSettings, to_frames


@dataclass(frozen=True)
class SpeechStarted:
    """A command started. `start_frame`: its first speech frame; `detected_frame`: the frame at
    which enough speech had been heard to say so (speech_seconds later)."""

    start_frame: int
    detected_frame: int


@dataclass(frozen=True)
class SpeechEnded:
    """A command ended. `end_frame` is one past its last speech frame (the silence that ended
    it is not part of it); `closed_frame` is the frame at which it was decided. `reason`:
    "silence", "complete" (the caller said so at a pause), "max_length" (cut at max_seconds)
    or "end_of_input" (flush)."""

    start_frame: int
    end_frame: int
    closed_frame: int
    reason: str
    barge_in: bool = False
    """It started while a reply played: only the stop set may match it."""


@dataclass(frozen=True)
class SpeechPaused:
    """The command has been silent for `pause_seconds`: a good moment to ask whether it is
    complete. `end_frame` is one past its last speech frame; `frame` the frame of the pause.
    Sent once per pause (again only after speech resumes and pauses again)."""

    start_frame: int
    end_frame: int
    frame: int
    barge_in: bool = False
    """It started while a reply played (paused after `barge_in_pause_seconds`)."""


Event = SpeechStarted | SpeechPaused | SpeechEnded


class Segmenter:
    """Turns per-frame speech decisions into SpeechStarted / SpeechEnded events."""

    def __init__(self, settings: SegmenterSettings = SegmenterSettings(), frame_seconds: float = 0.03) -> None:
        self.settings = settings
        self.frame_seconds = frame_seconds
        self.speech_frames = max(1, to_frames(settings.speech_seconds, frame_seconds))
        self.gap_frames = to_frames(settings.gap_seconds, frame_seconds)
        self.silence_frames = max(1, to_frames(settings.silence_seconds, frame_seconds))
        self.pause_frames = to_frames(settings.pause_seconds, frame_seconds)
        self.blip_frames = to_frames(settings.blip_seconds, frame_seconds)
        self.max_frames = max(self.speech_frames, to_frames(settings.max_seconds, frame_seconds))
        self.min_frames = to_frames(settings.min_seconds, frame_seconds)
        self.tail_frames = to_frames(settings.mute_tail_seconds, frame_seconds)
        self.barge_pause_frames = max(1, to_frames(settings.barge_in_pause_seconds, frame_seconds))
        self.barge_max_frames = max(self.speech_frames, to_frames(settings.barge_in_max_seconds, frame_seconds))
        self.frame_index = 0
        """Frames processed so far (the next frame's number)."""
        self.in_command = False
        self.ignoring = False
        """True when the last frame was ignored (muted, or within the tail after muting)."""
        self._mute_left = 0
        self._start = 0
        self._count = 0  # before a command: speech frames toward speech_frames
        self._gap = 0  # before a command: non-speech frames since the last speech frame
        self._run = 0  # consecutive speech frames up to this one
        self._silence = 0  # in a command: frames of silence (blips included) since real speech
        self._last_speech_end = 0
        self._barge = False  # the command in progress started in barge-in mode
        self._barge_mode = False  # the last frame was fed in barge-in mode

    def process(self, is_speech: bool, muted: bool = False, barge_in: bool = False) -> list[Event]:
        """Feed one frame's decision. `muted`: the assistant is speaking and nothing is heard
        (the frame is ignored, and `mute_tail_seconds` after). `barge_in`: the assistant is
        speaking and the stop set is listened for: the frame counts, and a command that starts
        now is a barge-in command (its own short pause and length limit; its events say so).
        Telling the reply's echo from speech is the caller's: it passes `is_speech` False for echo."""
        self._barge_mode = barge_in and not muted
        index = self.frame_index
        self.frame_index += 1
        if muted:
            self._mute_left = self.tail_frames
            self.ignoring = True
        elif self._mute_left > 0:
            self._mute_left -= 1
            self.ignoring = True
        else:
            self.ignoring = False
        speech = bool(is_speech) and not self.ignoring
        self._run = self._run + 1 if speech else 0
        if not self.in_command:
            return self._before_command(index, speech)
        return self._in_command(index, speech)

    def complete(self, start_frame: int, end_frame: int) -> list[Event]:
        """The caller found the command that started at `start_frame`, up to `end_frame`,
        complete (and acted on it): it ends there, with reason "complete". Speech heard since
        that pause is cut off with it (what was acted on must not be heard again); a command that
        already ended, or another one, is left alone."""
        if not self.in_command or self._start != start_frame or end_frame > self._last_speech_end:
            return []
        return [self._end(end_frame, self.frame_index - 1, "complete")]

    def flush(self) -> list[Event]:
        """End of input: a command in progress ends at its last speech frame."""
        if not self.in_command:
            self._count = self._gap = 0
            return []
        return [self._end(self._last_speech_end, self.frame_index - 1, "end_of_input")]

    def _before_command(self, index: int, speech: bool) -> list[Event]:
        if not speech:
            if self._count:
                self._gap += 1
                if self._gap > self.gap_frames:
                    self._count = self._gap = 0
            return []
        if self._count == 0:
            self._start = index
        self._count += 1
        self._gap = 0
        if self._count < self.speech_frames:
            return []
        self.in_command = True
        self._barge = self._barge_mode
        self._silence = 0
        self._last_speech_end = index + 1
        return [SpeechStarted(self._start, index)]

    def _in_command(self, index: int, speech: bool) -> list[Event]:
        if speech and self._run > self.blip_frames:
            self._silence = 0
            self._last_speech_end = index + 1
        else:
            self._silence += 1
        length = index + 1 - self._start
        if length >= (self.barge_max_frames if self._barge else self.max_frames):
            return [self._end(index + 1, index, "max_length")]
        if self._silence >= self.silence_frames and length >= self.min_frames:
            return [self._end(self._last_speech_end, index, "silence")]
        pause = self.barge_pause_frames if self._barge else self.pause_frames
        if pause and self._silence == pause:
            return [SpeechPaused(self._start, self._last_speech_end, index, self._barge)]
        return []

    def _end(self, end_frame: int, closed_frame: int, reason: str) -> SpeechEnded:
        self.in_command = False
        self._count = self._gap = self._silence = 0
        return SpeechEnded(self._start, end_frame, closed_frame, reason, self._barge)
