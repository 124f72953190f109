"""What every handler type shares: the base spec, the run-time context, and load-time checks.

A handler is parsed once, when commands.yaml loads, into an immutable spec that already holds
everything it needs at run time (resolved program path, imported function, parsed templates).
Every check that can happen at load does, with the file:line:column of the offending key or
value, so that nothing starts with a bad file and nothing fails later for a reason that was
visible in the YAML.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from assistant.yamlpos import CommandsError
from assistant.yamlpos import PosDict, position
from assistant.handlers.templates import Template, TemplateError, parse_template

DEFAULT_ERROR_REPLY = "Sorry, that failed."
DEFAULT_CONFIRM = "Should I {heard}?"
"""The question `confirm: true` asks; `{heard}` is what was understood ("Should I clear my
shopping list?"), so a misheard command ("lock" for "unlock") is caught by the listener."""
MAX_TIMEOUT_S = 600.0


class HandlerFailure(Exception):
    """An expected failure of a handler (non-zero exit, HTTP error, timeout...).

    `message` is short and safe to log; `detail` (stderr, response body) is logged beside it.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


@dataclass
class RunContext:
    """One handler call's link to "stop"; the Dispatcher keeps the contexts of calls in flight.

    `cancel()` sets `cancelled` (long-running handlers poll it) and runs every registered kill
    function (a subprocess handler registers one that kills its process group).
    """

    services: Any = None  # the Dispatcher's BuiltinServices (timers, clock, last reply...)
    intent: str = ""
    """The intent being handled (a timer remembers which intent set it)."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    _kills: set[Callable[[], None]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register_kill(self, kill: Callable[[], None]) -> None:
        with self._lock:
            self._kills.add(kill)
        if self.cancelled.is_set():
            kill()

    def unregister_kill(self, kill: Callable[[], None]) -> None:
        with self._lock:
            self._kills.discard(kill)

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            kills = list(self._kills)
        for kill in kills:
            kill()


@dataclass(frozen=True)
class HandlerSpec:
    """Base of all handler specs.

    `error_reply` is what is said when the handler fails; `line`/`column` locate the `handler:`
    mapping for messages.
    """

    path: Path
    line: int
    column: int
    error_reply: Template

    kind: ClassVar[str] = "handler"
    FIELDS: ClassVar[frozenset[str]] = frozenset()

    def reply_fields(self) -> set[str]:
        """Names a reply template may use besides the slots."""
        return set(self.FIELDS)

    def slot_references(self) -> list[tuple[str, int, int]]:
        """(slot name, line, column) of every slot the handler's own templates use.

        The loader checks these against the intent's slots, like reply placeholders.
        """
        return []

    def default_reply(self, fields: Mapping[str, Any]) -> str | None:
        """What to say when the intent has no `reply:` (the handler's own words, if any)."""
        return None

    def execute(self, slots: Mapping[str, Any], context: RunContext) -> dict[str, Any]:
        """Do the work; return the fields the reply may use. Raises HandlerFailure on failure."""
        raise NotImplementedError


# --- load-time helpers shared by the handler types -------------------------------------------


def fail(path: Path, where: Any, message: str) -> CommandsError:
    """A CommandsError at the position of `where` (a loaded value or a (line, column) pair)."""
    line, column = where if isinstance(where, tuple) else position(where)
    return CommandsError(path, line, column, message)


def check_keys(node: PosDict, path: Path, allowed: set[str], what: str) -> None:
    for key in node:
        if key not in allowed:
            choices = ", ".join(sorted(allowed))
            raise fail(path, node.pos_of(key), f"unknown key {key!r} in {what} (expected one of: {choices})")


def want_str(node: PosDict, key: str, path: Path, what: str) -> str:
    value = node[key]
    if not isinstance(value, str) or not value.strip():
        raise fail(path, value_pos(node, key), f"{what} '{key}' must be a non-empty string, got {describe(value)}")
    return value


def want_mapping(node: PosDict, key: str, path: Path, what: str) -> PosDict:
    value = node[key]
    if not isinstance(value, PosDict):
        raise fail(path, value_pos(node, key), f"{what} '{key}' must be a mapping, got {describe(value)}")
    return value


def timeout_of(node: PosDict, path: Path, default: float) -> float:
    """`timeout:` in seconds: a positive number up to MAX_TIMEOUT_S."""
    if "timeout" not in node:
        return default
    value = node["timeout"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_S:
        raise fail(path, node.pos_of("timeout"), f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, got {describe(value)}")
    return float(value)


def template_of(value: Any, path: Path, where: Any, allowed: set[str] | None = None) -> Template:
    """Parse a template string; with `allowed`, every field must be one of those names."""
    if not isinstance(value, str):
        raise fail(path, where, f"expected a text template, got {describe(value)}")
    try:
        template = parse_template(value)
    except TemplateError as exc:
        raise fail(path, where, f"bad template {value!r}: {exc.message}") from exc
    if allowed is not None:
        for fld in template.fields:
            if fld.name not in allowed:
                names = ", ".join(sorted(allowed)) or "none"
                raise fail(path, where, f"unknown placeholder {{{fld.dotted}}} (available here: {names})")
    return template


def error_reply_of(node: PosDict, path: Path) -> Template:
    if "error_reply" not in node:
        return parse_template(DEFAULT_ERROR_REPLY)
    return template_of(node["error_reply"], path, value_pos(node, "error_reply"), allowed={"error"})


def value_pos(node: PosDict, key: str) -> tuple[int, int]:
    value = node[key]
    return position(value, node.pos_of(key))


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__

