"""`python:` handlers: call `module:function` from a module that lives next to commands.yaml.

The module is loaded from its file under the commands folder (`examples.shopping` is
`examples/shopping.py` or `examples/shopping/__init__.py`), never from whatever happens to be
importable under that name, and it is loaded afresh each time commands.yaml loads so a hot
reload picks up edits. The folder is also put on `sys.path` so the module can import its
siblings. The function is called with the slots as keyword arguments (only those it accepts,
unless it takes `**kwargs`), in a worker thread with a timeout. Python threads cannot be
killed: a function that hangs past its timeout is abandoned (it keeps running in the
background until it returns) and the user hears the error reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import re
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.yamlpos import PosDict
from assistant.handlers.spec import (
    HandlerFailure,
    HandlerSpec,
    RunContext,
    check_keys,
    error_reply_of,
    fail,
    timeout_of,
    value_pos,
    want_str,
)

DEFAULT_TIMEOUT_S = 10.0
KEYS = {"python", "timeout", "error_reply"}
_TARGET = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class PythonHandler(HandlerSpec):
    target: str
    function: Callable[..., Any]
    accepts: frozenset[str] | None  # None: takes **kwargs, gets every slot
    timeout: float

    kind = "python"
    FIELDS = frozenset({"result"})

    def default_reply(self, fields: Mapping[str, Any]) -> str | None:
        result = fields.get("result")
        return result.strip() or None if isinstance(result, str) else None

    def execute(self, slots: Mapping[str, Any], context: RunContext) -> dict[str, Any]:
        kwargs = {k: v for k, v in slots.items() if self.accepts is None or k in self.accepts}
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def work() -> None:
            try:
                value = self.function(**kwargs)
                if inspect.iscoroutine(value):
                    value = asyncio.run(value)
                outcome["result"] = value
            except BaseException as exc:  # noqa: BLE001 - a handler must never take the assistant down
                outcome["error"] = exc
                outcome["traceback"] = traceback.format_exc()
            finally:
                finished.set()

        stop_waiting = finished.set
        context.register_kill(stop_waiting)
        try:
            threading.Thread(target=work, daemon=True, name=f"python-handler {self.target}").start()
            finished.wait(self.timeout)
        finally:
            context.unregister_kill(stop_waiting)
        if "error" in outcome:
            exc = outcome["error"]
            raise HandlerFailure(f"{self.target} raised {type(exc).__name__}: {exc}", outcome["traceback"])
        if "result" in outcome:
            return {"result": outcome["result"]}
        if context.cancelled.is_set():
            raise HandlerFailure(f"{self.target} was stopped (its thread is abandoned: Python threads cannot be killed)")
        raise HandlerFailure(f"{self.target} timed out after {self.timeout:g} s (its thread is abandoned: Python threads cannot be killed)")


def parse_python(node: PosDict, path: Path, line: int, column: int) -> PythonHandler:
    check_keys(node, path, KEYS, "a python handler")
    target = want_str(node, "python", path, "python handler")
    where = value_pos(node, "python")
    match = _TARGET.fullmatch(target.strip())
    if not match:
        raise fail(path, where, f"python handler must look like 'module:function' (e.g. 'examples.shopping:add_item'), got {target!r}")
    module_name, function_name = match.groups()
    module = _load_module(module_name, path, where)
    function = getattr(module, function_name, None)
    if function is None:
        raise fail(path, where, f"module {module_name!r} ({module.__file__}) has no function {function_name!r}")
    if not callable(function):
        raise fail(path, where, f"{module_name}:{function_name} is not callable")
    return PythonHandler(
        path=path,
        line=line,
        column=column,
        error_reply=error_reply_of(node, path),
        target=f"{module_name}:{function_name}",
        function=function,
        accepts=_accepted_keywords(function),
        timeout=timeout_of(node, path, DEFAULT_TIMEOUT_S),
    )


def _load_module(module_name: str, path: Path, where: tuple[int, int]) -> Any:
    base = path.parent.resolve()
    relative = Path(*module_name.split("."))
    candidates = [base / relative.with_suffix(".py"), base / relative / "__init__.py"]
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        raise fail(path, where, f"module {module_name!r} not found next to {path.name} (looked for {candidates[0]} and {candidates[1]})")
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    # A private name per commands folder: never shadows or reuses another module of the same name.
    private = f"_assistant_commands_{hashlib.sha1(str(base).encode()).hexdigest()[:10]}.{module_name}"
    spec = importlib.util.spec_from_file_location(private, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any import-time error is a load error of the commands file
        sys.modules.pop(private, None)
        raise fail(path, where, f"importing {module_name!r} ({file}) failed: {type(exc).__name__}: {exc}") from exc
    return module


def _accepted_keywords(function: Callable[..., Any]) -> frozenset[str] | None:
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))
