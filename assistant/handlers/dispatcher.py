"""The Dispatcher: run the matched intent's handler and produce the reply to speak.

`handle()` never raises: whatever goes wrong (a program exits non-zero, a Python handler throws,
an HTTP endpoint is down, a reply needs a value nobody provided) becomes `ok=False`, the
handler's spoken error reply, and a log line with the details. Handlers may run concurrently
(the listen loop, the HTTP API); "stop" reaches every handler in flight (a "stop" sent through
the API does; a spoken one waits until the listen loop's own handler has finished). Timers
belong to the Dispatcher, not to a commands file, so they survive a hot reload; given a store
they also survive a restart (`restore_timers()` at start says the ones that came due meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from assistant.handlers.builtins import BuiltinHandler, overdue_announcement
from assistant.handlers.examples import intent_examples
from assistant.handlers.spec import DEFAULT_CONFIRM, DEFAULT_ERROR_REPLY, HandlerFailure, HandlerSpec, RunContext
from assistant.handlers.templates import MissingValue, Template, parse_template
from assistant.handlers.timers import Timer, TimerService
from assistant.store import Store, StoreError

log = logging.getLogger(__name__)


@dataclass
class HandlerOutcome:
    """What came of one matched intent: `reply` is what to say (None: say nothing)."""

    intent: str
    ok: bool
    reply: str | None
    error: str | None


def print_announcement(text: str) -> None:
    print(text, flush=True)


def _noop() -> None:
    return None


@lru_cache(maxsize=512)
def _reply_template(text: str) -> Template:
    return parse_template(text)


class Dispatcher:
    """Runs handlers for matches of one CommandSet (replaceable at run time)."""

    def __init__(
        self,
        commands: Any,
        *,
        announce: Callable[[str], None] = print_announcement,
        cancel: Callable[[], None] = _noop,
        clock: Callable[[], float] = time.monotonic,
        timer_thread: bool = True,
        now: Callable[[], datetime] = datetime.now,
        wall: Callable[[], float] = time.time,
        store: Store | None = None,
    ) -> None:
        """`clock`/`wall`/`timer_thread=False`/`now` let tests drive timers and the time of day;
        `store` keeps timers across restarts (None: in memory only)."""
        self._commands = commands
        self._announce = announce
        self._cancel = cancel
        self._now = now
        self._lock = threading.Lock()
        self._in_flight: dict[int, tuple[RunContext, HandlerSpec]] = {}
        self._last_reply: str | None = None
        self._examples: list[str] | None = None
        self._store = store
        self.timers = TimerService(self._timer_fired, clock=clock, wall=wall, background=timer_thread, store=store)

    # -- the contract --------------------------------------------------------------------------

    def handle(self, match: Any) -> HandlerOutcome:
        """Run the handler of `match.intent` and render its reply; never raises."""
        try:
            outcome = self._handle(match)
        except Exception as exc:  # noqa: BLE001 - the assistant must keep listening whatever happens
            log.exception("intent %s: unexpected failure", getattr(match, "intent", "?"))
            outcome = HandlerOutcome(str(getattr(match, "intent", "?")), False, DEFAULT_ERROR_REPLY, f"{type(exc).__name__}: {exc}")
        if outcome.reply:
            self._remember(outcome.reply)
        return outcome

    def confirmation(self, match: Any) -> str | None:
        """The question to ask before running `match` (its intent has `confirm:`), or None when
        it may run at once. The question's slots come from the match, `{heard}` is the text
        understood; a question that cannot be rendered falls back to the default one, so a
        risky intent is never run unasked."""
        with self._lock:
            spec = self._commands.intents.get(str(match.intent))
        if spec is None or spec.confirm is None:
            return None
        heard = str(getattr(match, "text", "") or match.intent).strip().rstrip(".!?").strip()
        values = {"heard": heard[:1].lower() + heard[1:], **dict(match.slots)}
        try:
            return _reply_template(spec.confirm).render(values)
        except MissingValue as exc:
            log.warning("intent %s: confirm %r: %s; asking the default question", match.intent, spec.confirm, exc)
            return _reply_template(DEFAULT_CONFIRM).render(values)

    def replace_commands(self, commands: Any) -> None:
        """Hot reload: later matches use `commands`; timers and handlers in flight carry on."""
        with self._lock:
            self._commands = commands
            self._examples = None

    def restore_timers(self) -> list[str]:
        """Bring back the timers a previous run stored; say (once) those that came due meanwhile,
        and that timers may be lost if the state file could not be read. Returns what was said."""
        said: list[str] = []
        if self._store is None:
            return said
        try:
            lost = self._store.take_notice("timers")
            overdue = self.timers.restore()
        except StoreError as exc:
            log.error("cannot restore timers: %s", exc)
            return said
        if lost is not None:
            said.append("I couldn't read my saved timers, so any timer set before I restarted is lost.")
            self._say(said[-1])
        for timer, ago in overdue:
            said.append(overdue_announcement(timer, ago))
            self._say(said[-1])
            self.timers.finished(timer)
        return said

    def close(self) -> None:
        """Stop timers (stored ones stay for the next run) and handlers in flight."""
        self.timers.close()
        self._stop_in_flight()

    # -- what built-ins use (BuiltinServices) ----------------------------------------------------

    def now(self) -> datetime:
        return self._now()

    def stop_everything(self) -> None:
        """ "Stop" / "never mind": silence the assistant and stop handlers in progress."""
        try:
            self._cancel()
        except Exception:  # noqa: BLE001 - a failing cancel callback must not break "stop"
            log.exception("cancel callback failed")
        stopped = self._stop_in_flight()
        if stopped:
            log.info("stopped %d handler(s) in progress", stopped)

    def last_reply(self) -> str | None:
        with self._lock:
            return self._last_reply

    def examples(self) -> list[str]:
        with self._lock:
            if self._examples is None:
                self._examples = intent_examples(self._commands)
            return list(self._examples)

    # -- internals -----------------------------------------------------------------------------

    def _handle(self, match: Any) -> HandlerOutcome:
        intent = str(match.intent)
        with self._lock:
            spec = self._commands.intents.get(intent)
        if spec is None:
            log.warning("no intent %r in the commands file", intent)
            return HandlerOutcome(intent, False, DEFAULT_ERROR_REPLY, f"unknown intent {intent!r}")
        slots = dict(match.slots)
        handler: HandlerSpec | None = spec.handler
        fields: dict[str, Any] = {}
        if handler is not None:
            failed = self._run(intent, handler, slots, fields)
            if failed is not None:
                return failed
        values = {**slots, **fields}
        try:
            if spec.reply is not None:
                reply = _reply_template(spec.reply).render(values)
            else:
                reply = handler.default_reply(fields) if handler is not None else None
        except MissingValue as exc:
            log.warning("intent %s: reply %r: %s (slots %s)", intent, spec.reply, exc, sorted(slots))
            return self._failure(intent, handler, str(exc))
        return HandlerOutcome(intent, True, reply or None, None)

    def _run(self, intent: str, handler: HandlerSpec, slots: dict[str, Any], fields: dict[str, Any]) -> HandlerOutcome | None:
        context = RunContext(services=self, intent=intent)
        key = id(context)
        with self._lock:
            self._in_flight[key] = (context, handler)
        try:
            fields.update(handler.execute(slots, context))
        except HandlerFailure as exc:
            if exc.detail:
                log.warning("intent %s: %s\n%s", intent, exc.message, exc.detail.rstrip())
            else:
                log.warning("intent %s: %s", intent, exc.message)
            if context.cancelled.is_set():
                return HandlerOutcome(intent, False, None, exc.message)  # stopped on purpose: stay quiet
            return self._failure(intent, handler, exc.message)
        except MissingValue as exc:
            log.warning("intent %s: handler needs %s (slots %s)", intent, exc, sorted(slots))
            return self._failure(intent, handler, str(exc))
        except Exception as exc:  # noqa: BLE001
            log.exception("intent %s: handler crashed", intent)
            return self._failure(intent, handler, f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._in_flight.pop(key, None)
        return None

    def _failure(self, intent: str, handler: HandlerSpec | None, error: str) -> HandlerOutcome:
        if handler is None:
            return HandlerOutcome(intent, False, DEFAULT_ERROR_REPLY, error)
        try:
            reply = handler.error_reply.render({"error": error})
        except MissingValue:
            reply = DEFAULT_ERROR_REPLY
        return HandlerOutcome(intent, False, reply, error)

    def _stop_in_flight(self) -> int:
        with self._lock:
            targets = [ctx for ctx, handler in self._in_flight.values() if not isinstance(handler, BuiltinHandler)]
        for context in targets:
            context.cancel()
        return len(targets)

    def _remember(self, text: str) -> None:
        with self._lock:
            self._last_reply = text

    def _timer_fired(self, timer: Timer) -> None:
        text = timer.announce or "Your timer is done."
        if timer.delivered:
            self._remember(text)  # its owner (a satellite) has been told in its own room
            return
        self._say(text)

    def _say(self, text: str) -> None:
        self._remember(text)
        try:
            self._announce(text)
        except Exception:  # noqa: BLE001 - the timer thread must survive a failing announcer
            log.exception("announcing %r failed", text)
