"""Playing replies: to a sound device (non-blocking, cancellable) or to a WAV file.

The listen loop asks `is_playing` to ignore its own voice while a reply plays, and "stop" calls
`stop()` to cut a reply short; both players honour the same `Player` protocol.
"""

from assistant.playback.base import PlaybackUnavailable, Player
from assistant.playback.device import DevicePlayer, default_output_rate
from assistant.playback.file import FileSink

__all__ = ["DevicePlayer", "FileSink", "PlaybackUnavailable", "Player", "default_output_rate"]
