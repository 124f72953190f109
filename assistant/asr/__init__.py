"""Speech recognition: resident openai-whisper with offline weights.

`WhisperSettings` and `Transcript` import instantly; `WhisperASR` (torch + whisper, seconds to
import) is loaded on first access so that commands which never transcribe stay quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.asr.settings import Transcript, WhisperSettings

if TYPE_CHECKING:
    from assistant.asr.resident import WhisperASR

__all__ = ["Transcript", "WhisperASR", "WhisperSettings"]


def __getattr__(name: str) -> Any:
    if name == "WhisperASR":
        from assistant.asr.resident import WhisperASR

        return WhisperASR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
