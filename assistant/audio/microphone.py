"""Live capture from a sound device through sounddevice (PortAudio), robust to the device going away.

The PortAudio callback only copies each block into a queue: capture never waits for the VAD or
for recognition. The consumer (`frames()`) converts blocks to 16 kHz mono, cuts 30 ms frames,
and watches the stream's health. A device can vanish in three ways, all seen here with virtual
PulseAudio devices: PortAudio ends the stream (USB mic unplugged, sound server gone: the
stream's finished callback fires), the stream stays "active" but no block arrives any more
(a stall), or opening fails while the device is absent. Each is logged and answered by closing
the stream and reopening it with exponential backoff until it works; `frames()` never raises
for it, so the listen loop just hears nothing for a while.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from assistant.audio.format import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, float_to_pcm16
from assistant.audio.resample import StreamResampler

log = logging.getLogger(__name__)


class AudioDeviceError(RuntimeError):
    """No usable input device (none at all, or none matching what was asked for)."""


def _sounddevice() -> Any:
    """Import sounddevice lazily: it raises OSError at import when PortAudio is missing."""
    try:
        import sounddevice
    except OSError as exc:
        raise AudioDeviceError(f"PortAudio is not available ({exc}); install the Debian package libportaudio2") from exc
    return sounddevice


def list_input_devices() -> list[dict]:
    """Input devices as PortAudio sees them: index, name, hostapi, channels, default_samplerate,
    default (True for the system default input). Empty when there are none or no PortAudio."""
    try:
        sd = _sounddevice()
    except AudioDeviceError as exc:
        log.warning("%s", exc)
        return []
    try:
        default_in = sd.default.device[0]
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        log.warning("cannot list audio devices: %s", exc)
        return []
    if default_in is None or default_in < 0:
        default_in = next((api["default_input_device"] for api in hostapis if api["default_input_device"] >= 0), -1)
    return [
        {
            "index": dev["index"],
            "name": dev["name"],
            "hostapi": hostapis[dev["hostapi"]]["name"],
            "channels": dev["max_input_channels"],
            "default_samplerate": dev["default_samplerate"],
            "default": dev["index"] == default_in,
        }
        for dev in devices
        if dev["max_input_channels"] > 0
    ]


def resolve_input_device(device: str | int | None) -> int:
    """The PortAudio index for `device`: None = system default input, an int (or a string of
    digits) = that index, any other string = the first input device whose name contains it
    (case-insensitive; an exact name wins). Raises AudioDeviceError listing what exists."""
    inputs = list_input_devices()
    if not inputs:
        raise AudioDeviceError("no audio input device found")
    if device is None:
        for dev in inputs:
            if dev["default"]:
                return dev["index"]
        return inputs[0]["index"]
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        if any(dev["index"] == index for dev in inputs):
            return index
        raise AudioDeviceError(f"no input device with index {index}; inputs: {_describe(inputs)}")
    wanted = device.strip().lower()
    exact = [dev for dev in inputs if dev["name"].lower() == wanted]
    partial = [dev for dev in inputs if wanted in dev["name"].lower()]
    matches = exact or partial
    if not matches:
        raise AudioDeviceError(f"no input device matching {device!r}; inputs: {_describe(inputs)}")
    if len(matches) > 1:
        log.info("input device %r matches %d devices; using %s", device, len(matches), matches[0]["name"])
    return matches[0]["index"]


def _describe(inputs: list[dict]) -> str:
    return ", ".join(f"{dev['index']}: {dev['name']}" for dev in inputs)


_CLOSED = object()
_START_GRACE_SECONDS = 3.0
"""Extra time a fresh stream gets for its first block (70 ms usually; ~2 s for the first
stream a PulseAudio daemon serves after it started)."""


class MicrophoneSource:
    """A live input device as 30 ms frames of 16 kHz mono s16le.

    device: None (system default), an index, or a substring of the device name; looked up
    again on every reopen, because indexes move when devices come and go.
    samplerate: what to open the device at; None tries 16 kHz (no resampling) and falls back
    to the device's default rate, resampled here with a continuous soxr stream.
    channels: None = mono when the device offers it, else two channels mixed down here.
    stall_seconds: no audio for this long while the stream claims to run = the device is gone
    (a fresh stream gets 3 s more for its first block).
    backoff_seconds / max_backoff_seconds: first and longest wait between reopen attempts.
    max_queue_seconds: audio buffered while the consumer lags before the oldest is dropped.
    """

    realtime = True

    def __init__(
        self,
        device: str | int | None = None,
        *,
        samplerate: int | None = None,
        channels: int | None = None,
        stall_seconds: float = 2.0,
        backoff_seconds: float = 0.25,
        max_backoff_seconds: float = 5.0,
        max_queue_seconds: float = 60.0,
    ) -> None:
        self.device = device
        self.requested_samplerate = samplerate
        self.requested_channels = channels
        self.stall_seconds = stall_seconds
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.reopen_count = 0
        """How many times the device was reopened after it went away (health reporting)."""
        self.dropped_blocks = 0
        """Blocks dropped because the consumer lagged more than max_queue_seconds."""
        self.last_error: str | None = None
        self.device_name: str | None = None
        self.samplerate = SAMPLE_RATE
        self.state = "open"
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_queue_seconds * 1000 / 30)))
        self._lock = threading.Lock()
        self._stream: Any = None
        self._generation = 0
        self._finished = False
        self._last_data = time.monotonic()
        self._lost_at = time.monotonic()
        self._stream_data = False  # whether the current stream delivered anything yet
        self._channels = 1
        self._resampler = StreamResampler(SAMPLE_RATE, SAMPLE_RATE)
        try:
            self._open()  # the first open raises: a wrong device is the user's to fix now
        except AudioDeviceError:
            raise
        except Exception as exc:  # sounddevice.PortAudioError
            raise AudioDeviceError(f"cannot open input device {device if device is not None else '(default)'}: {exc}") from exc

    # -- stream management -------------------------------------------------------------------

    def _open(self) -> None:
        sd = _sounddevice()
        index = resolve_input_device(self.device)
        info = sd.query_devices(index)
        channels, rate = self._choose_format(sd, index, info)
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._finished = False
        stream = sd.RawInputStream(
            device=index,
            samplerate=rate,
            channels=channels,
            dtype="int16",
            blocksize=int(rate * 0.03),
            callback=self._make_callback(generation),
            finished_callback=self._make_finished(generation),
        )
        try:
            stream.start()
        except Exception:
            stream.close(ignore_errors=True)
            raise
        with self._lock:
            self._stream = stream
            self._stream_data = False
            self._last_data = time.monotonic()
        self._channels = channels
        self.samplerate = rate
        self._resampler = StreamResampler(rate, SAMPLE_RATE)
        self.device_name = info["name"]
        log.info("microphone: %s (index %d) at %d Hz", info["name"], index, rate)

    def _choose_format(self, sd: Any, index: int, info: dict) -> tuple[int, int]:
        """Mono at 16 kHz when the device can (no conversion), else what it offers: its
        default rate (resampled here) and/or two channels (mixed down here)."""
        rates = [self.requested_samplerate] if self.requested_samplerate else [SAMPLE_RATE, int(info["default_samplerate"])]
        if self.requested_channels:
            channel_options = [self.requested_channels]
        else:
            channel_options = [1] + ([min(2, info["max_input_channels"])] if info["max_input_channels"] > 1 else [])
        for channels in channel_options:
            for rate in rates:
                try:
                    sd.check_input_settings(device=index, channels=channels, dtype="int16", samplerate=rate)
                    return channels, rate
                except sd.PortAudioError:
                    continue
        return channel_options[-1], rates[-1]  # let opening report what is wrong

    def _make_callback(self, generation: int):
        def callback(indata, frames, time_info, status) -> None:  # PortAudio thread: copy and go
            if generation != self._generation:
                return
            self._last_data = time.monotonic()
            self._stream_data = True
            item = (generation, bytes(indata))
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped_blocks += 1
                try:
                    self._queue.get_nowait()
                    self._queue.put_nowait(item)
                except (queue.Empty, queue.Full):
                    pass

        return callback

    def _make_finished(self, generation: int):
        def finished() -> None:
            if generation == self._generation:
                self._finished = True
                try:
                    self._queue.put_nowait((generation, None))  # wake the consumer so it notices at once
                except queue.Full:
                    pass  # a full queue wakes the consumer anyway

        return finished

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
            self._generation += 1
        if stream is not None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception as exc:  # a dead device may fail to close; it is gone either way
                log.debug("closing the lost stream failed: %s", exc)

    def _lost(self, why: str) -> None:
        self.last_error = why
        if self.state == "open":
            log.warning("microphone %s lost (%s); reopening", self.device_name or self.device, why)
            self._lost_at = time.monotonic()
        else:
            log.debug("microphone: the reopened stream failed too (%s)", why)
        self._close_stream()
        self.state = "reopening"

    def _try_open(self, attempt: int, delay: float) -> bool:
        try:
            self._rescan_if_missing()
            self._open()
            return True
        except Exception as exc:  # PortAudioError, AudioDeviceError: keep trying, never crash
            self.last_error = str(exc)
            level = logging.WARNING if attempt == 1 else logging.DEBUG
            log.log(level, "microphone reopen attempt %d failed: %s; next in %.2f s", attempt, exc, delay)
            return False

    def _rescan_if_missing(self) -> None:
        """PortAudio lists devices once, at initialisation: a re-plugged USB device is only
        found after re-initialising it. Done only when the device is missing, since it also
        ends any other PortAudio stream in the process."""
        try:
            resolve_input_device(self.device)
            return
        except AudioDeviceError:
            pass
        sd = _sounddevice()
        log.info("microphone: rescanning audio devices")
        sd._terminate()
        sd._initialize()

    def _wait(self, seconds: float) -> bool:
        """Sleep (no stream is open), waking early on close(); True when closed."""
        deadline = time.monotonic() + seconds
        while self.state != "closed":
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if self._queue.get(timeout=min(left, 0.1)) is _CLOSED:
                    return True
            except queue.Empty:
                pass
        return True

    # -- the AudioSource interface ---------------------------------------------------------------

    def frames(self) -> Iterator[bytes]:
        """Frames until close(), from the moment of this call on. A lost device is reopened here: at once, then after
        backoff_seconds doubling up to max_backoff_seconds. The source counts as back ("open",
        reopen_count + 1) only when the new stream delivers audio, since a stream can open and
        die at once while its server is still away."""
        stale = 0
        while True:  # audio from before anyone listened (models loading) would be answered late
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _CLOSED:
                self.state = "closed"
                break
            stale += 1
        if stale:
            log.debug("microphone: skipped %d blocks captured before listening started", stale)
        pending = np.zeros(0, dtype=np.float32)
        delay = self.backoff_seconds
        next_attempt = 0.0
        attempts = 0
        reported_drops = 0
        while self.state != "closed":
            if self._stream is None:
                wait = next_attempt - time.monotonic()
                if wait > 0:
                    if self._wait(wait):
                        break
                    continue
                attempts += 1
                if not self._try_open(attempts, delay):
                    next_attempt = time.monotonic() + delay
                    delay = min(delay * 2, self.max_backoff_seconds)
                pending = np.zeros(0, dtype=np.float32)
                continue
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                item = (self._generation, None)
            if item is _CLOSED:
                break
            generation, block = item
            if generation != self._generation:
                continue  # left over from a stream already closed
            if block is None:
                if self._finished:
                    self._lost("the stream ended")
                elif time.monotonic() - self._last_data > self.stall_seconds + (0 if self._stream_data else _START_GRACE_SECONDS):
                    self._lost(f"no audio for {self.stall_seconds:.1f} s")
                if self._stream is None and attempts:  # a reopened stream failed: back off
                    next_attempt = time.monotonic() + delay
                    delay = min(delay * 2, self.max_backoff_seconds)
                continue
            if self.state == "reopening":
                self.state = "open"
                self.reopen_count += 1
                log.info("microphone reopened after %.1f s (%d attempts)", time.monotonic() - self._lost_at, attempts)
            delay, attempts = self.backoff_seconds, 0
            if self.dropped_blocks != reported_drops:
                log.warning("microphone: the listener fell behind; %d blocks (30 ms each) dropped so far", self.dropped_blocks)
                reported_drops = 0
            samples = np.frombuffer(block, dtype="<i2").astype(np.float32) / 32768.0
            if self._channels > 1:
                samples = samples.reshape(-1, self._channels).mean(axis=1)
            pending = np.concatenate([pending, self._resampler.process(samples)])
            usable = len(pending) - len(pending) % FRAME_SAMPLES
            if usable:
                pcm = float_to_pcm16(pending[:usable])
                pending = pending[usable:]
                for offset in range(0, len(pcm), FRAME_BYTES):
                    yield pcm[offset : offset + FRAME_BYTES]
        self._close_stream()
        self.state = "closed"

    def close(self) -> None:
        self.state = "closed"
        self._close_stream()
        try:
            self._queue.put_nowait(_CLOSED)
        except queue.Full:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put_nowait(_CLOSED)
