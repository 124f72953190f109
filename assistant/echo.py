"""Is this microphone frame the assistant's own reply, or a person talking over it?

Barge-in keeps the listener open while a reply plays, so the reply leaking back into the
microphone must not count as speech. Where the audio server cancels echo (PulseAudio/PipeWire
`module-echo-cancel`, see `assistant doctor`) most of it is gone already; this check runs in every
case, against what the player says it is playing (`assistant.playback.reference.PlayedLevels`).

Measured on a simulated room (bench/bargein.py, "gate" table: the committed Piper chatter as
the reply, convolved with exponential-decay room responses of RT60 0.05-0.6 s, "stop" spoken
over it at 0 and -6 dB against the echo): a level ratio (microphone RMS against the loudest
reply block of the last `window_seconds`, scaled by the room's echo gain) let 0.2-4.5% of the
echo's speech frames through, scattered (a command needs 0.3 s of consecutive speech to start),
and caught "stop" in 67-100% of placements; a normalised cross-correlation test let 23-54%
through (a reverberant echo does not correlate with a 30 ms frame of the source); recognising
only while the reply is quiet never heard a "stop" spoken over speech. So: the level ratio.

The room's echo gain (how loud the reply comes back, relative to what is played) is learned
while replies play: the median microphone/reference ratio over the last frames in which the
reply was loud. A person talking now and then barely moves a median; until enough frames are
seen, a cautious prior is used.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from assistant.audio.format import SAMPLE_RATE
from assistant.playback.reference import PlayedLevels


@dataclass(frozen=True)
class EchoSettings:
    """How the echo check tells the reply's own sound from a person talking over it."""

    margin: float = 2.5
    """A frame is the person's when it is this many times louder (RMS; 2.5 = +8 dB) than the echo
    the reply would make: below, it is taken for echo. Lower hears quieter speakers and lets
    more echo through (bench/bargein.py)."""
    window_seconds: float = 0.3
    """How far back the reply is searched for the block that makes the echo: the output
    latency's uncertainty plus the room's reverberation."""
    quiet_dbfs: float = -50.0
    """Reply blocks quieter than this make no echo worth checking: the microphone is believed."""
    prior_gain: float = 1.0
    """Echo gain assumed until the room has been measured (1.0: the echo is as loud as the reply
    played, cautious for a speaker next to the microphone)."""
    learn_frames: int = 30
    """Loud reply frames needed before the measured gain replaces the prior (~1 s of reply)."""
    history_frames: int = 300
    """Loud reply frames the median gain is taken over (~9 s of reply)."""

    def __post_init__(self) -> None:
        if not self.margin > 0 or not self.window_seconds >= 0 or not self.prior_gain > 0:
            raise ValueError("margin and prior_gain must be positive, window_seconds not negative")
        if not 1 <= self.learn_frames <= self.history_frames:
            raise ValueError(f"need 1 <= learn_frames ({self.learn_frames}) <= history_frames ({self.history_frames})")


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


class EchoGate:
    """Frame by frame: echo (ignore it) or the person (let the VAD decide)."""

    def __init__(self, played: PlayedLevels, settings: EchoSettings = EchoSettings()) -> None:
        self.played = played
        self.settings = settings
        self._quiet = 10 ** (settings.quiet_dbfs / 20)
        self._ratios: deque[float] = deque(maxlen=settings.history_frames)
        self.frames = 0
        """Frames checked."""
        self.echo_frames = 0
        """Frames taken for echo."""

    @property
    def gain(self) -> float:
        """The room's echo gain: measured once enough loud reply has been heard, else the prior."""
        if len(self._ratios) < self.settings.learn_frames:
            return self.settings.prior_gain
        return float(np.median(self._ratios))

    def is_echo(self, samples: np.ndarray, heard_at: float) -> bool:
        """`samples` (float mono) reached the microphone just before `heard_at` (time.monotonic())."""
        self.frames += 1
        level = rms(samples)
        reference = self.played.peak(heard_at - self.settings.window_seconds - len(samples) / SAMPLE_RATE, heard_at)
        return self.judge(level, reference)

    def judge(self, level: float, reference: float) -> bool:
        """The decision for a microphone RMS `level` against the loudest recent reply block."""
        if reference < self._quiet:
            return False
        if level > 0 and math.isfinite(level):
            self._ratios.append(level / reference)
        echo = level <= self.settings.margin * self.gain * reference
        self.echo_frames += echo
        return echo
