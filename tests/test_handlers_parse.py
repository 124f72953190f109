"""Load-time checks of `handler:` mappings: every mistake is a CommandsError at FILE:LINE:COL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from assistant.handlers import BuiltinHandler, HttpHandler, PythonHandler, RunHandler, parse_handler
from assistant.intents import CommandsError, load_commands
from assistant.yamlpos import load_yaml


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


def parse(tmp_path: Path, handler_yaml: str):
    """Parse the `handler:` of a one-intent document written to tmp_path/c.yaml."""
    path = tmp_path / "c.yaml"
    path.write_text("x:\n  handler:\n" + textwrap.indent(textwrap.dedent(handler_yaml).strip("\n"), "    ") + "\n")
    return parse_handler(load_yaml(path)["x"]["handler"], path)


def error(tmp_path: Path, handler_yaml: str) -> str:
    with pytest.raises(CommandsError) as info:
        parse(tmp_path, handler_yaml)
    text = str(info.value)
    assert text.startswith(str(tmp_path / "c.yaml") + ":")
    return text.split(":", 1)[1]  # "LINE:COL: message"


def test_run_handler_parses_and_lists_fields(tmp_path: Path) -> None:
    spec = parse(tmp_path, 'run: ["echo", "{room}", "--state={state}"]\ntimeout: 3')
    assert isinstance(spec, RunHandler)
    assert spec.program.endswith("/echo") and spec.timeout == 3.0
    assert spec.reply_fields() == {"output"}
    assert spec.slot_references() == [("room", 3, 19), ("state", 3, 29)]


def test_run_as_a_string_is_refused(tmp_path: Path) -> None:
    message = error(tmp_path, 'run: "lightctl {room} on"')
    assert message.startswith("3:10: run must be a list of arguments")
    assert "shell" in message


def test_run_program_may_not_be_a_placeholder(tmp_path: Path) -> None:
    assert error(tmp_path, 'run: ["{program}", "x"]').startswith("3:11: unknown placeholder {program}")


def test_run_program_must_exist_and_be_executable(tmp_path: Path) -> None:
    assert error(tmp_path, 'run: ["bin/nothing"]').startswith("3:11: program 'bin/nothing' not found")
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert error(tmp_path, 'run: ["./script"]').startswith("3:11: program './script' is not executable")
    assert error(tmp_path, 'run: ["no-such-program-here"]').startswith("3:11: program 'no-such-program-here' not found on PATH")


def test_run_relative_program_resolves_next_to_the_commands_file(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "tool"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    spec = parse(tmp_path, 'run: ["bin/tool"]')
    assert spec.program == str(script) and spec.cwd == tmp_path


def test_run_arguments_must_be_text(tmp_path: Path) -> None:
    assert error(tmp_path, 'run: ["echo", 5]').startswith("3:10: every run argument must be text")


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        ('run: ["echo"]\ntimeout: -1', "4:5: timeout must be a number of seconds above 0"),
        ('run: ["echo"]\ntimeout: "ten"', "4:5: timeout must be a number"),
        ('run: ["echo"]\ntimeout: 100000', "4:5: timeout must be a number"),
        ('run: ["echo"]\nshell: true', "4:5: unknown key 'shell' in a run handler"),
        ('run: ["echo"]\ncwd: nowhere', "4:10: cwd 'nowhere' is not a folder"),
        ('run: []', "3:10: run must be a non-empty list"),
        ('bogus: 1', "3:5: unknown handler type: expected one of run, python, http, builtin, got 'bogus'"),
        ('run: ["echo"]\nbuiltin: time', "4:5: a handler has one type, got both 'run' and 'builtin'"),
        ('builtin: weather', "3:14: unknown builtin 'weather'"),
        ('builtin: time\nannounce: "x"', "4:5: unknown key 'announce' in builtin time"),
        ('builtin: timer_set\nannounce: "done {nope}"', "4:15: unknown placeholder {nope} (available here: duration)"),
        ('run: ["echo"]\nerror_reply: "oops {"', "4:18: bad template 'oops {'"),
        ('python: "no colon"', "3:13: python handler must look like 'module:function'"),
        ('python: "missing:f"', "3:13: module 'missing' not found next to c.yaml"),
        ('http: {url: "ftp://x/y"}', "3:17: url must start with http:// or https://"),
        ('http: {url: "http://{host}/y"}', "3:17: placeholders may appear only in the path or query"),
        ('http: {url: "http://h/y", method: FETCH}', "3:39: unknown HTTP method 'FETCH'"),
        ('http: {url: "http://h/y", json: {a: 1}}', "3:31: a GET request has no body"),
        ('http: {url: "http://h/y", retries: 3}', "3:31: unknown key 'retries' in http"),
        ('http: {method: POST}', "3:11: http needs a 'url'"),
        ('http: "http://h/"', "3:11: http handler 'http' must be a mapping"),
    ],
)
def test_errors_name_the_line_and_column(tmp_path: Path, handler: str, expected: str) -> None:
    assert error(tmp_path, handler).startswith(expected)


def test_python_handler_resolves_at_load(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("def hello(name):\n    return f'hi {name}'\nVALUE = 3\n")
    spec = parse(tmp_path, 'python: "pkg.mod:hello"\ntimeout: 2')
    assert isinstance(spec, PythonHandler)
    assert spec.function("x") == "hi x" and spec.accepts == frozenset({"name"})
    assert spec.reply_fields() == {"result"}
    assert error(tmp_path, 'python: "pkg.mod:nope"').startswith("3:13: module 'pkg.mod' (")
    assert error(tmp_path, 'python: "pkg.mod:VALUE"').startswith("3:13: pkg.mod:VALUE is not callable")


def test_python_import_errors_are_load_errors(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n")
    assert "importing 'broken'" in error(tmp_path, 'python: "broken:f"')


def test_python_module_is_never_taken_from_elsewhere(tmp_path: Path) -> None:
    # `json` is importable, but not next to the commands file: refused.
    assert error(tmp_path, 'python: "json:dumps"').startswith("3:13: module 'json' not found next to c.yaml")


def test_http_handler_fields_and_references(tmp_path: Path) -> None:
    spec = parse(
        tmp_path,
        """
        http:
          method: post
          url: "http://127.0.0.1:9/x/{room}?q={q}"
          json: {a: "{level}", b: [1, "x{y}"]}
          headers: {X-Room: "{room}"}
          timeout: 2
        """,
    )
    assert isinstance(spec, HttpHandler)
    assert spec.method == "POST" and spec.timeout == 2.0
    assert spec.reply_fields() == {"response", "status"}
    assert sorted(name for name, _, _ in spec.slot_references()) == ["level", "q", "room", "room", "y"]


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("time", {"time", "hour", "minute"}),
        ("date", {"date", "weekday"}),
        ("timer_set", {"duration"}),
        ("timer_cancel", {"count"}),
        ("timer_left", {"remaining", "count"}),
        ("stop", set()),
        ("repeat", {"last"}),
        ("help", {"examples"}),
    ],
)
def test_builtin_reply_fields(tmp_path: Path, name: str, fields: set[str]) -> None:
    spec = parse(tmp_path, f"builtin: {name}")
    assert isinstance(spec, BuiltinHandler) and spec.reply_fields() == fields


def test_reply_may_use_handler_fields_through_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "commands.yaml"
    path.write_text(
        textwrap.dedent(
            """
            intents:
              Now:
                sentences: ["what time is it"]
                handler: {builtin: time}
                reply: "The time is {time}, {missing}."
            """
        )
    )
    with pytest.raises(CommandsError) as info:
        load_commands(path)
    assert str(info.value).startswith(f"{path}:6:")
    assert "{missing}" in str(info.value)
    path.write_text(path.read_text().replace(", {missing}", ""))
    commands = load_commands(path)
    assert isinstance(commands.intents["Now"].handler, BuiltinHandler)


def test_handler_errors_surface_through_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "commands.yaml"
    path.write_text('intents:\n  Lights:\n    sentences: ["lights on"]\n    handler:\n      run: "lightctl on"\n')
    with pytest.raises(CommandsError) as info:
        load_commands(path)
    assert str(info.value).startswith(f"{path}:5:12: run must be a list of arguments")
