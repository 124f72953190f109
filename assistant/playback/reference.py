"""What the player is sending to the speaker: the reference for the echo check and canceller.

While a reply plays the listener keeps listening for "stop" (barge-in), so it must tell the
reply's own sound, leaking back into the microphone, from a person talking over it. The player
records each block it writes, stamped with the time it will leave the speaker (write time + the
stream's output latency). Two things are kept: the level of each block (`peak`: the loudest over
the last few hundred milliseconds, for the level check in `assistant.echo`) and the samples
themselves at 16 kHz, as runs of continuous output (`run_near`, `run_slice`: what the echo
canceller subtracts). Block stamps jitter (the first blocks of a stream go into an empty buffer
and were measured up to 100 ms late), so a run's samples are indexed by their count, not by
their stamps; a run's `anchor` is its least-late stamp, only a starting point for the
canceller's delay search.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from assistant.audio.format import SAMPLE_RATE
from assistant.audio.resample import StreamResampler

CONTINUES_SECONDS = 0.25
"""A block stamped within this of where the current run ends continues it; later is a new run."""


@dataclass(frozen=True)
class PlayedBlock:
    """One block of output: `start`/`end` in `time.monotonic()` seconds when it is heard, its RMS level."""

    start: float
    end: float
    rms: float


@dataclass(frozen=True)
class PlayedRun:
    """Continuous output (one stream): `number` counts runs, `anchor` is when its sample 0 is
    heard (time.monotonic(), the least-late block stamp), `end` when its last sample is."""

    number: int
    anchor: float
    end: float


class _Run:
    def __init__(self, number: int, rate: int, heard_at: float) -> None:
        self.number = number
        self.rate = rate
        self.anchor = heard_at
        self.played = 0  # samples at `rate` recorded
        self.resampler = StreamResampler(rate, SAMPLE_RATE)
        self.samples = np.zeros(0, np.float32)
        self.first = 0  # run index (16 kHz) of samples[0]

    @property
    def end(self) -> float:
        return self.anchor + self.played / self.rate

    def add(self, samples: np.ndarray, heard_at: float, keep: int) -> None:
        self.anchor = min(self.anchor, heard_at - self.played / self.rate)
        self.played += len(samples)
        self.samples = np.concatenate([self.samples, self.resampler.process(samples)])
        if len(self.samples) > 2 * keep:
            drop = len(self.samples) - keep
            self.samples = self.samples[drop:]
            self.first += drop


class PlayedLevels:
    """A bounded, thread-safe history of what was played (the player writes, the listener reads)."""

    def __init__(self, keep_seconds: float = 5.0) -> None:
        self.keep_seconds = keep_seconds
        self._blocks: list[PlayedBlock] = []
        self._runs: list[_Run] = []
        self._lock = threading.Lock()

    def record(self, samples: np.ndarray, sample_rate: int, heard_at: float | None = None) -> None:
        """`samples` (float, -1..1) start leaving the speaker at `heard_at` (default: now)."""
        if len(samples) == 0:
            return
        start = time.monotonic() if heard_at is None else heard_at
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        level = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
        block = PlayedBlock(start, start + len(samples) / sample_rate, level)
        with self._lock:
            self._blocks.append(block)
            old = start - self.keep_seconds
            if self._blocks[0].end < old:
                self._blocks = [b for b in self._blocks if b.end >= old]
            run = self._runs[-1] if self._runs else None
            if run is None or run.rate != sample_rate or abs(start - run.end) > CONTINUES_SECONDS:
                run = _Run(run.number + 1 if run else 1, sample_rate, start)
                self._runs = [r for r in self._runs if r.end >= old] + [run]
            run.add(samples, start, int(self.keep_seconds * SAMPLE_RATE))

    def peak(self, start: float, end: float) -> float:
        """The loudest block RMS heard at any moment in [start, end] (0.0: nothing played then)."""
        with self._lock:
            return max((b.rms for b in self._blocks if b.end > start and b.start < end), default=0.0)

    def last_end(self) -> float | None:
        """When the last recorded block stops being heard (None: nothing recorded yet)."""
        with self._lock:
            return self._blocks[-1].end if self._blocks else None

    def run_near(self, at: float, slack: float) -> PlayedRun | None:
        """The latest run heard within `slack` seconds of `at` (None: nothing played then)."""
        with self._lock:
            for run in reversed(self._runs):
                if run.anchor - slack <= at <= run.end + slack:
                    return PlayedRun(run.number, run.anchor, run.end)
        return None

    def run_slice(self, number: int, start: int, end: int) -> np.ndarray:
        """Samples [start, end) (16 kHz, counted from the run's first) of run `number`; zeros
        where nothing is kept (before the run, not yet played, forgotten, or no such run)."""
        out = np.zeros(max(0, end - start), np.float32)
        with self._lock:
            run = next((r for r in self._runs if r.number == number), None)
            if run is None:
                return out
            lo, hi = max(start, run.first), min(end, run.first + len(run.samples))
            if hi > lo:
                out[lo - start:hi - start] = run.samples[lo - run.first:hi - run.first]
        return out
