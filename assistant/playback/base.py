"""The Player protocol shared by device and file output."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from assistant.audio.clip import Audio


class PlaybackUnavailable(RuntimeError):
    """No usable output device (none present, or the named one is not there)."""


@runtime_checkable
class Player(Protocol):
    def play(self, audio: Audio) -> None:
        """Queue `audio` after whatever is playing; returns at once."""

    def stop(self) -> None:
        """Cut the current reply and drop everything queued."""

    @property
    def is_playing(self) -> bool:
        """True from `play` until the last queued sample has left the speaker (or `stop`)."""
