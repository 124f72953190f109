"""Benchmark: voice latents computed vs served from the cache, on tiny random-weight Tortoise.

Used by `bench/tts.py`. Tiny models make the absolute numbers small, but the comparison is the
point: a cached latent costs a dictionary lookup or one small file read, whatever the model size.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from assistant.tts.tortoise.engine import TortoiseEngine
from assistant.tts.tortoise.latents import LatentCache, LatentSettings
from assistant.tts.tortoise.tiny import write_random_models
from assistant.tts.voices import DEFAULT_VOICE


def bench_latents(repeats: int = 3, voice: str = DEFAULT_VOICE) -> list[dict[str, object]]:
    """Median milliseconds to get both latents of `voice`: computed, from memory, from disk."""
    timings: dict[str, list[float]] = {"latents computed": [], "latents cached (memory)": [], "latents cached (disk)": []}
    with tempfile.TemporaryDirectory(prefix="tortoise-bench-") as tmp:
        models_dir = write_random_models(Path(tmp) / "models")
        engine = TortoiseEngine(models_dir=models_dir, device="cpu", latent_cache=LatentCache(Path(tmp) / "warmup"))
        engine.prepare_voice(voice)  # imports, model loading and STFT set-up are not what is measured
        for index in range(repeats):
            cache_dir = Path(tmp) / f"latents-{index}"
            # A new seed per repeat: a distinct key, so the computation really runs each time.
            engine.latent_cache = LatentCache(cache_dir)
            engine.latent_settings = LatentSettings(seed=index + 1)
            for case in ("latents computed", "latents cached (memory)"):
                start = time.perf_counter()
                engine.prepare_voice(voice)
                timings[case].append((time.perf_counter() - start) * 1000)
            engine.latent_cache = LatentCache(cache_dir)  # fresh memory, same files on disk
            start = time.perf_counter()
            engine.prepare_voice(voice)
            timings["latents cached (disk)"].append((time.perf_counter() - start) * 1000)
    return [{"case": case, "ms": statistics.median(values)} for case, values in timings.items()]


if __name__ == "__main__":
    for row in bench_latents():
        print(f"{row['case']:<26} {row['ms']:9.2f} ms")
