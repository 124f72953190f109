"""`parse_handler`: the `handler:` mapping of one intent -> a validated HandlerSpec.

Exactly one of `run`, `python`, `http` or `builtin` says what the handler is; everything else
in the mapping belongs to that type. Called by the commands.yaml loader for every intent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assistant.yamlpos import PosDict
from assistant.handlers.builtins import parse_builtin
from assistant.handlers.http import parse_http
from assistant.handlers.python import parse_python
from assistant.handlers.run import parse_run
from assistant.handlers.spec import HandlerSpec, describe, fail

PARSERS: dict[str, Callable[[PosDict, Path, int, int], HandlerSpec]] = {
    "run": parse_run,
    "python": parse_python,
    "http": parse_http,
    "builtin": parse_builtin,
}


def parse_handler(node: PosDict, path: Path) -> HandlerSpec:
    """Validate `node` completely; raises CommandsError at the offending key or value."""
    path = Path(path)
    line, column = getattr(node, "line", 1) or 1, getattr(node, "column", 1) or 1
    if not isinstance(node, dict):
        raise fail(path, (line, column), f"handler must be a mapping with one of: {', '.join(PARSERS)}; got {describe(node)}")
    kinds = [key for key in node if key in PARSERS]
    if not kinds:
        keys = ", ".join(repr(k) for k in node) or "nothing"
        where = node.pos_of(next(iter(node))) if node else (line, column)
        raise fail(path, where, f"unknown handler type: expected one of {', '.join(PARSERS)}, got {keys}")
    if len(kinds) > 1:
        raise fail(path, node.pos_of(kinds[1]), f"a handler has one type, got both {kinds[0]!r} and {kinds[1]!r}")
    return PARSERS[kinds[0]](node, path, line, column)
