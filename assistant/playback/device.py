"""DevicePlayer: replies to a sound device through sounddevice (PortAudio), without blocking.

A worker thread writes queued audio to an OutputStream in 40 ms blocks and checks between blocks
whether `stop()` cancelled it, so `stop()` cuts a reply within a block plus the device latency.
Audio is resampled to the device's own rate (engines make 22.05 or 24 kHz; devices often only
take 44.1 or 48 kHz). Consecutive chunks of a streamed reply are written to the same open
stream, so they play without gaps. The stream is closed when the queue runs dry, which frees
the device for others between replies.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import numpy as np

from assistant.playback.base import PlaybackUnavailable
from assistant.audio.clip import Audio

log = logging.getLogger(__name__)

BLOCK_SECONDS = 0.04


def default_output_rate(device: int | str | None = None) -> int:
    """The device's preferred sample rate (PortAudio's default for it).

    Raises PlaybackUnavailable when there is no such output device (or none at all).
    """
    import sounddevice

    try:
        info = sounddevice.query_devices(device, "output")
    except (sounddevice.PortAudioError, ValueError) as exc:
        which = "no default output device" if device is None else f"no output device {device!r}"
        raise PlaybackUnavailable(
            f"{which} ({exc}); `assistant devices` lists them, `assistant say --out FILE.wav` writes a file instead"
        ) from exc
    return int(info["default_samplerate"])


class DevicePlayer:
    """`device` is a sounddevice output index or name substring; None = the system default."""

    def __init__(self, device: int | str | None = None, *, volume: float = 1.0) -> None:
        try:
            import sounddevice
        except OSError as exc:  # the PortAudio library itself is missing
            raise PlaybackUnavailable(f"PortAudio is missing ({exc}): install the Debian package libportaudio2") from exc

        self._sd = sounddevice
        self.device = device
        self.sample_rate = default_output_rate(device)
        self.volume = volume
        self._queue: queue.Queue[tuple[int, np.ndarray]] = queue.Queue()
        self._lock = threading.Lock()
        self._generation = 0
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()
        self._worker: threading.Thread | None = None
        self.error: Exception | None = None

    @property
    def is_playing(self) -> bool:
        with self._lock:
            return self._busy

    def play(self, audio: Audio) -> None:
        samples = audio.resampled(self.sample_rate).samples
        if self.volume != 1.0:
            samples = np.clip(samples * self.volume, -1.0, 1.0)
        with self._lock:
            self._busy = True
            self._idle.clear()
            self._queue.put((self._generation, samples.astype(np.float32)))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="playback", daemon=True)
                self._worker.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel what is playing and queued; returns once the device has been released."""
        with self._lock:
            self._generation += 1
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        self._idle.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything queued has played; False on timeout."""
        return self._idle.wait(timeout)

    def _current(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation

    def _run(self) -> None:
        while True:
            try:
                generation, samples = self._queue.get(timeout=0.5)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            if self._current(generation):
                self._play_session(generation, samples)
            with self._lock:
                if self._queue.empty():
                    self._busy = False
                    self._idle.set()

    def _play_session(self, generation: int, samples: np.ndarray) -> None:
        """Play one chunk and every chunk queued behind it on one stream. A device that cannot be
        opened or goes away mid-reply is reported (`error`, log) and ends the session, so the
        player never stays "playing" and the listener is never muted for good."""
        block = max(1, int(self.sample_rate * BLOCK_SECONDS))
        try:
            with self._sd.OutputStream(device=self.device, samplerate=self.sample_rate, channels=1,
                                       dtype="float32", blocksize=block) as stream:
                self._write_all(stream, block, generation, samples)
        except Exception as exc:
            self.error = exc
            log.error("playback on output device %r failed: %s", self.device, exc)

    def _write_all(self, stream: Any, block: int, generation: int, samples: np.ndarray) -> None:
        while True:
            for start in range(0, len(samples), block):
                if not self._current(generation):
                    stream.abort()
                    return
                stream.write(samples[start:start + block].reshape(-1, 1))
            try:
                generation, samples = self._queue.get_nowait()
            except queue.Empty:
                break
            if not self._current(generation):
                stream.abort()
                return
        stream.stop()  # waits until the last block has been played
