"""Playing replies: to a sound device (non-blocking, cancellable) or to a WAV file.

The listen loop asks `is_playing` to ignore the microphone while a reply plays (so a spoken
"stop" is not heard then); a "stop" command from the API or chat calls `stop()` to cut a reply
short; both players honour the same `Player` protocol.
"""

from assistant.playback.base import PlaybackUnavailable, Player
from assistant.playback.device import DevicePlayer, default_output_rate
from assistant.playback.file import FileSink

__all__ = ["DevicePlayer", "FileSink", "PlaybackUnavailable", "Player", "default_output_rate"]
