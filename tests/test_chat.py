"""`assistant chat` through a real subprocess with stdin, on the shipped commands.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cli import main

ROOT = Path(__file__).resolve().parent.parent


def chat(tmp_path: Path, lines: list[str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-m", "assistant", "chat", *args],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def test_chat_session_on_the_shipped_commands(tmp_path: Path) -> None:
    result = chat(
        tmp_path,
        [
            "turn on the kitchen lights",
            "Set the bedroom lights to 40%.",
            "are the bedroom lights on",
            "",
            "add milk to my shopping list",
            "what's on my shopping list",
            "make me a sandwich",
            "repeat that",
            "set a timer for 1 second",
            "activate the movie scene",
        ],
        "--wait-timers",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Turning on the kitchen lights.",
        "Setting the bedroom lights to 40 percent.",
        "The bedroom lights at 40 percent.",
        "Added milk to your shopping list.",
        "Your shopping list has milk.",
        "(no command matches that)",
        "Your shopping list has milk.",
        "Timer set for 1 second.",
        "Sorry, I couldn't reach Home Assistant.",
        "Time's up! Your timer for 1 second is done.",
    ]
    # lightctl really ran (it records states under ASSISTANT_HOME) ...
    assert sorted((tmp_path / "home" / "data" / "lights.state").read_text().splitlines()) == ["bedroom=40", "kitchen=100"]
    # ... and the failed HTTP call was logged, not fatal.
    assert "SceneActivate" in result.stderr and "127.0.0.1:8123" in result.stderr


def test_a_risky_command_asks_and_runs_only_on_yes(tmp_path: Path) -> None:
    result = chat(tmp_path, [
        "add milk to my shopping list", "clear my shopping list", "no", "what's on my shopping list",
        "clear my shopping list", "what time is it", "what's on my shopping list",
        "clear my shopping list", "yeah, do it", "what's on my shopping list",
        "clear my shopping list",
    ])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Added milk to your shopping list.",
        "Clear your whole shopping list?", "Okay, I won't.", "Your shopping list has milk.",
        "Clear your whole shopping list?", "I didn't hear a yes, so I cancelled that.", "Your shopping list has milk.",
        "Clear your whole shopping list?", "Your shopping list is now empty.", "Your shopping list is empty.",
        "Clear your whole shopping list?", "No answer, so I cancelled that.",
    ]


def test_show_intent(tmp_path: Path) -> None:
    result = chat(tmp_path, ["Uh, turn off the lounge lights."], "--show-intent")
    assert result.stdout.strip() == "[Lights: state='off', room='living room'] Turning off the living room lights."


def test_slot_values_from_speech_never_reach_a_shell(tmp_path: Path) -> None:
    # A wildcard slot carrying shell syntax ends up as literal text in the shopping list.
    result = chat(tmp_path, ["add $(touch pwned); rm -rf ~ to my shopping list", "what's on my shopping list"])
    assert result.returncode == 0, result.stderr
    # (hassil drops the ';' from the wildcard text; the rest is kept literally)
    assert "Added $(touch pwned) rm -rf ~ to your shopping list." in result.stdout
    assert not (ROOT / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_bad_commands_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('intents:\n  X:\n    sentences: ["x"]\n    handler: {run: "rm -rf /"}\n')
    result = chat(tmp_path, ["x"], "--commands", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"{bad}:4:20: run must be a list of arguments")
    assert result.stdout == ""


def test_shipped_intent_tests_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    assert main(["intents", "test", "--tests", "tests/commands_tests.yaml"]) == 0
    assert "sentences passed" in capsys.readouterr().out


def test_shipped_commands_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    assert main(["intents", "check"]) == 0
    assert capsys.readouterr().out.startswith("commands.yaml: OK: ")
