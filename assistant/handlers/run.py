"""`run:` handlers: execute a program with an argument list, never through a shell.

Slot values come from whatever was said near the microphone, so they are untrusted. Each list
element is a template rendered to exactly one argument: a spoken `; rm -rf ~` or `$(reboot)`
reaches the program as one literal argument, and no shell ever sees it. The program itself may
not contain placeholders (a slot must never choose what runs). The program runs in its own
process group (new session) so that a timeout or "stop" kills it *and* everything it started.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from assistant.yamlpos import PosDict, PosList, position
from assistant.handlers.spec import (
    HandlerFailure,
    HandlerSpec,
    RunContext,
    check_keys,
    describe,
    error_reply_of,
    fail,
    template_of,
    timeout_of,
    value_pos,
)
from assistant.handlers.templates import Template

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
OUTPUT_CAP = 64 * 1024
STDERR_CAP = 8 * 1024
KEYS = {"run", "timeout", "cwd", "error_reply"}


@dataclass(frozen=True)
class RunHandler(HandlerSpec):
    program: str
    args: tuple[Template, ...]
    arg_positions: tuple[tuple[int, int], ...]
    timeout: float
    cwd: Path

    kind = "run"
    FIELDS = frozenset({"output"})

    def slot_references(self) -> list[tuple[str, int, int]]:
        return [(name, line, column) for tpl, (line, column) in zip(self.args, self.arg_positions) for name in sorted(tpl.names)]

    def default_reply(self, fields: Mapping[str, Any]) -> str | None:
        return fields.get("output") or None

    def argv(self, slots: Mapping[str, Any]) -> list[str]:
        """The exact argument vector: one rendered template per argument, no splitting."""
        return [self.program] + [tpl.render(slots) for tpl in self.args]

    def execute(self, slots: Mapping[str, Any], context: RunContext) -> dict[str, Any]:
        argv = self.argv(slots)
        for index, arg in enumerate(argv):
            if "\x00" in arg:  # the OS cannot pass one: say so instead of crashing in Popen
                raise HandlerFailure(f"argument {index} of {self.program} contains a NUL byte (from a slot value?)")
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise HandlerFailure(f"cannot start {self.program}: {exc.strerror or exc}") from exc

        def kill_group() -> None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        context.register_kill(kill_group)
        stdout = _CappedReader(proc.stdout, OUTPUT_CAP)
        stderr = _CappedReader(proc.stderr, STDERR_CAP)
        timed_out = False
        try:
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_group()
                proc.wait()
            # A child left behind may still hold the pipes open: give it what is left of the
            # timeout, then kill the group so we never hang on it.
            for reader in (stdout, stderr):
                reader.join(max(0.0, started + self.timeout - time.monotonic()))
                if reader.is_alive():
                    timed_out = True
                    kill_group()
                    reader.join(1.0)
        finally:
            context.unregister_kill(kill_group)
        err = stderr.text()
        if context.cancelled.is_set():
            raise HandlerFailure(f"{self.program} was stopped")
        if timed_out:
            raise HandlerFailure(f"{self.program} timed out after {self.timeout:g} s (process group killed)", err)
        if proc.returncode != 0:
            why = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            raise HandlerFailure(f"{self.program} failed: {why}", err)
        if err:
            log.info("%s stderr: %s", self.program, err)
        return {"output": stdout.text()}


class _CappedReader:
    """Drains a pipe in a thread, keeping the first `cap` bytes (a chatty program can't fill memory)."""

    def __init__(self, pipe: IO[bytes] | None, cap: int) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._cap = cap
        self._pipe = pipe
        self._thread = threading.Thread(target=self._drain, daemon=True, name="run-handler-pipe")
        self._thread.start()

    def _drain(self) -> None:
        assert self._pipe is not None
        with self._pipe:
            while chunk := self._pipe.read1(65536):
                if self._size < self._cap:
                    self._chunks.append(chunk[: self._cap - self._size])
                    self._size += len(self._chunks[-1])

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", errors="replace").strip()


def parse_run(node: PosDict, path: Path, line: int, column: int) -> RunHandler:
    check_keys(node, path, KEYS, "a run handler")
    argv = node["run"]
    if isinstance(argv, str):
        raise fail(path, value_pos(node, "run"), "run must be a list of arguments, e.g. [\"examples/lightctl\", \"{room}\", \"{state}\"]; a command string is refused because it would need a shell")
    if not isinstance(argv, PosList) or not argv:
        raise fail(path, value_pos(node, "run"), f"run must be a non-empty list of arguments, got {describe(argv)}")
    base = path.parent
    for item in argv:
        if not isinstance(item, str):
            raise fail(path, position(item, position(argv)), f"every run argument must be text (quote it), got {describe(item)}")
    program_text = argv[0]
    program_tpl = template_of(program_text, path, position(program_text), allowed=set())
    if program_tpl.fields:
        raise fail(path, position(program_text), "the program to run may not contain placeholders")
    program = _resolve_program(program_tpl.render({}), base, path, program_text)
    args = tuple(template_of(item, path, position(item)) for item in argv[1:])
    cwd = base
    if "cwd" in node:
        cwd_text = node["cwd"]
        if not isinstance(cwd_text, str) or not cwd_text:
            raise fail(path, value_pos(node, "cwd"), f"cwd must be a folder path, got {describe(cwd_text)}")
        cwd = (base / Path(cwd_text).expanduser()).resolve()
        if not cwd.is_dir():
            raise fail(path, value_pos(node, "cwd"), f"cwd {cwd_text!r} is not a folder ({cwd})")
    return RunHandler(
        path=path,
        line=line,
        column=column,
        error_reply=error_reply_of(node, path),
        program=program,
        args=args,
        arg_positions=tuple(position(item) for item in argv[1:]),
        timeout=timeout_of(node, path, DEFAULT_TIMEOUT_S),
        cwd=cwd,
    )


def _resolve_program(program: str, base: Path, path: Path, where: Any) -> str:
    """A path with a slash is relative to commands.yaml; a bare name is looked up on PATH."""
    if "/" in program:
        resolved = (base / Path(program).expanduser()).resolve()
        if not resolved.is_file():
            raise fail(path, where, f"program {program!r} not found ({resolved})")
        if not os.access(resolved, os.X_OK):
            raise fail(path, where, f"program {program!r} is not executable (chmod +x {resolved})")
        return str(resolved)
    found = shutil.which(program)
    if found is None:
        raise fail(path, where, f"program {program!r} not found on PATH")
    return found
