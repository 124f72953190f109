"""The one audio type and the one engine interface every TTS engine speaks.

Engines (Tortoise, Piper, espeak-ng) differ wildly in speed and sample rate; the rest of the
assistant (reply cache, playback, HTTP API) only ever sees `Audio` and `TTSEngine`, so an
engine can be swapped or fall back without anything else noticing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from assistant.audio.clip import Audio


class TTSUnavailable(Exception):
    """An engine cannot run here (missing weights, package or program); the caller may fall back."""


@runtime_checkable
class TTSEngine(Protocol):
    """What the Speech facade needs from an engine.

    `voice=None` means the engine's default voice. Engines that cannot stream yield the whole
    reply as one chunk from `stream`.
    """

    name: str

    def synthesize(self, text: str, voice: str | None = None) -> Audio: ...

    def stream(self, text: str, voice: str | None = None) -> Iterator[Audio]: ...
