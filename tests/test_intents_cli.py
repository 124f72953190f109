"""`assistant intents check|test`, through the real argument parser."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from assistant.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "intents_grammar.yaml"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--log-level", "ERROR", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_ok_prints_a_summary(capsys):
    code, out, err = run(capsys, "intents", "check", str(FIXTURE))
    assert code == 0 and "OK: 7 intents, 9 sentence templates" in out and err == ""


def test_check_defaults_to_commands_yaml_in_the_current_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "commands.yaml").write_text('intents:\n  A:\n    sentences: ["hello there"]\n', encoding="utf-8")
    code, out, _ = run(capsys, "intents", "check")
    assert code == 0 and out.startswith("commands.yaml: OK: 1 intents")


def test_check_bad_file_exits_1_with_position_on_stderr(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('intents:\n  A:\n    sentences: ["turn on {lamp}"]\n', encoding="utf-8")
    code, out, err = run(capsys, "intents", "check", str(bad))
    assert code == 1 and out == ""
    assert err.strip() == f"{bad}:3:26: unknown list {{lamp}} in intent 'A'"


def test_check_with_lists_supplied_on_the_command_line(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('intents:\n  A:\n    sentences: ["turn on {lamp}"]\n', encoding="utf-8")
    assert run(capsys, "intents", "check", str(path), "--list", "lamp=desk,floor")[0] == 0
    assert run(capsys, "intents", "check", str(path), "--list", "lamp=*")[0] == 0


def test_test_prints_one_json_object_per_sentence(capsys):
    code, out, _ = run(
        capsys, "intents", "test", "--commands", str(FIXTURE), "Turn on the kitchen lights.", "hello", "what time it"
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert lines[0] == {"text": "Turn on the kitchen lights.", "intent": "LightsOn", "slots": {"room": "kitchen"}}
    assert lines[1] == {"text": "hello", "intent": None, "slots": {}}
    assert lines[2] == {"text": "what time it", "intent": "Time", "slots": {}, "exact": False}


def test_test_with_run_adds_the_reply(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        textwrap.dedent('''
            intents:
              Greet:
                sentences: ["say hello to {who}"]
                reply: "Hello, {who}!"
            lists:
              who: {values: [alice, bob]}
            '''),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "intents", "test", "--commands", str(path), "--run", "say hello to bob", "nothing")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert lines[0] == {"text": "say hello to bob", "intent": "Greet", "slots": {"who": "bob"}, "reply": "Hello, bob!"}
    assert lines[1] == {"text": "nothing", "intent": None, "slots": {}, "reply": None}


def test_tests_file_passes_and_fails_with_a_clear_report(capsys, tmp_path):
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        textwrap.dedent('''
            tests:
              - sentences: ["turn on the kitchen lights", "Uh, turn on the kitchen lights."]
                intent: {name: LightsOn, slots: {room: kitchen}}
              - sentences: ["turn the kitchen lights"]
                intent: null
              - sentences: ["hello there"]
                no_match: true
            '''),
        encoding="utf-8",
    )
    code, out, err = run(capsys, "intents", "test", "--commands", str(FIXTURE), "--tests", str(tests))
    assert code == 0 and "4/4 sentences passed" in out and err == ""

    tests.write_text(
        'tests:\n  - sentences: ["turn on the bedroom lights"]\n    intent: {name: LightsOn, slots: {room: kitchen}}\n'
        '  - sentences: ["what time is it"]\n    intent: null\n',
        encoding="utf-8",
    )
    code, out, err = run(capsys, "intents", "test", "--commands", str(FIXTURE), "--tests", str(tests))
    assert code == 1 and "0/2 sentences passed, 2 FAILED" in out
    assert f"{tests}:line 2: 'turn on the bedroom lights': expected LightsOn {{'room': 'kitchen'}}" in err
    assert "got LightsOn {'room': 'bed_room'}" in err
    assert f"{tests}:line 4: 'what time is it': expected no match, got Time {{}}" in err


def test_bad_tests_file_is_reported_with_position(capsys, tmp_path):
    tests = tmp_path / "tests.yaml"
    tests.write_text("tests:\n  - sentences: [a]\n    intnet: {name: X}\n", encoding="utf-8")
    code, _, err = run(capsys, "intents", "test", "--commands", str(FIXTURE), "--tests", str(tests))
    assert code == 1 and err.startswith(f"{tests}:3:5: unknown key 'intnet'")


def test_shipped_commands_pass_their_tests_file(capsys):
    commands, tests = ROOT / "commands.yaml", ROOT / "tests" / "commands_tests.yaml"
    code, out, err = run(capsys, "intents", "test", "--commands", str(commands), "--tests", str(tests))
    assert code == 0, err
    assert "sentences passed" in out
