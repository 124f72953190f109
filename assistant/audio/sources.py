"""Non-live sources: a WAV file and raw PCM on stdin."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from assistant.audio.format import FRAME_BYTES, SAMPLE_RATE, float_to_pcm16
from assistant.audio.resample import resample
from assistant.audio.wav import read_wav

log = logging.getLogger(__name__)


def split_frames(pcm: bytes) -> Iterator[bytes]:
    """Cut s16le bytes into FRAME_BYTES frames; a short last frame is padded with silence
    (webrtcvad rejects any other size, and dropping it could lose the end of a word)."""
    for offset in range(0, len(pcm), FRAME_BYTES):
        frame = pcm[offset : offset + FRAME_BYTES]
        if len(frame) < FRAME_BYTES:
            frame += bytes(FRAME_BYTES - len(frame))
        yield frame


class WavFileSource:
    """A WAV file of any rate, channel count and sample format, as 16 kHz mono frames.

    The file is read, checked and converted when the source is created, so a bad file fails
    at once with an `AudioFormatError` naming it (not halfway through a listen loop).
    """

    realtime = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        samples, rate = read_wav(self.path)
        if rate != SAMPLE_RATE:
            log.debug("%s: resampling %d Hz -> %d Hz", self.path, rate, SAMPLE_RATE)
            samples = resample(samples, rate, SAMPLE_RATE)
        self._pcm = float_to_pcm16(samples)
        self.duration = len(self._pcm) / 2 / SAMPLE_RATE
        self.state = "open"

    def frames(self) -> Iterator[bytes]:
        try:
            for frame in split_frames(self._pcm):
                if self.state == "closed":
                    return
                yield frame
        finally:
            self.state = "closed"

    def close(self) -> None:
        self.state = "closed"


class StdinSource:
    """Raw s16le 16 kHz mono PCM from a byte stream (stdin by default), e.g.
    `arecord -f S16_LE -r 16000 -c 1 | assistant listen --input -`.

    `realtime` says whether the stream is live (a pipe from a recorder) or a file fed as fast
    as it can be read; the caller knows, the bytes do not.
    """

    def __init__(self, stream: BinaryIO | None = None, *, realtime: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stdin.buffer
        self.realtime = realtime
        self.state = "open"

    def frames(self) -> Iterator[bytes]:
        pending = b""
        try:
            while self.state != "closed":
                chunk = self._stream.read(FRAME_BYTES - len(pending))
                if not chunk:
                    break
                pending += chunk
                if len(pending) == FRAME_BYTES:
                    yield pending
                    pending = b""
            if pending and self.state != "closed":
                if len(pending) % 2:
                    log.warning("stdin ended with half a sample (odd byte count); dropping the last byte")
                    pending = pending[:-1]
                yield from split_frames(pending)
        finally:
            self.state = "closed"

    def close(self) -> None:
        self.state = "closed"
