"""Tortoise TTS, built from tortoise-tts's real model classes with the project's own loading,
device handling, cached voice latents and streaming (tortoise's own API objects are bypassed
where they are broken; see the module docstrings).

Names are imported lazily so that light modules (config, voices) do not pull in the engine.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRESETS": "assistant.tts.tortoise.config",
    "ModelSizes": "assistant.tts.tortoise.config",
    "TortoiseSettings": "assistant.tts.tortoise.config",
    "TortoiseEngine": "assistant.tts.tortoise.engine",
    "TortoiseUnavailable": "assistant.tts.tortoise.loader",
    "TortoiseWeightsError": "assistant.tts.tortoise.loader",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
