"""TortoiseEngine: Tortoise TTS behind the assistant's TTSEngine interface.

Models load once (lazily, per part) from a models directory onto the chosen device; voice
latents come from the LatentCache; every model call holds the model scheduler's slot
(`assistant.scheduler`). Streaming takes the slot per chunk, not for the whole reply, so more
urgent work (a command to recognise, a live reply overtaking pre-rendering) waits for one chunk,
not the whole reply (the
listener itself is muted while a reply is rendered or played: it cannot hear "stop" then);
each reply's sampling uses a private RNG, so interleaved work changes neither the reply nor
anyone else's randomness.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np
import torch

from assistant.device import resolve_device, uses_half_precision
from assistant.memory import return_large_blocks
from assistant.scheduler import SCHEDULER, Priority
from assistant.audio.clip import Audio
from assistant.tts.tortoise.config import OUTPUT_SAMPLE_RATE, ModelSizes, TortoiseSettings
from assistant.tts.tortoise.inference import (
    DecoderContext,
    FastGeneration,
    classic_synthesize,
    measure_decoder_context,
    stream_chunks,
)
from assistant.tts.tortoise.latents import LatentCache, LatentSettings, Progress
from assistant.tts.tortoise.loader import TortoiseUnavailable, default_models_dir, missing_weights, open_models
from assistant.tts.tortoise.rng import PrivateRNG
from assistant.tts.voices import DEFAULT_VOICE, get_voice

log = logging.getLogger(__name__)

__all__ = ["TortoiseEngine", "TortoiseUnavailable"]


class TortoiseEngine:
    """Tortoise TTS; `settings` are the defaults, each call may override them."""

    name = "tortoise"
    sample_rate = OUTPUT_SAMPLE_RATE

    def __init__(
        self,
        settings: TortoiseSettings | None = None,
        *,
        models_dir: str | Path | None = None,
        device: str = "auto",
        half: bool | None = None,
        sizes: ModelSizes | None = None,
        default_voice: str = DEFAULT_VOICE,
        latent_cache: LatentCache | None = None,
        latent_settings: LatentSettings | None = None,
    ) -> None:
        """Raises TortoiseUnavailable when weights are missing, ValueError for an unusable device."""
        self.settings = settings or TortoiseSettings()
        self.models_dir = Path(models_dir) if models_dir else default_models_dir()
        self.device = resolve_device(device)
        if half and not uses_half_precision(self.device):
            raise ValueError(f"half precision needs a CUDA or XPU device, not {self.device!r}")
        self.half = uses_half_precision(self.device) if half is None else bool(half)
        return_large_blocks()  # activations unmapped on free, not kept by every thread's arena
        self.models = open_models(self.models_dir, self.device, self.half, sizes)
        self.default_voice = default_voice
        self.latent_cache = latent_cache or LatentCache()
        self.latent_settings = latent_settings or LatentSettings()
        self._decoder_context: DecoderContext | None = None

    @staticmethod
    def available(models_dir: str | Path | None = None) -> bool:
        """True when every weight file is present (cheap: no loading)."""
        return not missing_weights(Path(models_dir) if models_dir else default_models_dir())

    def cache_key(self, voice: str | None = None) -> str:
        """Everything that changes a rendered reply besides its text, for the reply cache.

        Settings, the identity of the weights the chosen path uses, precision, the latent settings
        and the voice's clips (re-recording a clip must not replay replies in the old voice).
        """
        parts = ("autoregressive", "hifigan") if self.settings.path == "fast" else (
            "autoregressive", "clvp", "diffusion", "vocoder"
        )
        found = get_voice(voice or self.default_voice)
        fields = [
            self.settings.cache_key(),
            *(self.models.part_identity(part) for part in parts),
            f"half={self.half}",
            self.latent_settings.describe(),
            f"voice={found.name}:{found.digest()}",
        ]
        return hashlib.sha256("\n".join(fields).encode()).hexdigest()

    def load(self) -> None:
        """Load the fast path's models (and measure the decoder) now instead of on the first reply."""
        with self._slot():
            self.models.get("autoregressive")
            self.models.get("hifigan")
        self.decoder_context()

    def voice_latent(self, voice: str | None, part: str = "autoregressive", progress: Progress | None = None) -> torch.Tensor:
        found = get_voice(voice or self.default_voice)
        with self._slot():
            return self.latent_cache.get(
                found.name, part, found.digest(), self.models, found.load_clips, self.latent_settings, progress
            )

    def prepare_voice(self, voice: str | None, progress: Progress | None = None) -> dict[str, str]:
        """Compute or load both latents of a voice; says per part whether it was computed."""
        result = {}
        for part in ("autoregressive", "diffusion"):
            before = self.latent_cache.stats.computed
            self.voice_latent(voice, part, progress)
            result[part] = "computed" if self.latent_cache.stats.computed > before else "cached"
        return result

    def _settings(self, settings: TortoiseSettings | None, overrides: dict) -> TortoiseSettings:
        chosen = settings or self.settings
        return dataclasses.replace(chosen, **overrides) if overrides else chosen

    @staticmethod
    def _slot() -> AbstractContextManager[None]:
        """The model scheduler's slot; live-reply priority unless the caller set another."""
        return SCHEDULER.slot("tts", Priority.LIVE)

    @contextmanager
    def _guard(self, rng: PrivateRNG) -> Iterator[None]:
        with self._slot(), rng.active(), torch.inference_mode():
            yield

    def decoder_context(self) -> DecoderContext:
        """The HiFiGAN decoder's edge reach, measured once per engine (~1 s at full size on a CPU)."""
        with self._slot():
            if self._decoder_context is None:
                self._decoder_context = measure_decoder_context(self.models)
                log.debug("HiFiGAN decoder context: %s", self._decoder_context)
            return self._decoder_context

    @staticmethod
    def _segments(text: str) -> list[str]:
        """The text in pieces Tortoise can say: sentences recombined to ~200 characters (at most 300).

        The GPT takes under 400 text tokens and makes at most ~23 s of speech per call, so a long
        reply (a handler's output read aloud) is said piece by piece instead of being refused or cut.
        """
        from tortoise.utils.text import split_and_recombine_text

        segments = split_and_recombine_text(" ".join(text.split()))
        if not segments:
            raise ValueError("nothing to say: the text is empty")
        return segments

    def synthesize(
        self, text: str, voice: str | None = None, *, settings: TortoiseSettings | None = None, **overrides: object
    ) -> Audio:
        """The whole reply at 24 kHz. Keyword overrides (e.g. seed=3) change single knobs."""
        segments = self._segments(text)
        chosen = self._settings(settings, overrides)
        latent = self.voice_latent(voice, "autoregressive")
        rng = PrivateRNG(chosen.seed, self.device)
        pieces = []
        if chosen.path == "classic":
            diffusion = self.voice_latent(voice, "diffusion")
            for segment in segments:
                pieces.append(classic_synthesize(self.models, segment, latent, diffusion, chosen, lambda: self._guard(rng)))
        else:
            for segment in segments:
                with self._guard(rng):
                    generation = FastGeneration(self.models, segment, latent, chosen)
                while not generation.done:  # lock released between batches of steps, as when streaming
                    with self._guard(rng):
                        generation.run_until(len(generation.latents) + chosen.stream_chunk_tokens)
                with self._guard(rng):
                    pieces.append(generation.decode() if generation.latents else torch.zeros(0))
        return Audio(torch.cat(pieces).numpy().astype(np.float32), OUTPUT_SAMPLE_RATE)

    def stream(
        self, text: str, voice: str | None = None, *, settings: TortoiseSettings | None = None, **overrides: object
    ) -> Iterator[Audio]:
        """Chunks of the reply as they are generated (fast path); the classic path yields one chunk
        per text segment.

        With the same settings and seed, the chunks join to the same samples `synthesize` returns.
        """
        segments = self._segments(text)
        chosen = self._settings(settings, overrides)
        latent = self.voice_latent(voice, "autoregressive")
        rng = PrivateRNG(chosen.seed, self.device)
        if chosen.path == "classic":
            diffusion = self.voice_latent(voice, "diffusion")
            for segment in segments:
                wav = classic_synthesize(self.models, segment, latent, diffusion, chosen, lambda: self._guard(rng))
                yield Audio(wav.numpy().astype(np.float32), OUTPUT_SAMPLE_RATE)
            return
        context = self.decoder_context()
        for segment in segments:
            with self._guard(rng):
                generation = FastGeneration(self.models, segment, latent, chosen)
            for chunk in stream_chunks(generation, chosen, context, lambda: self._guard(rng)):
                yield Audio(chunk.numpy().astype(np.float32), OUTPUT_SAMPLE_RATE)


def compute_latents(name: str, progress: Progress | None = None, *, engine: TortoiseEngine | None = None) -> dict[str, str]:
    """Compute (or confirm cached) both conditioning latents of a voice ahead of its first reply.

    Returns, per latent part, "computed" or "cached". Raises TortoiseUnavailable without weights.
    """
    return (engine or TortoiseEngine()).prepare_voice(name, progress=progress)
