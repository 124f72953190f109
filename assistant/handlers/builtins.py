"""`builtin:` handlers: what every assistant needs and no script should have to provide.

    time          fields {time} {hour} {minute}       "It's 3:05 PM."
    date          fields {date} {weekday}             "Today is Tuesday, November 24."
    timer_set     slots hours/minutes/seconds; field {duration}; option `announce:` is said when
                  it fires (default "Your timer for {duration} is done.")
    timer_cancel  field {count} (timers cancelled)
    timer_left    field {remaining} ("4 minutes and 30 seconds"; several timers: each, soonest first)
    stop          calls the assistant's cancel() (stops speech) and stops handlers in progress
    repeat        field {last}: the last thing said (replies and timer announcements)
    help          field {examples}: one example sentence per intent

Each has a natural default reply, used when the intent has no `reply:`; a `reply:` template
may use the fields above (and the slots) to say it differently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from assistant.yamlpos import PosDict
from assistant.handlers.spec import (
    HandlerFailure,
    HandlerSpec,
    RunContext,
    check_keys,
    error_reply_of,
    fail,
    template_of,
    value_pos,
    want_str,
)
from assistant.handlers.templates import Template, format_value, parse_template
from assistant.handlers.timers import Timer, TimerService
from assistant.store import StoreError

MAX_TIMER_S = 24 * 3600
DEFAULT_ANNOUNCE = "Your timer for {duration} is done."


class BuiltinServices(Protocol):
    """What built-ins reach in the Dispatcher (kept narrow so they are easy to test)."""

    timers: TimerService

    def now(self) -> datetime: ...
    def stop_everything(self) -> None: ...
    def last_reply(self) -> str | None: ...
    def examples(self) -> list[str]: ...


@dataclass(frozen=True)
class _Builtin:
    fields: frozenset[str]
    run: Callable[[Mapping[str, Any], BuiltinServices, "BuiltinHandler", RunContext], dict[str, Any]]
    reply: Callable[[Mapping[str, Any]], str | None]
    error_reply: str = "Sorry, that failed."
    options: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BuiltinHandler(HandlerSpec):
    name: str
    announce: Template | None = None

    kind = "builtin"

    def reply_fields(self) -> set[str]:
        return set(BUILTINS[self.name].fields)

    def default_reply(self, fields: Mapping[str, Any]) -> str | None:
        return BUILTINS[self.name].reply(fields)

    def execute(self, slots: Mapping[str, Any], context: RunContext) -> dict[str, Any]:
        if context.services is None:
            raise HandlerFailure(f"builtin {self.name} needs the Dispatcher's services")
        return BUILTINS[self.name].run(slots, context.services, self, context)


# --- the built-ins -------------------------------------------------------------------------------


def _time(slots: Mapping[str, Any], services: BuiltinServices, spec: BuiltinHandler, context: RunContext) -> dict[str, Any]:
    now = services.now()
    hour12 = now.hour % 12 or 12
    return {"time": f"{hour12}:{now.minute:02d} {'AM' if now.hour < 12 else 'PM'}", "hour": now.hour, "minute": now.minute}


def _date(slots: Mapping[str, Any], services: BuiltinServices, spec: BuiltinHandler, context: RunContext) -> dict[str, Any]:
    now = services.now()
    return {"date": f"{now:%A}, {now:%B} {now.day}", "weekday": f"{now:%A}"}


def _timer_set(slots: Mapping[str, Any], services: BuiltinServices, spec: BuiltinHandler, context: RunContext) -> dict[str, Any]:
    seconds = duration_seconds(slots)
    if seconds <= 0:
        raise HandlerFailure("timer_set needs a duration (hours, minutes or seconds slot)")
    if seconds > MAX_TIMER_S:
        raise HandlerFailure(f"timer of {seconds:g} s is longer than {MAX_TIMER_S // 3600} hours")
    duration = spell_duration(seconds)
    announce = (spec.announce or parse_template(DEFAULT_ANNOUNCE)).render({"duration": duration})
    try:
        services.timers.start(seconds, announce, label=duration, intent=context.intent)
    except StoreError as exc:
        raise HandlerFailure(f"the timer could not be saved: {exc}") from exc
    return {"duration": duration}


def _timer_cancel(slots: Mapping[str, Any], services: BuiltinServices, spec: BuiltinHandler, context: RunContext) -> dict[str, Any]:
    try:
        return {"count": services.timers.cancel_all()}
    except StoreError as exc:
        raise HandlerFailure(f"the timers could not be cancelled in the store: {exc}") from exc


def _timer_left(slots: Mapping[str, Any], services: BuiltinServices, spec: BuiltinHandler, context: RunContext) -> dict[str, Any]:
    left = [spell_duration(max(1, math.ceil(seconds))) for _, seconds in services.timers.pending()]
    return {"remaining": ", then ".join(left) if left else None, "count": len(left)}


def _stop(slots: Mapping[str, Any], services: BuiltinServices, spec: BuiltinHandler, context: RunContext) -> dict[str, Any]:
    services.stop_everything()
    return {}


def _repeat(slots: Mapping[str, Any], services: BuiltinServices, spec: BuiltinHandler, context: RunContext) -> dict[str, Any]:
    return {"last": services.last_reply()}


def _help(slots: Mapping[str, Any], services: BuiltinServices, spec: BuiltinHandler, context: RunContext) -> dict[str, Any]:
    examples = services.examples()
    return {"examples": "; ".join(f'"{example}"' for example in examples) if examples else None}


def _left_reply(fields: Mapping[str, Any]) -> str:
    if not fields.get("count"):
        return "No timer is running."
    if fields["count"] == 1:
        return f"{fields['remaining']} left."
    return f"{fields['count']} timers: {fields['remaining']} left."


BUILTINS: dict[str, _Builtin] = {
    "time": _Builtin(frozenset({"time", "hour", "minute"}), _time, lambda f: f"It's {f['time']}."),
    "date": _Builtin(frozenset({"date", "weekday"}), _date, lambda f: f"Today is {f['date']}."),
    "timer_set": _Builtin(
        frozenset({"duration"}),
        _timer_set,
        lambda f: f"Timer set for {f['duration']}.",
        error_reply="Sorry, I didn't catch how long.",
        options=frozenset({"announce"}),
    ),
    "timer_cancel": _Builtin(
        frozenset({"count"}),
        _timer_cancel,
        lambda f: ("Timer cancelled." if f["count"] == 1 else f"{f['count']} timers cancelled.") if f["count"] else "There is no timer to cancel.",
    ),
    "timer_left": _Builtin(frozenset({"remaining", "count"}), _timer_left, _left_reply),
    "stop": _Builtin(frozenset(), _stop, lambda f: None),
    "repeat": _Builtin(frozenset({"last"}), _repeat, lambda f: f.get("last") or "I haven't said anything yet."),
    "help": _Builtin(frozenset({"examples"}), _help, lambda f: f"You can say: {f['examples']}." if f.get("examples") else "I don't know any commands yet."),
}


# --- durations -------------------------------------------------------------------------------------


def duration_seconds(slots: Mapping[str, Any]) -> float:
    """Total seconds from the `hours`, `minutes` and `seconds` slots (numbers or numeric text)."""
    total = 0.0
    for name, factor in (("hours", 3600), ("minutes", 60), ("seconds", 1)):
        value = slots.get(name)
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise HandlerFailure(f"{name} slot is not a number: {value!r}") from exc
        if number < 0:
            raise HandlerFailure(f"{name} slot is negative: {value!r}")
        total += number * factor
    return total


def spell_duration(seconds: float) -> str:
    """'1 hour and 5 minutes', '90 seconds' -> '1 minute and 30 seconds' (how people say it)."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second")) if n]
    return format_value(parts) if parts else "0 seconds"


def overdue_announcement(timer: Timer, ago: float) -> str:
    """What to say for a timer that came due while the assistant was not running:
    "Your 40 minute timer finished 3 minutes ago." (minutes past a minute: nobody needs the seconds)."""
    whole = max(1, round(ago)) if ago < 60 else max(60, round(ago / 60) * 60)
    when = f"{spell_duration(whole)} ago"
    parts = timer.label.split()
    if len(parts) == 2 and parts[0].isdigit():  # one unit: "40 minutes" -> "40 minute timer"
        return f"Your {parts[0]} {parts[1].rstrip('s')} timer finished {when}."
    if timer.label:
        return f"Your timer for {timer.label} finished {when}."
    return f"Your timer finished {when}."


def parse_builtin(node: PosDict, path: Path, line: int, column: int) -> BuiltinHandler:
    name = want_str(node, "builtin", path, "builtin handler")
    if name not in BUILTINS:
        raise fail(path, value_pos(node, "builtin"), f"unknown builtin {name!r} (expected one of: {', '.join(sorted(BUILTINS))})")
    builtin = BUILTINS[name]
    check_keys(node, path, {"builtin", "error_reply"} | set(builtin.options), f"builtin {name}")
    announce = None
    if "announce" in node:
        announce = template_of(node["announce"], path, value_pos(node, "announce"), allowed={"duration"})
    error_reply = error_reply_of(node, path) if "error_reply" in node else parse_template(builtin.error_reply)
    return BuiltinHandler(path=path, line=line, column=column, error_reply=error_reply, name=str(name), announce=announce)
