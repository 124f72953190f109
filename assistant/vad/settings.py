"""End-of-speech settings: the knobs users of voice assistants most often need to turn."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SegmenterSettings:
    """How speech is cut into commands. Defaults follow Home Assistant's segmenter (0.3 s of
    speech to start, 0.7 s of silence to end, 0.5 s pre-roll, 15 s limit, 1 s minimum), checked
    against the committed Piper speech and white noise (see README, "Listening")."""

    aggressiveness: int = 3
    """webrtcvad mode, 0 (lenient) to 3 (strict). Mode 3 rejects -30 dBFS white noise; modes
    0-1 take it for speech and never end a command in a noisy room."""

    speech_seconds: float = 0.3
    """Speech needed before a command starts. Longer than webrtcvad's 90-120 ms warm-up burst
    on noise and than clicks, shorter than a one-word command ("stop" is ~0.4 s)."""

    gap_seconds: float = 0.09
    """Non-speech this short inside the speech that starts a command does not restart the count
    (webrtcvad drops a frame or two inside words, e.g. between the 's' and 'top' of "stop")."""

    silence_seconds: float = 0.7
    """The long window: silence that ends a command whatever was said. 0.25 s answers faster
    but may cut slow speakers; 1.25 s suits people who pause while they think."""

    pause_seconds: float = 0.21
    """The short window: silence after which the command so far is recognised speculatively.
    When that is a complete command of the grammar that no longer command extends ("turn off
    the kitchen lights"), it is closed and acted on at once instead of after `silence_seconds`;
    otherwise ("set a timer for ...") the command stays open. At least `postroll_seconds`, so
    the speculative audio is the audio the long window would cut (and its recognition is reused).
    0 turns speculation off."""

    blip_seconds: float = 0.06
    """Speech this short inside the closing silence counts as silence, so a click or a burst of
    noise cannot hold a command open (the end-of-speech that hangs for 10 s)."""

    preroll_seconds: float = 0.5
    """Audio kept from before the detected start: the soft first consonant that the VAD missed."""

    postroll_seconds: float = 0.2
    """Audio kept after the last speech frame: webrtcvad often marks a final consonant as silence."""

    max_seconds: float = 15.0
    """A command is cut at this length even if the speech goes on (TV, music, a monologue)."""

    min_seconds: float = 1.0
    """Silence cannot end a command sooner than this after its start, so a hesitation after the
    first word does not cut it. Nothing shorter is discarded: "stop" still registers, and with
    the default silence it ends no later (0.4 s of speech + 0.7 s > 1 s)."""

    mute_tail_seconds: float = 0.3
    """Frames heard while the assistant itself speaks are ignored, and this long after it stops
    (room echo, playback buffers), so it never answers itself."""

    barge_in_pause_seconds: float = 0.12
    """While a reply plays (barge-in), the pause after which speech is checked against the stop
    set: short, because the reply must stop within 300 ms of the end of "stop" and recognition
    and the device's latency take the rest. Longer than the 60-90 ms webrtcvad loses inside
    "stop"."""

    barge_in_max_seconds: float = 2.0
    """Speech heard while a reply plays is cut at this length: every stop phrase is shorter, and
    a long stretch (a TV, the reply's own echo) is not held open."""

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3 or int(self.aggressiveness) != self.aggressiveness:
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {self.aggressiveness!r}")
        for name in ("speech_seconds", "silence_seconds", "max_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("gap_seconds", "blip_seconds", "preroll_seconds", "postroll_seconds", "min_seconds", "mute_tail_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        for name in ("barge_in_pause_seconds", "barge_in_max_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.pause_seconds < 0:
            raise ValueError(f"pause_seconds must not be negative, got {self.pause_seconds!r}")
        if self.pause_seconds >= self.silence_seconds:
            raise ValueError(f"pause_seconds ({self.pause_seconds}) must be shorter than silence_seconds ({self.silence_seconds})")
        if self.max_seconds < self.speech_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds}) is shorter than speech_seconds ({self.speech_seconds})")


    def windows(self, *, silence: float | None = None, pause: float | None = None) -> SegmenterSettings:
        """These settings with another long (`silence`) and/or short (`pause`) window; a long
        window given alone keeps the short one below it (at most half of it)."""
        silence = self.silence_seconds if silence is None else silence
        if pause is None:
            pause = min(self.pause_seconds, silence / 2)
        return replace(self, silence_seconds=silence, pause_seconds=pause)


def to_frames(seconds: float, frame_seconds: float) -> int:
    """Whole frames covering `seconds` (rounded up, so a setting is never undercut)."""
    return math.ceil(seconds / frame_seconds - 1e-9)
