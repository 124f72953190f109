"""Sample-rate conversion with soxr (high quality, fast, and streaming for live devices)."""

from __future__ import annotations

import numpy as np
import soxr


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Whole-signal resampling of float mono samples; returns float32 (a copy even when equal)."""
    samples = np.asarray(x, dtype=np.float32)
    if sr_from <= 0 or sr_to <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_from} -> {sr_to}")
    if sr_from == sr_to or samples.size == 0:
        return samples.copy()
    return soxr.resample(samples, sr_from, sr_to, quality="HQ").astype(np.float32, copy=False)


class StreamResampler:
    """Block-by-block resampling for a live device, continuous across blocks.

    Resampling each block on its own would click at every block edge; soxr's stream keeps the
    filter state between calls. `flush()` returns what its filter still holds at the end.
    """

    def __init__(self, sr_from: int, sr_to: int) -> None:
        self.sr_from = sr_from
        self.sr_to = sr_to
        self._stream = None if sr_from == sr_to else soxr.ResampleStream(sr_from, sr_to, 1, dtype="float32", quality="HQ")

    def process(self, block: np.ndarray) -> np.ndarray:
        samples = np.asarray(block, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=False)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
