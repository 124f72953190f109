"""Sizing the jitter buffer of a streamed reply from the engine's measured speed.

A streamed reply is played while later chunks are still being made. If the engine makes audio
faster than real time (real-time factor, compute seconds per audio second, below 1), each chunk
is ready before the one before it has finished playing and only scheduling noise needs covering.
If it is slower (Tortoise's fast path on a CPU: RTF ~1.9), playing at once runs dry after every
chunk: audible stops and starts. Starting late by

    (expected length - first chunk) x (RTF - 1)

makes the whole reply play without a gap: the production deficit accumulated by the last chunk
is covered by audio buffered before playback began. The length of a reply is known only once it
is made, so it is estimated from the text's length; the RTF is what this engine measured on
earlier replies (`RateMeter`), else what its first chunk took.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class JitterSettings:
    """How much of a streamed reply is buffered before it starts playing."""

    margin_seconds: float = 0.15
    """Buffered beyond the computed need: thread scheduling, a model step that runs long, the
    device's own start-up. Also all that an engine faster than real time waits for."""
    chars_per_second: float = 14.0
    """Speaking rate assumed to estimate a reply's length from its text (Piper, espeak-ng and
    Tortoise voices say about 13-16 characters a second)."""
    smoothing: float = 0.5
    """Weight of the newest reply in an engine's running RTF (1: only the newest counts)."""

    def __post_init__(self) -> None:
        if self.margin_seconds < 0:
            raise ValueError(f"jitter margin must be >= 0 s, got {self.margin_seconds}")
        if self.chars_per_second <= 0:
            raise ValueError(f"speaking rate must be positive, got {self.chars_per_second}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"RTF smoothing must be in (0, 1], got {self.smoothing}")


def expected_seconds(text: str, settings: JitterSettings = JitterSettings()) -> float:
    """A guess at how long `text` takes to say."""
    return len(" ".join(text.split())) / settings.chars_per_second


def prebuffer_seconds(rtf: float, expected: float, first_chunk: float,
                      settings: JitterSettings = JitterSettings()) -> float:
    """Audio to buffer before playing a reply of `expected` seconds whose first chunk lasts
    `first_chunk` seconds, made at `rtf`; never more than the rest of the reply."""
    remaining = max(0.0, expected - first_chunk)
    needed = remaining * max(0.0, rtf - 1.0) + settings.margin_seconds
    return min(needed, max(expected, first_chunk))


class RateMeter:
    """Each engine's real-time factor as measured on the chunks it streamed (after the first,
    which also pays for set-up); thread-safe."""

    def __init__(self, settings: JitterSettings = JitterSettings()) -> None:
        self.settings = settings
        self._rates: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, engine: str | None) -> float | None:
        with self._lock:
            return self._rates.get(engine) if engine else None

    def seed(self, engine: str, rtf: float) -> None:
        """Start from a measurement made elsewhere (the start-up speed test)."""
        with self._lock:
            self._rates.setdefault(engine, rtf)

    def observe(self, engine: str | None, compute_seconds: float, audio_seconds: float) -> None:
        if not engine or audio_seconds <= 0:
            return
        rtf = compute_seconds / audio_seconds
        with self._lock:
            old = self._rates.get(engine)
            weight = self.settings.smoothing
            self._rates[engine] = rtf if old is None else weight * rtf + (1 - weight) * old
