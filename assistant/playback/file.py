"""FileSink: a Player that writes WAV, for `assistant say --out` and for tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from assistant.audio.clip import Audio


class FileSink:
    """Each `play` appends to the file (streamed chunks make one reply); written atomically, so
    a reader never sees half a WAV. Chunks at another sample rate are resampled to the first's."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._played: list[Audio] = []

    def play(self, audio: Audio) -> None:
        if self._played and audio.sample_rate != self._played[0].sample_rate:
            audio = audio.resampled(self._played[0].sample_rate)
        self._played.append(audio)
        self._write(Audio.concat(self._played))

    def _write(self, audio: Audio) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(audio.to_wav_bytes())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def stop(self) -> None:
        """Start a new file on the next `play` (what was written stays)."""
        self._played = []

    @property
    def is_playing(self) -> bool:
        return False
