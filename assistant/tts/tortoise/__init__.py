"""Tortoise TTS, built from tortoise-tts's real model classes with the project's own loading,
device handling, cached voice latents and streaming (tortoise's own API objects are bypassed
where they are broken; see the module docstrings)."""

from assistant.tts.tortoise.config import PRESETS, ModelSizes, TortoiseSettings
from assistant.tts.tortoise.engine import TortoiseEngine
from assistant.tts.tortoise.loader import TortoiseUnavailable, TortoiseWeightsError

__all__ = ["PRESETS", "ModelSizes", "TortoiseEngine", "TortoiseSettings", "TortoiseUnavailable", "TortoiseWeightsError"]
