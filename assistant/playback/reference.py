"""What the player is sending to the speaker, block by block: the reference for the echo check.

While a reply plays the listener keeps listening for "stop" (barge-in), so it must tell the
reply's own sound, leaking back into the microphone, from a person talking over it. The player
records the level of each block it writes, stamped with the time it will leave the speaker
(write time + the stream's output latency); the listener compares what the microphone hears
with the loudest of these over the last few hundred milliseconds (`assistant.echo`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlayedBlock:
    """One block of output: `start`/`end` in `time.monotonic()` seconds when it is heard, its RMS level."""

    start: float
    end: float
    rms: float


class PlayedLevels:
    """A bounded, thread-safe history of the blocks played (the player writes, the listener reads)."""

    def __init__(self, keep_seconds: float = 5.0) -> None:
        self.keep_seconds = keep_seconds
        self._blocks: deque[PlayedBlock] = deque()
        self._lock = threading.Lock()

    def record(self, samples: np.ndarray, sample_rate: int, heard_at: float | None = None) -> None:
        """`samples` (float, -1..1) start leaving the speaker at `heard_at` (default: now)."""
        if len(samples) == 0:
            return
        start = time.monotonic() if heard_at is None else heard_at
        level = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
        block = PlayedBlock(start, start + len(samples) / sample_rate, level)
        with self._lock:
            self._blocks.append(block)
            while self._blocks and self._blocks[0].end < start - self.keep_seconds:
                self._blocks.popleft()

    def peak(self, start: float, end: float) -> float:
        """The loudest block RMS heard at any moment in [start, end] (0.0: nothing played then)."""
        with self._lock:
            return max((b.rms for b in self._blocks if b.end > start and b.start < end), default=0.0)

    def last_end(self) -> float | None:
        """When the last recorded block stops being heard (None: nothing recorded yet)."""
        with self._lock:
            return self._blocks[-1].end if self._blocks else None
