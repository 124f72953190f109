"""webrtcvad + the segmenter + audio bookkeeping: 30 ms frames in, speech segments out."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import webrtcvad

from assistant.audio.format import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, pcm16_to_float
from assistant.vad.segmenter import Segmenter, SpeechEnded, SpeechPaused, SpeechStarted
from assistant.vad.settings import SegmenterSettings, to_frames

FRAME_SECONDS = FRAME_MS / 1000
_SILENT_FRAME = bytes(FRAME_BYTES)


@dataclass
class SpeechSegment:
    """One spoken command, cut from the stream.

    start / end: stream seconds of its first speech frame and one past its last (the silence
    that closed it excluded, so "end of speech -> handler" latency can leave it out).
    audio: float32 16 kHz mono from preroll before `start` to postroll after `end`.
    ended_at: stream seconds when the segment was closed (end + the silence window, or the
    pause at which it was found complete).
    reason: "silence", "complete", "max_length" or "end_of_input".
    barge_in: it started while a reply played (only the stop set may match it).
    """

    start: float
    end: float
    audio: np.ndarray = field(repr=False)
    ended_at: float = 0.0
    reason: str = "silence"
    barge_in: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class SpeechPause:
    """The command so far, at its first pause (`pause_seconds` of silence): what a speculative
    recognition hears. `key` names the command and the speech in it; the segment the long
    window would close has the same key (and audio) when no speech followed the pause."""

    start: float
    end: float
    audio: np.ndarray = field(repr=False)
    paused_at: float = 0.0
    """Stream seconds of the pause (end + pause_seconds)."""
    key: tuple[int, int] = (0, 0)
    """(first speech frame, one past the last): equal keys mean equal audio."""
    barge_in: bool = False
    """It started while a reply played (only the stop set may match it)."""


def segment_key(segment: SpeechSegment) -> tuple[int, int]:
    """The `SpeechPause.key` of the command this segment closed."""
    return round(segment.start / FRAME_SECONDS), round(segment.end / FRAME_SECONDS)


class VadSegmenter:
    """Feeds each frame to webrtcvad and the Segmenter, keeps the audio a segment needs.

    It counts frames for its own stream time (frame n starts at n * 30 ms), so it is as
    deterministic on a file as on a microphone. Frames fed with muted=True (the assistant is
    speaking) skip the VAD and are kept as silence, so its own voice never reaches a segment,
    not even through the pre-roll.
    """

    def __init__(self, settings: SegmenterSettings = SegmenterSettings()) -> None:
        self.settings = settings
        self.segmenter = Segmenter(settings, FRAME_SECONDS)
        self._vad = webrtcvad.Vad(int(settings.aggressiveness))
        self.preroll_frames = to_frames(settings.preroll_seconds, FRAME_SECONDS)
        self.postroll_frames = to_frames(settings.postroll_seconds, FRAME_SECONDS)
        seg = self.segmenter
        # While idle: the pre-roll plus everything since the first frame of a start still
        # being confirmed (at most speech_frames with gaps of gap_frames between them).
        self._recent: deque[bytes] = deque(maxlen=self.preroll_frames + seg.speech_frames * (seg.gap_frames + 1) + 1)
        self._recent_first = 0  # frame number of _recent[0]
        self._segment: list[bytes] | None = None
        self._segment_first = 0  # frame number of _segment[0]
        self.paused: SpeechPause | None = None
        """The command so far when the last frame fed made its first pause (else None)."""

    @property
    def in_speech(self) -> bool:
        """True while a command is being heard (for status displays)."""
        return self.segmenter.in_command

    @property
    def stream_seconds(self) -> float:
        """Stream time after the frames fed so far."""
        return self.segmenter.frame_index * FRAME_SECONDS

    def is_speech(self, frame: bytes) -> bool:
        """webrtcvad's decision for one frame (exactly FRAME_BYTES of s16le 16 kHz mono)."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame must be {FRAME_BYTES} bytes (30 ms s16le 16 kHz mono), got {len(frame)}")
        return self._vad.is_speech(frame, SAMPLE_RATE)

    def feed(self, frame: bytes, muted: bool = False, *, barge_in: bool = False,
             echo: bool = False) -> SpeechSegment | None:
        """One 30 ms frame in; a finished segment out when this frame closed one. When this frame
        made the first pause in a command, `paused` holds the command so far until the next frame.
        `barge_in`: a reply plays and the stop
        set is listened for (`Segmenter.process`); `echo`: the caller's echo check found this
        frame to be the reply's own sound, so it is not speech and is kept as silence (Whisper
        hears the person's frames, not the reply around them: with the echo kept, tiny.en gave
        up on "stop" spoken over a reply, average log-probability -1.75 to -2.7)."""
        speech = False if muted or echo else self.is_speech(frame)
        events = self.segmenter.process(speech, muted=muted, barge_in=barge_in)
        kept = _SILENT_FRAME if self.segmenter.ignoring or echo else frame
        index = self.segmenter.frame_index - 1
        if self._segment is not None:
            self._segment.append(kept)
        else:
            if len(self._recent) == self._recent.maxlen:
                self._recent_first += 1
            self._recent.append(kept)
        result = None
        self.paused = None
        for event in events:
            if isinstance(event, SpeechStarted):
                first = max(self._recent_first, event.start_frame - self.preroll_frames)
                self._segment = list(self._recent)[first - self._recent_first :]
                self._segment_first = first
            elif isinstance(event, SpeechPaused):
                self.paused = self._pause(event, index)
            elif isinstance(event, SpeechEnded):
                result = self._finish(event, index)
        return result

    def complete(self, pause: SpeechPause) -> SpeechSegment | None:
        """The command of `pause` was found complete (and acted on): end it at that pause. None
        when it has already ended (the long window, or the input ran out)."""
        for event in self.segmenter.complete(*pause.key):
            if isinstance(event, SpeechEnded):
                return self._finish(event, self.segmenter.frame_index - 1)
        return None

    def flush(self) -> SpeechSegment | None:
        """End of input: the command in progress, if any, as a segment."""
        events = self.segmenter.flush()
        for event in events:
            if isinstance(event, SpeechEnded):
                return self._finish(event, self.segmenter.frame_index - 1)
        return None

    def _pause(self, event: SpeechPaused, index: int) -> SpeechPause:
        stop = min(event.end_frame + self.postroll_frames, index + 1) - self._segment_first
        return SpeechPause(
            start=event.start_frame * FRAME_SECONDS,
            end=event.end_frame * FRAME_SECONDS,
            audio=pcm16_to_float(b"".join((self._segment or [])[:stop])),
            paused_at=(index + 1) * FRAME_SECONDS,
            key=(event.start_frame, event.end_frame),
            barge_in=event.barge_in,
        )

    def _finish(self, event: SpeechEnded, index: int) -> SpeechSegment:
        frames = self._segment or []
        stop = min(event.end_frame + self.postroll_frames, index + 1) - self._segment_first
        audio = pcm16_to_float(b"".join(frames[:stop]))
        # What followed the segment's end is the next one's possible pre-roll.
        self._recent.clear()
        self._recent.extend(frames[-self._recent.maxlen :])
        self._recent_first = index + 1 - len(self._recent)
        self._segment = None
        return SpeechSegment(
            start=event.start_frame * FRAME_SECONDS,
            end=event.end_frame * FRAME_SECONDS,
            audio=audio,
            ended_at=(index + 1) * FRAME_SECONDS,
            reason=event.reason,
            barge_in=event.barge_in,
        )
