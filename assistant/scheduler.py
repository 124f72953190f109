"""The model scheduler: one model runs at a time, and the most urgent work goes first.

Whisper and Tortoise (and Piper) share one compute device in one process: two models running at
once on one GPU gain nothing and can run it out of memory, and on a 2-core CPU they only slow
each other down. A plain lock serialised them, but in no particular order: a command's Whisper
pass could wait behind a queue of pre-rendering steps. Here every piece of model work asks for
the one slot with a priority, and a freed slot goes to the most urgent waiter:

1. `COMMAND`: recognising what the user just said (the user is waiting, mid-conversation);
2. `LIVE`: the reply being spoken now (the player drains its buffer meanwhile);
3. `API`: HTTP API requests (a client is waiting, but not the person in the room);
4. `BACKGROUND`: pre-rendering replies into the cache and self-checking them.

Work is never interrupted mid-call: engines take the slot per chunk or per generation step, not
for a whole reply, so urgent work waits at most for one step of whatever holds the slot (the
wait is measured: `add_observer`, exported by the service as `assistant_model_wait_seconds`).
Background work also pauses entirely while `pause_background()` is held (the listen loop holds
it while a command is recognised and handled, the speaker while a reply is rendered), so it
never slips in between two chunks of a live reply.

The models take the slot themselves with the priority of their usual caller (`slot("asr",
Priority.COMMAND)` in Whisper, `slot("tts", Priority.LIVE)` in the engines); a caller with
another role says so around its calls with `work_priority(...)` (a context variable: it follows
the calling thread, so a pre-render thread's self-check transcriptions are background work).
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower values go first."""

    COMMAND = 0
    LIVE = 1
    API = 2
    BACKGROUND = 3

    @property
    def label(self) -> str:
        return self.name.lower()


_current: contextvars.ContextVar[Priority | None] = contextvars.ContextVar("model_work_priority", default=None)


@contextmanager
def work_priority(priority: Priority) -> Iterator[None]:
    """Model work started inside (in this thread/context) runs at `priority`, whatever its default."""
    token = _current.set(Priority(priority))
    try:
        yield
    finally:
        _current.reset(token)


def current_priority(default: Priority) -> Priority:
    """The priority set by `work_priority` around this call, else `default`."""
    chosen = _current.get()
    return default if chosen is None else chosen


@dataclass(frozen=True)
class Wait:
    """One grant of the slot: who waited, how long, and behind what."""

    work: str
    """What asked: "asr" or "tts"."""
    priority: Priority
    seconds: float
    behind: str
    """What held the slot when the request arrived ("asr", "tts"), "paused" when background work
    was held back by a pause, "none" when the slot was free."""


@dataclass
class _Ticket:
    priority: Priority
    seq: int
    work: str

    def __lt__(self, other: _Ticket) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


class ModelScheduler:
    """A re-entrant priority lock with a background pause; thread-safe.

    `clock` is injectable so tests measure waits exactly.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._owner_work = "none"
        self._owner_priority: Priority | None = None
        self._waiting: list[_Ticket] = []
        self._seq = itertools.count()
        self._pauses = 0
        self._observers: list[Callable[[Wait], None]] = []

    # -- the slot ----------------------------------------------------------------------------

    @contextmanager
    def slot(self, work: str, default: Priority) -> Iterator[None]:
        """Hold the model slot for one step of `work`; re-entrant within a thread."""
        self._acquire(work, current_priority(default))
        try:
            yield
        finally:
            self._release()

    def _acquire(self, work: str, priority: Priority) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            started = self._clock()
            if self._owner is not None:
                behind = self._owner_work
            elif priority == Priority.BACKGROUND and self._pauses:
                behind = "paused"
            else:
                behind = "none"
            ticket = _Ticket(priority, next(self._seq), work)
            heapq.heappush(self._waiting, ticket)
            try:
                while not self._may_enter(ticket):
                    self._cond.wait()
            except BaseException:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._cond.notify_all()
                raise
            heapq.heappop(self._waiting)
            self._owner, self._depth = me, 1
            self._owner_work, self._owner_priority = work, priority
            waited = max(0.0, self._clock() - started)
            observers = list(self._observers)
        record = Wait(work, priority, waited, behind)
        for observe in observers:
            try:
                observe(record)
            except Exception:  # noqa: BLE001 - a metrics bug must never stop model work
                log.exception("model scheduler observer failed")

    def _may_enter(self, ticket: _Ticket) -> bool:
        if self._owner is not None or self._waiting[0] is not ticket:
            return False
        return not (ticket.priority == Priority.BACKGROUND and self._pauses)

    def _release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("the model slot is released by a thread that does not hold it")
            self._depth -= 1
            if self._depth == 0:
                self._owner, self._owner_work, self._owner_priority = None, "none", None
                self._cond.notify_all()

    # -- pausing background work -------------------------------------------------------------

    @contextmanager
    def pause_background(self) -> Iterator[None]:
        """While held (nesting and overlapping from several threads is fine), background work
        starts no new step; a step already running finishes."""
        with self._cond:
            self._pauses += 1
        try:
            yield
        finally:
            with self._cond:
                self._pauses -= 1
                self._cond.notify_all()

    # -- observing ----------------------------------------------------------------------------

    def add_observer(self, observe: Callable[[Wait], None]) -> Callable[[], None]:
        """Call `observe(Wait)` at every grant (outside the scheduler's lock); returns the remover."""
        with self._cond:
            self._observers.append(observe)

        def remove() -> None:
            with self._cond:
                if observe in self._observers:
                    self._observers.remove(observe)

        return remove

    def held_here(self) -> bool:
        """True when the calling thread holds the slot (models assert their work is inside it)."""
        with self._cond:
            return self._owner == threading.get_ident()

    def snapshot(self) -> dict[str, object]:
        """Who holds the slot and who waits (for tests, `doctor` and debugging)."""
        with self._cond:
            return {
                "holder": self._owner_work if self._owner is not None else None,
                "holder_priority": self._owner_priority.label if self._owner_priority is not None else None,
                "waiting": [(t.work, t.priority.label) for t in sorted(self._waiting)],
                "paused": self._pauses,
            }


SCHEDULER = ModelScheduler()
"""The process's one scheduler: every model in the process takes its slot."""
