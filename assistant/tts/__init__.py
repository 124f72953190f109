"""Speaking: text -> audio through Tortoise (cached latents) or a fast fallback voice.

`Speech` is the one entry point (reply cache, engine choice and fallback, text clean-up,
self-check); engines are imported lazily, so importing this package stays cheap (no torch).
"""

from assistant.tts.base import TTSEngine, TTSUnavailable
from assistant.tts.cache import CacheKey, ReplyCache
from assistant.tts.selfcheck import SelfCheck, whisper_transcriber, word_error_rate
from assistant.tts.speech import ENGINES, Speech, SpeechSettings
from assistant.tts.textnorm import normalize

__all__ = [
    "ENGINES", "CacheKey", "ReplyCache", "SelfCheck", "Speech", "SpeechSettings", "TTSEngine",
    "TTSUnavailable", "normalize", "whisper_transcriber", "word_error_rate",
]
