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

Timers can be watched (`add_listener`): a Wyoming satellite that set a timer is told when it
starts, is cancelled and finishes. A timer remembers who asked for it (`owner`, taken from
`timer_owner` in the thread that starts it; not stored: a connection does not outlive a
restart), and a listener that delivers the finished timer to its owner says so, so the assistant
does not also announce it in a room it is not in.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from assistant.store import StoredTimer

log = logging.getLogger(__name__)

timer_owner: ContextVar[str | None] = ContextVar("timer_owner", default=None)
"""Who is asking, for timers started in this context (e.g. "wyoming:3", a satellite's
connection); None: the assistant's own microphone. Set it around `Dispatcher.handle`."""


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
    owner: str | None = field(compare=False, default=None)
    """`timer_owner` when the timer was started."""
    delivered: bool = field(compare=False, default=False)
    """Set when it finished and a listener handed the announcement to its owner."""


TimerListener = Callable[[str, Timer], bool | None]
"""Called with ("started" | "cancelled" | "finished", timer) on the thread that caused it;
returning True for "finished" means the owner has been told (the local announcement is skipped)."""


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
        self._listeners: list[TimerListener] = []

    def add_listener(self, listener: TimerListener) -> Callable[[], None]:
        """Watch every timer's start, cancellation and end; returns the function that stops it."""
        with self._cond:
            self._listeners.append(listener)

        def remove() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _notify(self, kind: str, timer: Timer) -> bool:
        with self._cond:
            listeners = list(self._listeners)
        delivered = False
        for listener in listeners:
            try:
                delivered = bool(listener(kind, timer)) or delivered
            except Exception:  # noqa: BLE001 - a broken watcher must not break timers
                log.exception("timer listener failed on %s of timer %d", kind, timer.id)
        return delivered

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
            timer = Timer(self._clock() + seconds, timer_id, seconds, announce, label, intent, due_wall,
                          owner=timer_owner.get())
            self._push(timer)
        self._notify("started", timer)
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
            cancelled = sorted(self._heap)
            self._heap.clear()
            self._cond.notify_all()
        for timer in cancelled:
            self._notify("cancelled", timer)
        return len(cancelled)

    def run_due(self) -> int:
        """Fire every timer whose time has come; returns how many fired."""
        fired: list[Timer] = []
        with self._cond:
            now = self._clock()
            while self._heap and self._heap[0].due <= now:
                fired.append(heapq.heappop(self._heap))
        for timer in fired:
            timer.delivered = self._notify("finished", timer)
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
