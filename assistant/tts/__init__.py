"""Speaking: text -> audio through Tortoise (cached latents) or a fast fallback voice."""

from assistant.tts.base import Audio, TTSEngine, TTSUnavailable

__all__ = ["Audio", "TTSEngine", "TTSUnavailable"]
