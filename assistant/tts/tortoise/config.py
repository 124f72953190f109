"""Model sizes and generation settings for Tortoise, as frozen dataclasses.

The sizes are the constructor arguments of tortoise's real model classes. The defaults are the
published model (copied from tortoise-tts 3.0.0's api.py / api_fast.py, which hard-code them);
tests and benchmarks use `ModelSizes.tiny()` to build the same classes small. A models
directory may carry a `sizes.json` (written by `ModelSizes.save`) so that it describes itself.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# File names inside the models directory, one per model class (the names tortoise publishes).
WEIGHT_FILES: dict[str, str] = {
    "autoregressive": "autoregressive.pth",
    "hifigan": "hifidecoder.pth",
    "diffusion": "diffusion_decoder.pth",
    "clvp": "clvp2.pth",
    "vocoder": "vocoder.pth",
}
SIZES_FILE = "sizes.json"

# Tortoise's audio rates: clips and the autoregressive model work at 22.05 kHz; both decoders
# (HiFiGAN and diffusion + UnivNet) produce 24 kHz audio.
CONDITIONING_SAMPLE_RATE = 22050
OUTPUT_SAMPLE_RATE = 24000


def _published_autoregressive() -> dict[str, Any]:
    return dict(
        max_mel_tokens=604, max_text_tokens=402, max_conditioning_inputs=2, layers=30, model_dim=1024,
        heads=16, number_text_tokens=255, start_text_token=255, checkpointing=False, train_solo_embeddings=False,
    )


def _published_hifigan() -> dict[str, Any]:
    return dict(
        in_channels=1024, out_channels=1, resblock_type="1", resblock_dilation_sizes=[[1, 3, 5]] * 3,
        resblock_kernel_sizes=[3, 7, 11], upsample_kernel_sizes=[16, 16, 4, 4], upsample_initial_channel=512,
        upsample_factors=[8, 8, 2, 2], cond_channels=1024,
    )


def _published_diffusion() -> dict[str, Any]:
    return dict(
        model_channels=1024, num_layers=10, in_channels=100, out_channels=200, in_latent_channels=1024,
        in_tokens=8193, dropout=0, use_fp16=False, num_heads=16, layer_drop=0, unconditioned_percentage=0,
    )


def _published_clvp() -> dict[str, Any]:
    return dict(
        dim_text=768, dim_speech=768, dim_latent=768, num_text_tokens=256, text_enc_depth=20, text_seq_len=350,
        text_heads=12, num_speech_tokens=8192, speech_enc_depth=20, speech_heads=12, speech_seq_len=430,
        use_xformers=True,
    )


@dataclass(frozen=True)
class ModelSizes:
    """Constructor keyword arguments of each Tortoise model class."""

    autoregressive: dict[str, Any] = field(default_factory=_published_autoregressive)
    """UnifiedVoice: the GPT that turns text + voice latent into mel codes (and latents for the decoders)."""
    hifigan: dict[str, Any] = field(default_factory=_published_hifigan)
    """HifiganGenerator: fast path decoder, GPT latents -> 24 kHz audio. Channels must equal GPT width."""
    diffusion: dict[str, Any] = field(default_factory=_published_diffusion)
    """DiffusionTts: classic path, GPT latents -> mel spectrogram."""
    clvp: dict[str, Any] = field(default_factory=_published_clvp)
    """CLVP: ranks the autoregressive candidates against the text (classic path)."""
    vocoder: dict[str, Any] = field(default_factory=dict)
    """UnivNetGenerator: classic path vocoder, mel -> 24 kHz audio (its defaults are the published size)."""

    @classmethod
    def tiny(cls, width: int = 64) -> "ModelSizes":
        """The real classes at a few hundred thousand parameters: seconds on a CPU, for tests and benchmarks.

        Token vocabularies and position counts stay published so the real tokenizer and token ids work.
        """
        return cls(
            autoregressive={**_published_autoregressive(), "layers": 2, "model_dim": width, "heads": 2},
            hifigan={
                **_published_hifigan(), "in_channels": width, "cond_channels": width, "upsample_initial_channel": 32,
                "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
            },
            diffusion={
                **_published_diffusion(), "model_channels": 32, "num_layers": 1, "in_latent_channels": width,
                "num_heads": 2,
            },
            clvp={
                **_published_clvp(), "dim_text": 32, "dim_speech": 32, "dim_latent": 32, "text_enc_depth": 1,
                "text_heads": 2, "speech_enc_depth": 1, "speech_heads": 2,
            },
            vocoder={"channel_size": 8},
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def save(self, models_dir: Path) -> Path:
        path = Path(models_dir) / SIZES_FILE
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def for_models_dir(cls, models_dir: Path) -> "ModelSizes":
        """The sizes a models directory declares in sizes.json, else the published sizes."""
        path = Path(models_dir) / SIZES_FILE
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a valid model sizes file: {exc}") from exc


# Presets follow tortoise's api.tts_with_preset (classic path): how many autoregressive candidates
# CLVP chooses from, how many diffusion steps, and conditioning-free guidance.
PRESETS: dict[str, dict[str, Any]] = {
    "ultra_fast": {"candidates": 16, "diffusion_iterations": 30, "cond_free": False},
    "fast": {"candidates": 96, "diffusion_iterations": 80, "cond_free": True},
    "standard": {"candidates": 256, "diffusion_iterations": 200, "cond_free": True},
    "high_quality": {"candidates": 256, "diffusion_iterations": 400, "cond_free": True},
}
PATHS = ("fast", "classic")


@dataclass(frozen=True)
class TortoiseSettings:
    """Everything that changes what Tortoise says and how; part of the reply cache key.

    Build with `TortoiseSettings.preset(name, **overrides)` so a preset's values are explicit.
    """

    path: str = "fast"
    """"fast": GPT -> HiFiGAN, streams chunks as the GPT runs (one sample, no ranking).
    "classic": GPT candidates -> CLVP picks the best -> diffusion -> UnivNet (slow, not streamable)."""
    preset: str = "ultra_fast"
    """Name of the preset the classic-path values came from (informational once resolved)."""
    temperature: float = 0.8
    """Softmax temperature of the autoregressive sampler."""
    top_p: float = 0.8
    """Nucleus sampling mass."""
    top_k: int = 50
    """Only the k most likely mel codes are sampled."""
    repetition_penalty: float = 2.0
    """Discourages repeated codes (long silences, "uhhh")."""
    length_penalty: float = 1.0
    """Passed to the sampler; tortoise's published value."""
    candidates: int = 16
    """Classic path: autoregressive samples drawn for CLVP to rank."""
    batch_size: int = 1
    """Classic path: candidates drawn per GPT batch (more is faster on a big GPU)."""
    diffusion_iterations: int = 30
    """Classic path: diffusion steps."""
    cond_free: bool = False
    """Classic path: conditioning-free guidance (two diffusion passes per step; more natural)."""
    cond_free_k: float = 2.0
    """Weight of the conditioning-free guidance."""
    diffusion_temperature: float = 1.0
    """Variance of the diffusion noise."""
    max_mel_tokens: int = 500
    """Upper bound on the output length, in mel codes (each ~46 ms of audio)."""
    seed: int | None = 0
    """Seed for sampling; None draws a fresh one per call (replies then differ run to run)."""
    stream_chunk_tokens: int = 40
    """Fast path: mel codes per streamed chunk (~1.9 s of audio)."""
    first_chunk_tokens: int = 20
    """Fast path: codes before the first chunk, smaller so audio starts sooner."""

    def __post_init__(self) -> None:
        problems = []
        if self.path not in PATHS:
            problems.append(f"path must be one of {PATHS}, got {self.path!r}")
        if self.preset not in PRESETS:
            problems.append(f"preset must be one of {tuple(PRESETS)}, got {self.preset!r}")
        if not self.temperature > 0:
            problems.append("temperature must be > 0")
        if not 0 < self.top_p <= 1:
            problems.append("top_p must be in (0, 1]")
        if self.top_k < 1:
            problems.append("top_k must be >= 1")
        if self.repetition_penalty <= 0:
            problems.append("repetition_penalty must be > 0")
        if self.candidates < 1 or self.batch_size < 1:
            problems.append("candidates and batch_size must be >= 1")
        if self.candidates % self.batch_size:
            problems.append("candidates must be a multiple of batch_size")
        if not 1 <= self.diffusion_iterations <= 4000:
            problems.append("diffusion_iterations must be in [1, 4000]")
        if not 1 <= self.max_mel_tokens <= 600:
            problems.append("max_mel_tokens must be in [1, 600]")
        if self.stream_chunk_tokens < 1 or self.first_chunk_tokens < 1:
            problems.append("stream_chunk_tokens and first_chunk_tokens must be >= 1")
        if problems:
            raise ValueError("invalid Tortoise settings: " + "; ".join(problems))

    @classmethod
    def from_preset(cls, name: str = "ultra_fast", **overrides: Any) -> "TortoiseSettings":
        """A preset's values with any knob overridden (unknown knobs are an error)."""
        if name not in PRESETS:
            raise ValueError(f"unknown Tortoise preset {name!r}: use one of {', '.join(PRESETS)}")
        return cls(preset=name, **{**PRESETS[name], **overrides})

    def cache_key(self) -> str:
        """Stable text form for reply-cache keys."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)
