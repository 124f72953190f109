"""The frame format shared by every source, and conversions to and from it."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
"""Samples per second of every frame (Whisper and webrtcvad both take 16 kHz)."""
FRAME_MS = 30
"""Frame length: the longest webrtcvad accepts, so the fewest VAD calls per second."""
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
"""480 samples per frame."""
FRAME_BYTES = FRAME_SAMPLES * 2
"""960 bytes per frame (s16le mono)."""


class AudioFormatError(ValueError):
    """Input audio that cannot be read; the message names the file and what is wrong."""


def pcm16_to_float(data: bytes) -> np.ndarray:
    """s16le bytes -> float32 samples in -1..1 (what Whisper takes)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """float samples in -1..1 -> s16le bytes, clipped (no wrap-around on loud input)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 32767.0 / 32768.0)
    return np.round(clipped * 32768.0).astype("<i2").tobytes()
