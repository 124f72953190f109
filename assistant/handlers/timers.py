"""Countdown timers that call back when they fire, on one scheduler thread, kept in the store.

One thread serves every timer (a `threading.Timer` per timer would leave a thread per pending
timer and no way to ask how long is left). Two clocks: the monotonic one schedules (a wall-clock
jump while running must not fire a timer early), the wall clock is what the store keeps (a
monotonic time means nothing after a restart). Both are injectable: tests pass manual clocks and
call `run_due()` themselves, so timer tests never sleep.

With a store, a timer is committed before `start()` returns (so before "Timer set" is said), and
deleted after its announcement was handed on: a crash in between repeats the announcement at the
next start rather than losing it. `restore()` brings back what a previous run left: pending
timers are scheduled again, ones that came due while nothing ran are returned to be announced.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from assistant.store import StoredTimer

log = logging.getLogger(__name__)


@dataclass(order=True)
class Timer:
    due: float
    """Monotonic time it fires at."""
    id: int
    seconds: float = field(compare=False)
    announce: str = field(compare=False, default="")
    """What to say when it fires."""
    label: str = field(compare=False, default="")
    """What the timer is, as said ("40 minutes")."""
    intent: str = field(compare=False, default="")
    due_wall: float = field(compare=False, default=0.0)
    """Unix time it fires at (for the store and /v1/timers)."""


class TimerStore(Protocol):
    """The part of `assistant.store.Store` timers use."""

    def add_timer(self, label: str, announce: str, seconds: float, due: float, intent: str) -> int: ...
    def remove_timer(self, timer_id: int) -> None: ...
    def clear_timers(self) -> int: ...
    def timers(self) -> list[StoredTimer]: ...


class TimerService:
    """Pending timers, ordered by when they fire; `on_fire(timer)` runs on the scheduler thread."""

    def __init__(
        self,
        on_fire: Callable[[Timer], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        background: bool = True,
        store: TimerStore | None = None,
    ) -> None:
        self._on_fire = on_fire
        self._clock = clock
        self._wall = wall
        self._background = background
        self._store = store
        self._heap: list[Timer] = []
        self._next_id = 1
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._restored = False

    def start(self, seconds: float, announce: str = "", *, label: str = "", intent: str = "") -> Timer:
        """Schedule a timer; with a store it is on disk when this returns (raises StoreError if not)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("timer service is closed")
            due_wall = self._wall() + seconds
            if self._store is not None:
                timer_id = self._store.add_timer(label, announce, seconds, due_wall, intent)
            else:
                timer_id = self._next_id
                self._next_id += 1
            timer = Timer(self._clock() + seconds, timer_id, seconds, announce, label, intent, due_wall)
            self._push(timer)
        return timer

    def restore(self) -> list[tuple[Timer, float]]:
        """Schedule the stored timers still to come; return those already due, each with how many
        seconds ago it came due (the caller announces them, then calls `finished`). Once per run."""
        if self._store is None:
            return []
        with self._cond:
            if self._restored or self._closed:
                return []
            self._restored = True
            known = {timer.id for timer in self._heap}
            now_wall, now = self._wall(), self._clock()
            overdue: list[tuple[Timer, float]] = []
            for stored in self._store.timers():
                if stored.id in known:
                    continue
                left = stored.due - now_wall
                timer = Timer(now + left, stored.id, stored.seconds, stored.announce, stored.label, stored.intent, stored.due)
                if left > 0:
                    self._push(timer)
                else:
                    overdue.append((timer, -left))
        if overdue or self._heap:
            log.info("restored %d pending timer(s); %d came due while the assistant was not running",
                     len(self._heap), len(overdue))
        return overdue

    def finished(self, timer: Timer) -> None:
        """Forget a timer that was announced (restored overdue ones; fired ones are forgotten here)."""
        if self._store is not None:
            try:
                self._store.remove_timer(timer.id)
            except Exception:  # noqa: BLE001 - announced already; at worst it is said again after a restart
                log.exception("cannot remove announced timer %d from the store", timer.id)

    def _push(self, timer: Timer) -> None:
        heapq.heappush(self._heap, timer)
        if self._background and self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="timers")
            self._thread.start()
        self._cond.notify_all()

    def pending(self) -> list[tuple[Timer, float]]:
        """Each pending timer with its seconds left, soonest first."""
        now = self._clock()
        with self._cond:
            return [(timer, max(0.0, timer.due - now)) for timer in sorted(self._heap)]

    def cancel_all(self) -> int:
        """Cancel every timer (in the store first: a failure there cancels nothing)."""
        with self._cond:
            if self._store is not None:
                self._store.clear_timers()
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
            self.finished(timer)
        return len(fired)

    def close(self) -> None:
        """Stop the scheduler; stored timers stay stored for the next run to restore."""
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
