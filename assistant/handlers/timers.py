"""Countdown timers that call back when they fire, on one scheduler thread.

One thread serves every timer (a `threading.Timer` per timer would leave a thread per pending
timer and no way to ask how long is left). The clock is injectable: tests pass a manual clock
and call `run_due()` themselves, so timer tests never sleep.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(order=True)
class Timer:
    due: float
    id: int
    seconds: float = field(compare=False)
    label: str = field(compare=False, default="")


class TimerService:
    """Pending timers, ordered by when they fire; `on_fire(timer)` runs on the scheduler thread."""

    def __init__(
        self,
        on_fire: Callable[[Timer], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        self._on_fire = on_fire
        self._clock = clock
        self._background = background
        self._heap: list[Timer] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self, seconds: float, label: str = "") -> Timer:
        timer = Timer(due=self._clock() + seconds, id=next(self._ids), seconds=seconds, label=label)
        with self._cond:
            if self._closed:
                raise RuntimeError("timer service is closed")
            heapq.heappush(self._heap, timer)
            if self._background and self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="timers")
                self._thread.start()
            self._cond.notify_all()
        return timer

    def pending(self) -> list[tuple[Timer, float]]:
        """Each pending timer with its seconds left, soonest first."""
        now = self._clock()
        with self._cond:
            return [(timer, max(0.0, timer.due - now)) for timer in sorted(self._heap)]

    def cancel_all(self) -> int:
        with self._cond:
            count = len(self._heap)
            self._heap.clear()
            self._cond.notify_all()
        return count

    def run_due(self) -> int:
        """Fire every timer whose time has come; returns how many fired."""
        fired: list[Timer] = []
        with self._cond:
            now = self._clock()
            while self._heap and self._heap[0].due <= now:
                fired.append(heapq.heappop(self._heap))
        for timer in fired:
            try:
                self._on_fire(timer)
            except Exception:  # noqa: BLE001 - one bad announcement must not stop later timers
                log.exception("announcing timer %d failed", timer.id)
        return len(fired)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                wait = self._heap[0].due - self._clock() if self._heap else None
                if wait is None or wait > 0:
                    self._cond.wait(timeout=wait)
                    continue
            self.run_due()
