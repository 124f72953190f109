"""`Audio`: a clip of mono float samples with its rate, the one audio type past the microphone.

It lives on the lowest floor because every later stage passes it around: engines make it, the
reply cache stores it, players and the HTTP API consume it. Keeping it here lets tts and
playback both use it without importing each other.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from assistant.audio.format import float_to_pcm16


@dataclass
class Audio:
    """Mono float32 samples in -1..1 at `sample_rate` Hz.

    float32 (not int16) so engines, resampling and crossfades never clip or lose precision;
    conversion to 16-bit happens only at the edges (WAV files, sound devices).
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"Audio must be mono (1-D), got shape {samples.shape}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.sample_rate}")
        self.samples = samples
        self.sample_rate = int(self.sample_rate)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def __len__(self) -> int:
        return len(self.samples)

    def rms(self) -> float:
        """Root-mean-square level; 0.0 for empty audio (used to tell speech from silence)."""
        if len(self.samples) == 0:
            return 0.0
        return float(np.sqrt(np.mean(np.square(self.samples, dtype=np.float64))))

    def to_wav_bytes(self) -> bytes:
        """16-bit PCM mono WAV: what every player and `wave` reads."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(float_to_pcm16(self.samples))
        return buffer.getvalue()

    @classmethod
    def from_wav_bytes(cls, data: bytes) -> Audio:
        """Read 8/16/32-bit PCM WAV, mixing several channels down to mono.

        Strict on purpose, unlike `assistant.audio.decode_wav` (which reads a cut-off recording
        as far as it goes): a truncated reply-cache file must raise ValueError and be rendered
        again, not be played short.
        """
        try:
            with wave.open(io.BytesIO(data), "rb") as wav:
                channels = wav.getnchannels()
                width = wav.getsampwidth()
                rate = wav.getframerate()
                frames = wav.getnframes()
                raw = wav.readframes(frames)
        except (wave.Error, EOFError) as exc:
            raise ValueError(f"not a readable WAV: {exc}") from exc
        if len(raw) != frames * channels * width:
            raise ValueError(f"truncated WAV: {len(raw)} bytes of {frames * channels * width}")
        if width == 1:
            samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        elif width == 2:
            samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        elif width == 4:
            samples = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
        else:
            raise ValueError(f"unsupported WAV sample width {width} bytes")
        if channels > 1:
            samples = samples.reshape(-1, channels).mean(axis=1)
        return cls(samples, rate)

    @classmethod
    def silence(cls, seconds: float, sample_rate: int) -> Audio:
        return cls(np.zeros(int(round(seconds * sample_rate)), dtype=np.float32), sample_rate)

    @classmethod
    def concat(cls, parts: Iterable[Audio]) -> Audio:
        """Join chunks (e.g. streamed sentences); they must share one sample rate."""
        parts = list(parts)
        if not parts:
            raise ValueError("cannot concatenate zero audio chunks")
        rate = parts[0].sample_rate
        if any(part.sample_rate != rate for part in parts):
            raise ValueError("cannot concatenate audio with different sample rates")
        return cls(np.concatenate([part.samples for part in parts]), rate)

    def resampled(self, sample_rate: int) -> Audio:
        """Engines make 22.05 or 24 kHz, devices want 44.1/48 kHz and Whisper 16 kHz; the audio
        package's resampler (soxr, band-limited) does it without folding hiss into the speech band."""
        from assistant.audio.resample import resample

        return Audio(np.clip(resample(self.samples, self.sample_rate, sample_rate), -1.0, 1.0), sample_rate)
