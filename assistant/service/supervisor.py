"""Supervision: keeping `assistant serve` alive and honest for months under systemd.

`LoopRunner` runs the listen loop in its own thread, notices when it crashes (logged, counted,
restarted after a pause) or stalls (no audio taken while the source is open: the watchdog stops
being fed so systemd restarts the process). `Supervisor` is the main thread: signal handlers only
set flags, and each tick acts on them (stop, SIGHUP reload), runs the periodic jobs (reload
polling, loop restart, microphone retry) and feeds the watchdog.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from assistant.audio import AudioSource
from assistant.service.health import ServiceState
from assistant.service.metrics import ServiceMetrics
from assistant.service.notify import Watchdog

log = logging.getLogger(__name__)


class HeartbeatSource:
    """Wraps an audio source and notes when the loop last took a frame (for the watchdog)."""

    def __init__(self, source: AudioSource, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.realtime = source.realtime
        self._clock = clock
        self.last_frame = clock()
        self.frames_seen = 0

    @property
    def state(self) -> str:
        return self.source.state

    def frames(self) -> Iterator[bytes]:
        for frame in self.source.frames():
            self.last_frame = self._clock()
            self.frames_seen += 1
            yield frame

    def close(self) -> None:
        self.source.close()

    def stalled_for(self) -> float:
        return self._clock() - self.last_frame


class RunnableLoop(Protocol):
    """What the runner needs of a listen loop (an `assistant.loop.ListenLoop`)."""

    def run(self) -> None: ...

    def stop(self) -> None: ...


class LoopRunner:
    """The listen loop's thread: start, crash detection, restart, stall detection, stop."""

    def __init__(self, source: HeartbeatSource, make_loop: Callable[[HeartbeatSource], RunnableLoop], *,
                 state: ServiceState, metrics: ServiceMetrics, wake: threading.Event,
                 restart_seconds: float, stall_seconds: float) -> None:
        self.source = source
        self._make_loop = make_loop
        self._state = state
        self._metrics = metrics
        self._wake = wake
        self._restart_seconds = restart_seconds
        self._stall_seconds = stall_seconds
        self.loop: RunnableLoop | None = None
        self._thread: threading.Thread | None = None
        self._failed_at: float | None = None
        self._stopping = False
        self.input_ended = False
        """The source ended (a file or stdin): nothing more will be heard."""

    def start(self) -> None:
        self.loop = self._make_loop(self.source)
        self._thread = threading.Thread(target=self._run, name="listen-loop", daemon=True)
        self._state.loop_running = True
        self._thread.start()

    def _run(self) -> None:
        assert self.loop is not None
        try:
            self.loop.run()
            if not self._stopping:
                log.info("the audio input ended; the listen loop stopped")
                self.input_ended = True
        except Exception as exc:  # noqa: BLE001 - recorded; the main thread restarts the loop
            log.exception("the listen loop crashed")
            self._state.record_error("loop", f"{type(exc).__name__}: {exc}")
            self._metrics.errors.inc(stage="loop")
            self._failed_at = time.monotonic()
        finally:
            self._state.loop_running = False
            self._wake.set()

    def restart_if_crashed(self, now: float) -> None:
        """A crashed loop is started again `restart_seconds` after the crash (not in a tight loop)."""
        failed = self._failed_at
        if failed is None or now - failed < self._restart_seconds or self._stopping:
            return
        self._failed_at = None
        if self.source.state == "closed":
            return
        self._state.loop_restarts += 1
        log.warning("restarting the listen loop (restart %d)", self._state.loop_restarts)
        self.start()

    def problem(self) -> str | None:
        """Why the watchdog should not be fed (None: healthy, or nothing to watch)."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self.source.state != "open":
            return None
        stalled = self.source.stalled_for()
        if stalled > self._stall_seconds:
            return f"the listen loop has taken no audio for {stalled:.0f} s"
        return None

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        if self.loop is not None:
            self.loop.stop()
        self.source.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the listen loop did not stop within %.0f s", timeout)


class Supervisor:
    """The main thread's loop: flags from signals, periodic jobs, the watchdog."""

    def __init__(self, watchdog: Watchdog, *, tick_seconds: float) -> None:
        self.watchdog = watchdog
        self.tick_seconds = tick_seconds
        self.wake = threading.Event()
        """Set to run a tick at once (a signal, a loop that ended)."""
        self._stop = threading.Event()
        self._hup = False

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads; the handlers only set flags (the main loop acts)."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def request_stop(self) -> None:
        self._stop.set()
        self.wake.set()

    def request_reload(self) -> None:
        self._hup = True
        self.wake.set()

    def run(self, tick: Callable[[float, bool], bool]) -> None:
        """Until asked to stop: wait for a wake-up or the tick interval, then
        `tick(monotonic now, reload asked)`; a tick that returns False ends the loop."""
        while not self._stop.is_set():
            self.wake.wait(self.tick_seconds)
            self.wake.clear()
            if self._stop.is_set():
                break
            hup, self._hup = self._hup, False
            if not tick(time.monotonic(), hup):
                break
            self.watchdog.tick()

