"""Conditioning latents: computed once per voice, kept in memory and on disk.

Tortoise conditions every reply on latents computed from the voice's reference clips; its fast
API recomputes them on every call. Here each latent is computed once and stored under a key made
of the clips' bytes, the identity of the weights that made it, and the settings that change it,
so a changed clip or new weights invalidate it and nothing else does. Cache files are written
atomically; an unreadable one is logged and recomputed, never fatal.

Tortoise crops clips longer than 6 s at a random offset (Python's global `random`): we crop with
a private `random.Random(seed)`, so latents are reproducible and the global RNG is untouched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from assistant import paths
from assistant.tts.tortoise.config import CONDITIONING_SAMPLE_RATE, OUTPUT_SAMPLE_RATE
from assistant.tts.tortoise.loader import TortoiseModels
from assistant.tts.tortoise.torchaudio_compat import resample

log = logging.getLogger(__name__)

PARTS = ("autoregressive", "diffusion")
AUTOREGRESSIVE_COND_SAMPLES = 132300  # 6 s at 22.05 kHz, tortoise's format_conditioning length
DIFFUSION_COND_SAMPLES = 102400  # ~4.3 s at 24 kHz, tortoise's diffusion conditioning length
FORMAT_VERSION = 1  # bump when the computation changes, so old cache files are not reused

Progress = Callable[[int, int, str], None]
"""progress(done, total, what): called as each clip is processed."""


@dataclass(frozen=True)
class LatentSettings:
    """What, besides clips and weights, changes a latent."""

    seed: int = 0
    """Seed of the random crop of clips longer than the conditioning length."""

    def describe(self) -> str:
        return f"v{FORMAT_VERSION}:seed={self.seed}:ar={AUTOREGRESSIVE_COND_SAMPLES}:diff={DIFFUSION_COND_SAMPLES}"


def _crop_or_pad(clip: torch.Tensor, length: int, rng: random.Random) -> torch.Tensor:
    gap = clip.shape[-1] - length
    if gap < 0:
        return F.pad(clip, (0, -gap))
    start = rng.randint(0, gap) if gap else 0
    return clip[..., start : start + length]


@torch.no_grad()
def autoregressive_latent(
    models: TortoiseModels, clips: Sequence[torch.Tensor], settings: LatentSettings, progress: Progress | None = None
) -> torch.Tensor:
    """The GPT conditioning latent, shape (1, width), from 22.05 kHz mono clips (1-D tensors)."""
    rng = random.Random(settings.seed)
    mel = models.conditioning_mel
    mels = []
    for index, clip in enumerate(clips):
        cropped = _crop_or_pad(clip.float().unsqueeze(0), AUTOREGRESSIVE_COND_SAMPLES, rng)
        mels.append(mel(cropped.unsqueeze(0)).squeeze(0).unsqueeze(0).to(models.device))  # (1, 80, frames)
        if progress:
            progress(index + 1, len(clips), "autoregressive")
    conds = torch.stack(mels, dim=1)  # (1, clips, 80, frames)
    return models.autoregressive.get_conditioning(conds).float().cpu()


@torch.no_grad()
def diffusion_latent(
    models: TortoiseModels, clips: Sequence[torch.Tensor], settings: LatentSettings, progress: Progress | None = None
) -> torch.Tensor:
    """The diffusion decoder's conditioning latent, shape (1, 2 * channels), from 22.05 kHz clips."""
    stft = models.univnet_stft
    conds = []
    for index, clip in enumerate(clips):
        sample = resample(clip.float().unsqueeze(0), CONDITIONING_SAMPLE_RATE, OUTPUT_SAMPLE_RATE)
        # tortoise pads or keeps the start here (no random crop)
        sample = F.pad(sample, (0, max(0, DIFFUSION_COND_SAMPLES - sample.shape[-1])))[..., :DIFFUSION_COND_SAMPLES]
        conds.append(stft.mel_spectrogram(sample.to(models.device)))  # (1, 100, frames)
        if progress:
            progress(index + 1, len(clips), "diffusion")
    return models.diffusion.get_conditioning(torch.stack(conds, dim=1)).float().cpu()


_COMPUTE = {"autoregressive": autoregressive_latent, "diffusion": diffusion_latent}


@dataclass
class CacheStats:
    computed: int = 0
    disk_hits: int = 0
    memory_hits: int = 0
    recovered: int = 0  # unreadable cache files replaced by a recomputation


class LatentCache:
    """Memory + disk cache of conditioning latents, keyed by clips, weights and settings."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory else paths.cache_dir() / "latents"
        self._memory: dict[str, torch.Tensor] = {}
        self._current: dict[tuple[str, str], str] = {}  # (voice, part) -> key held in memory
        self._lock = threading.Lock()
        self.stats = CacheStats()

    @staticmethod
    def key(part: str, clips_digest: str, weights: str, settings: LatentSettings) -> str:
        text = "\n".join((part, clips_digest, weights, settings.describe()))
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, voice: str, part: str, key: str) -> Path:
        return self.directory / f"{voice}.{part}.{key[:20]}.pt"

    def get(
        self,
        voice: str,
        part: str,
        clips_digest: str,
        models: TortoiseModels,
        load_clips: Callable[[], list[torch.Tensor]],
        settings: LatentSettings,
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """The latent for one voice and part, computing it only when no valid cached copy exists."""
        if part not in _COMPUTE:
            raise ValueError(f"unknown latent part {part!r}: use one of {PARTS}")
        key = self.key(part, clips_digest, models.part_identity(part), settings)
        with self._lock:
            latent = self._memory.get(key)
            if latent is not None:
                self.stats.memory_hits += 1
                return latent
            path = self._path(voice, part, key)
            latent = self._read(path, key)
            if latent is not None:
                self.stats.disk_hits += 1
            else:
                models.get(part)  # load the model first, so the log reads in the order things happen
                log.info("computing %s latents for voice %r", part, voice)
                latent = _COMPUTE[part](models, load_clips(), settings, progress)
                self.stats.computed += 1
                self._write(path, key, latent)
                self._prune(voice, part, keep=path)
            stale = self._current.get((voice, part))
            if stale is not None and stale != key:
                self._memory.pop(stale, None)  # a changed clip or new weights: drop the old latent
            self._current[(voice, part)] = key
            self._memory[key] = latent
            return latent

    def _read(self, path: Path, key: str) -> torch.Tensor | None:
        if not path.exists():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            latent = data["latent"]
            if data.get("key") != key or not isinstance(latent, torch.Tensor) or latent.dim() != 2:
                raise ValueError("content does not match its key")
            if not torch.isfinite(latent).all():
                raise ValueError("non-finite values")
            return latent.float()
        except Exception as exc:  # truncated zip, garbage bytes, wrong layout: all mean "recompute"
            log.warning("latent cache file %s is unreadable (%s: %s); recomputing", path, type(exc).__name__, exc)
            self.stats.recovered += 1
            return None

    def _write(self, path: Path, key: str, latent: torch.Tensor) -> None:
        """Atomic: a crash mid-write leaves the old file or none, never half a file."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    torch.save({"key": key, "latent": latent.contiguous()}, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a read-only or full cache dir costs a recomputation next start, nothing more
            log.warning("cannot write latent cache file %s: %s", path, exc)

    def _prune(self, voice: str, part: str, keep: Path) -> None:
        """Remove this voice's older latents of the same part (changed clips or weights)."""
        for stale in self.directory.glob(f"{voice}.{part}.*.pt"):
            if stale != keep:
                stale.unlink(missing_ok=True)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
            self._current.clear()
