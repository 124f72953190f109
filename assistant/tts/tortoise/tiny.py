"""Tiny random-weight Tortoise model directories, for tests and benchmarks.

The published weights (several GB) cannot be downloaded on machines without a model hub, yet
the loader, latents cache and both inference paths must be exercised through tortoise's real
classes. `write_random_models` builds those classes at `ModelSizes.tiny()` size, saves their
weights exactly as the published files are laid out, and records the sizes in `sizes.json`,
so `TortoiseEngine(models_dir=...)` loads them like real weights. The audio is noise.
"""

from __future__ import annotations

from pathlib import Path

import torch

from assistant.tts.tortoise.config import WEIGHT_FILES, ModelSizes
from assistant.tts.tortoise.loader import build_model, save_state


def write_random_models(models_dir: Path, sizes: ModelSizes | None = None, seed: int = 0) -> Path:
    """Save randomly initialised weights for every Tortoise part into `models_dir`."""
    sizes = sizes or ModelSizes.tiny()
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for part in WEIGHT_FILES:
            save_state(part, build_model(part, sizes), models_dir)
    sizes.save(models_dir)
    return models_dir
