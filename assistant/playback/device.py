"""DevicePlayer: replies to a sound device through sounddevice (PortAudio), without blocking.

A worker thread writes queued audio to an OutputStream in 40 ms blocks and checks between blocks
whether `stop()` cancelled it, so `stop()` cuts a reply within a block plus the device latency.
Audio is resampled to the device's own rate (engines make 22.05 or 24 kHz; devices often only
take 44.1 or 48 kHz).

A streamed reply is framed by `begin_reply(prebuffer)` ... `end_reply()`: its chunks play on one
stream that stays open for the whole reply, starting once `prebuffer` seconds are queued (the
jitter buffer, sized by the Speaker from the engine's measured speed: `jitter.py`). If the next
chunk is late all the same, the player writes silence just before the device would run dry
rather than letting the stream underflow or closing it, and counts that as an underrun
(`stats`). Audio played outside a reply (`play` alone) is written to a stream that is closed
when the queue runs dry, which frees the device for others between replies.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.playback.base import PlaybackUnavailable
from assistant.playback.reference import PlayedLevels
from assistant.audio.clip import Audio

log = logging.getLogger(__name__)

BLOCK_SECONDS = 0.04
GUARD_BLOCKS = 2
"""Silence is written when the device holds less than this many blocks of a late reply."""


@dataclass
class PlaybackStats:
    """What the player saw of the replies it played (for tests and benchmarks)."""

    replies: int = 0
    underruns: int = 0
    """Times a reply's next chunk came too late and silence was written (audible gaps)."""
    underrun_seconds: float = 0.0
    prebuffer_waits: list[float] | None = None
    """Seconds each reply waited for its jitter buffer to fill."""
    started_at: list[float] | None = None
    """time.monotonic() at which each reply's stream opened (its first audio)."""


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
        self._queue: queue.Queue[tuple[int, str, Any]] = queue.Queue()
        self._pushback: tuple[int, str, Any] | None = None
        self.stats = PlaybackStats(prebuffer_waits=[], started_at=[])
        self.played = PlayedLevels()
        """Level of every block written, stamped with when it is heard: the listener's echo reference."""
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
        self._put("audio", samples.astype(np.float32))

    def begin_reply(self, prebuffer_seconds: float) -> None:
        """The chunks played until `end_reply` are one reply: one open stream, started once
        `prebuffer_seconds` of it are queued (or it has ended)."""
        self._put("begin", max(0.0, float(prebuffer_seconds)))

    def end_reply(self) -> None:
        """No more chunks for this reply: play what is queued, then close the stream."""
        self._put("end", None)

    def _put(self, kind: str, payload: Any) -> None:
        with self._lock:
            self._busy = True
            self._idle.clear()
            self._queue.put((self._generation, kind, payload))
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

    def _next(self, timeout: float) -> tuple[int, str, Any]:
        """The next queued item (raises queue.Empty after `timeout`)."""
        if self._pushback is not None:
            item, self._pushback = self._pushback, None
            return item
        return self._queue.get(timeout=timeout)

    def _run(self) -> None:
        while True:
            try:
                generation, kind, payload = self._next(timeout=0.5)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            if self._current(generation):
                if kind == "begin":
                    self._play_reply(generation, payload)
                elif kind == "audio":
                    self._play_session(generation, payload)
                # "end" outside a reply: its reply was cut by stop(); nothing to do
            with self._lock:
                if self._queue.empty() and self._pushback is None:
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
                self._write(stream, samples[start:start + block])
            try:
                item = self._next(timeout=0)
            except queue.Empty:
                break
            if item[1] != "audio":  # a reply begins: it gets its own stream
                self._pushback = item
                break
            generation, samples = item[0], item[2]
            if not self._current(generation):
                stream.abort()
                return
        stream.stop()  # waits until the last block has been played

    def _write(self, stream: Any, piece: np.ndarray) -> None:
        """Write one block, noting its level and when it will be heard (after the device's latency)."""
        stream.write(piece.reshape(-1, 1))  # returns once the block is queued behind `latency` of audio
        latency = float(getattr(stream, "latency", 0.0) or 0.0)
        self.played.record(piece, self.sample_rate, time.monotonic() + latency)

    # -- a framed reply: jitter buffer, one stream, silence instead of underflow ---------------

    def _play_reply(self, generation: int, prebuffer: float) -> None:
        started = time.monotonic()
        pending: list[np.ndarray] = []
        need = int(prebuffer * self.sample_rate)
        ended = False
        while sum(len(chunk) for chunk in pending) < need and not ended:
            try:
                item = self._next(timeout=0.05)
            except queue.Empty:
                if not self._current(generation):
                    return
                continue
            ended = self._take(item, generation, pending)
            if not self._current(generation):
                return
        self.stats.replies += 1
        assert self.stats.prebuffer_waits is not None
        self.stats.prebuffer_waits.append(time.monotonic() - started)
        assert self.stats.started_at is not None
        self.stats.started_at.append(time.monotonic())
        block = max(1, int(self.sample_rate * BLOCK_SECONDS))
        try:
            with self._sd.OutputStream(device=self.device, samplerate=self.sample_rate, channels=1,
                                       dtype="float32", blocksize=block) as stream:
                self._stream_reply(stream, block, generation, pending, ended)
        except Exception as exc:
            self.error = exc
            log.error("playback on output device %r failed: %s", self.device, exc)

    def _take(self, item: tuple[int, str, Any], generation: int, pending: list[np.ndarray]) -> bool:
        """Queue a reply's item; True when the reply has ended (its end, or the next reply's begin)."""
        item_generation, kind, payload = item
        if item_generation != generation:
            self._pushback = item  # stop() cut this reply; what follows is another's
            return True
        if kind == "audio":
            pending.append(payload)
            return False
        if kind == "begin":
            self._pushback = item  # the next reply began without this one ending
        return True

    def _stream_reply(self, stream: Any, block: int, generation: int, pending: list[np.ndarray], ended: bool) -> None:
        latency = float(getattr(stream, "latency", 0.0) or 0.0)
        started = time.monotonic()
        written = 0
        in_gap = False
        while True:
            while pending:
                samples = pending.pop(0)
                for start in range(0, len(samples), block):
                    if not self._current(generation):
                        stream.abort()
                        return
                    piece = samples[start:start + block]
                    self._write(stream, piece)
                    written += len(piece)
                in_gap = False
            if ended:
                break
            # Wait for the next chunk until the device is about to run dry, then fill with silence.
            # (in waits of at most a block, so that stop() still cuts within a block)
            runs_dry = started + latency + written / self.sample_rate - GUARD_BLOCKS * BLOCK_SECONDS
            try:
                wait = min(BLOCK_SECONDS, max(0.0, runs_dry - time.monotonic()))
                ended = self._take(self._next(timeout=wait), generation, pending)
            except queue.Empty:
                if not self._current(generation):
                    stream.abort()
                    return
                if time.monotonic() < runs_dry:
                    continue
                if not in_gap:
                    self.stats.underruns += 1
                    in_gap = True
                self.stats.underrun_seconds += block / self.sample_rate
                stream.write(np.zeros((block, 1), dtype=np.float32))
                written += block
            if not self._current(generation):
                stream.abort()
                return
        stream.stop()  # waits until the last block has been played
