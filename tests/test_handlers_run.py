"""`run:` handlers: no shell ever, verbatim arguments, timeouts that kill the whole process group."""

from __future__ import annotations

import logging
import os
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from assistant.handlers import Dispatcher
from assistant.intents import IntentMatch, load_commands

ECHO_ARGS = """#!/bin/sh
# one argument per line, exactly as received
for arg in "$@"; do printf '%s\\n' "[$arg]"; done
"""


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body)
    path.chmod(0o755)
    return path


def dispatcher_for(tmp_path: Path, intents_yaml: str) -> Dispatcher:
    path = tmp_path / "commands.yaml"
    path.write_text("lists:\n  thing: {wildcard: true}\nintents:\n" + textwrap.indent(textwrap.dedent(intents_yaml).strip("\n"), "  ") + "\n")
    return Dispatcher(load_commands(path), timer_thread=False)


def test_output_is_available_to_the_reply(tmp_path: Path) -> None:
    script(tmp_path, "echo-args", ECHO_ARGS)
    d = dispatcher_for(
        tmp_path,
        """
        Echo:
          sentences: ["echo {thing}"]
          handler: {run: ["./echo-args", "{thing}", "fixed"]}
          reply: "Got {output}"
        """,
    )
    outcome = d.handle(IntentMatch("Echo", {"thing": "kitchen"}, "echo kitchen"))
    assert outcome.ok and outcome.reply == "Got [kitchen]\n[fixed]"
    assert outcome.error is None


@pytest.mark.parametrize("value", ["; rm -rf ~", "$(reboot)", "`id`", "a b  c", "-rf", "'\"quotes\"'", "x && echo pwned > pwned"])
def test_slot_values_arrive_verbatim_as_one_argument(tmp_path: Path, value: str) -> None:
    script(tmp_path, "echo-args", ECHO_ARGS)
    d = dispatcher_for(
        tmp_path,
        """
        Echo:
          sentences: ["echo {thing}"]
          handler: {run: ["./echo-args", "{thing}", "--name={thing}"]}
        """,
    )
    outcome = d.handle(IntentMatch("Echo", {"thing": value}, "echo"))
    assert outcome.ok
    assert outcome.reply == f"[{value}]\n[--name={value}]"
    assert not (tmp_path / "pwned").exists()


def test_default_reply_is_the_output(tmp_path: Path) -> None:
    d = dispatcher_for(tmp_path, 'Say:\n  sentences: ["say"]\n  handler: {run: ["echo", "hello there"]}')
    assert d.handle(IntentMatch("Say", {}, "say")).reply == "hello there"


def test_non_zero_exit_gives_the_error_reply_and_logs_stderr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    script(tmp_path, "fails", "#!/bin/sh\necho 'bulb unreachable' >&2\nexit 3\n")
    d = dispatcher_for(
        tmp_path,
        """
        Fail:
          sentences: ["fail"]
          handler: {run: ["./fails"], error_reply: "The lights did not answer ({error})."}
          reply: "never said"
        Plain:
          sentences: ["plain"]
          handler: {run: ["./fails"]}
        """,
    )
    with caplog.at_level(logging.WARNING):
        outcome = d.handle(IntentMatch("Fail", {}, "fail"))
    assert not outcome.ok
    assert "exit status 3" in outcome.error
    assert outcome.reply == f"The lights did not answer ({outcome.error})."
    assert "bulb unreachable" in caplog.text
    assert d.handle(IntentMatch("Plain", {}, "plain")).reply == "Sorry, that failed."


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie is dead, only not reaped


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script(tmp_path, "hang", f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nsleep 60\n")
    d = dispatcher_for(
        tmp_path,
        """
        Hang:
          sentences: ["hang"]
          handler: {run: ["./hang"], timeout: 0.5}
        """,
    )
    started = time.monotonic()
    outcome = d.handle(IntentMatch("Hang", {}, "hang"))
    elapsed = time.monotonic() - started
    assert not outcome.ok and "timed out after 0.5 s" in outcome.error
    assert outcome.reply == "Sorry, that failed."
    assert elapsed < 3
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the sleeping grandchild survived the timeout"


def test_a_background_child_holding_stdout_cannot_hang_the_handler(tmp_path: Path) -> None:
    # The program exits at once but leaves a child that keeps stdout open.
    script(tmp_path, "leaves-child", "#!/bin/sh\necho started\nsleep 60 &\nexit 0\n")
    d = dispatcher_for(tmp_path, 'Leave:\n  sentences: ["leave"]\n  handler: {run: ["./leaves-child"], timeout: 0.5}')
    started = time.monotonic()
    outcome = d.handle(IntentMatch("Leave", {}, "leave"))
    assert time.monotonic() - started < 3
    assert not outcome.ok and "timed out" in outcome.error


def test_output_is_capped(tmp_path: Path) -> None:
    script(tmp_path, "chatty", "#!/bin/sh\nhead -c 1000000 /dev/zero | tr '\\0' 'a'\n")
    d = dispatcher_for(tmp_path, 'Chatty:\n  sentences: ["chatty"]\n  handler: {run: ["./chatty"]}')
    outcome = d.handle(IntentMatch("Chatty", {}, "chatty"))
    assert outcome.ok and len(outcome.reply) == 64 * 1024


def test_missing_slot_for_an_argument_is_an_error_reply(tmp_path: Path) -> None:
    d = dispatcher_for(tmp_path, 'Echo:\n  sentences: ["echo [{thing}]"]\n  handler: {run: ["echo", "{thing}"]}')
    outcome = d.handle(IntentMatch("Echo", {}, "echo"))
    assert not outcome.ok and outcome.error == "no value for {thing}" and outcome.reply == "Sorry, that failed."


def test_cwd_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    d = dispatcher_for(tmp_path, 'Where:\n  sentences: ["where"]\n  handler: {run: ["pwd"], cwd: work}')
    assert d.handle(IntentMatch("Where", {}, "where")).reply == str((tmp_path / "work").resolve())


def test_stop_kills_a_running_program(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script(tmp_path, "slow", f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")
    cancelled = threading.Event()
    path = tmp_path / "commands.yaml"
    path.write_text(
        textwrap.dedent(
            """
            intents:
              Slow:
                sentences: ["slow"]
                handler: {run: ["./slow"], timeout: 30}
              Stop:
                sentences: ["stop"]
                handler: {builtin: stop}
                reply: "Okay."
            """
        )
    )
    d = Dispatcher(load_commands(path), cancel=cancelled.set, timer_thread=False)
    results = []
    worker = threading.Thread(target=lambda: results.append(d.handle(IntentMatch("Slow", {}, "slow"))))
    worker.start()
    deadline = time.monotonic() + 5
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    stop = d.handle(IntentMatch("Stop", {}, "stop"))
    worker.join(5)
    assert stop.ok and stop.reply == "Okay." and cancelled.is_set()
    assert results and not results[0].ok and "stopped" in results[0].error
    assert results[0].reply is None  # stopped on purpose: nothing to apologise for
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child)


def test_programs_inherit_the_environment(tmp_path: Path) -> None:
    d = dispatcher_for(tmp_path, 'Env:\n  sentences: ["env"]\n  handler: {run: ["printenv", "ASSISTANT_HOME"]}')
    assert d.handle(IntentMatch("Env", {}, "env")).reply == os.environ["ASSISTANT_HOME"]


@pytest.mark.parametrize(
    ("args", "code", "out"),
    [
        (["kitchen", "on"], 0, "kitchen lights on"),
        (["living room", "40"], 0, "living room lights at 40 percent"),
        (["kitchen", "status"], 0, "kitchen lights off"),
        (["x;y", "on"], 2, ""),
        (["kitchen", "$(reboot)"], 2, ""),
        (["kitchen", "1000"], 2, ""),
    ],
)
def test_example_lightctl_checks_its_arguments(tmp_path: Path, args: list[str], code: int, out: str) -> None:
    lightctl = Path(__file__).resolve().parent.parent / "examples" / "lightctl"
    env = {**os.environ, "LIGHTCTL_STATE": str(tmp_path / "lights.state")}
    result = subprocess.run([str(lightctl), *args], capture_output=True, text=True, env=env, timeout=10)
    assert (result.returncode, result.stdout.strip()) == (code, out)
