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


@runtime_checkable
class ReplyPlayer(Player, Protocol):
    """A player that can keep one stream open for a whole streamed reply (a jitter buffer)."""

    def begin_reply(self, prebuffer_seconds: float) -> None:
        """Chunks until `end_reply` are one reply; start playing once this much is queued."""

    def end_reply(self) -> None:
        """The reply's last chunk has been queued."""
