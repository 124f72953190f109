"""FileSink: a Player that writes WAV, for `assistant say --out`, `--speak-to` and tests."""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from pathlib import Path

from assistant.audio.clip import Audio
from assistant.audio.format import float_to_pcm16

MAX_DATA_BYTES = 0xFFFFFFFF - 36
"""A RIFF file's sizes are 32-bit: past this many sample bytes the file starts over."""


class FileSink:
    """Each `play` appends to the file (streamed chunks and the replies after them make one
    recording) until `stop` starts a new one. Chunks at another sample rate are resampled to
    the first's.

    Samples go straight to disk, so a service speaking into a file for days keeps none of them
    in memory and each chunk costs its own size, not the file's. A reader never sees a broken
    WAV: a new file appears whole (written aside, then renamed into place), and a later chunk
    is appended before the header's sizes are raised to include it, so at worst a reader misses
    the chunk being written. A file reaching the 4 GiB limit of WAV starts over.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # the speaker plays, a "stop" from another thread may cut
        self._rate: int | None = None
        """The current file's sample rate; None: the next `play` starts a new file."""
        self._data_bytes = 0
        self._size_at = 0  # offset of the data chunk's size field in the header

    def play(self, audio: Audio) -> None:
        with self._lock:
            if self._rate is not None and audio.sample_rate != self._rate:
                audio = audio.resampled(self._rate)
            pcm = float_to_pcm16(audio.samples)
            if self._rate is None or self._data_bytes + len(pcm) > MAX_DATA_BYTES:
                self._start(audio, len(pcm))
            else:
                self._append(pcm)

    def _start(self, audio: Audio, pcm_bytes: int) -> None:
        wav = audio.to_wav_bytes()
        header = len(wav) - pcm_bytes
        if wav[header - 8 : header - 4] != b"data":
            raise RuntimeError("unexpected WAV layout: the samples do not follow the header")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(wav)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._rate, self._data_bytes, self._size_at = audio.sample_rate, pcm_bytes, header - 4

    def _append(self, pcm: bytes) -> None:
        total = self._data_bytes + len(pcm)
        with open(self.path, "r+b") as handle:
            handle.seek(self._size_at + 4 + self._data_bytes)
            handle.write(pcm)
            handle.flush()
            handle.seek(4)
            handle.write(struct.pack("<I", self._size_at + 4 + total - 8))  # RIFF size: the file after "RIFF" and itself
            handle.seek(self._size_at)
            handle.write(struct.pack("<I", total))
        self._data_bytes = total

    def stop(self) -> None:
        """Start a new file on the next `play` (what was written stays)."""
        with self._lock:
            self._rate = None

    @property
    def is_playing(self) -> bool:
        return False
