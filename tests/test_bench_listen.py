"""bench/listen.py runs clips through the real ListenLoop with a recording stand-in for the
handlers: one committed command (not a benchmark clip) through each recognition path must come
out as the right action, so the benchmark cannot silently break when the loop's collaborators
change (it once failed every clip: the stand-in lacked the loop's `confirmation`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.asr import WhisperASR, WhisperSettings  # noqa: E402
from assistant.intents import load_commands  # noqa: E402
from asr_support import AUDIO, real_checkpoint  # noqa: E402
from bench import listen as bench_listen  # noqa: E402
from bench.speechset import Item, ItemPlan  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def asr():
    return WhisperASR(WhisperSettings(model=str(real_checkpoint()), device="cpu"))


@pytest.mark.parametrize("recognition", bench_listen.RECOGNITIONS)
def test_a_committed_command_is_scored_correct_through_the_real_loop(asr, recognition):
    commands = load_commands(ROOT / "commands.yaml")
    info = json.loads((AUDIO / "manifest.json").read_text())["files"]["turn_on_kitchen_lights.wav"]
    plan = ItemPlan(id="committed", kind="command", grammar="commands", text=info["text"],
                    intent="Lights", slots={"state": "on", "room": "kitchen"})
    item = Item(plan, AUDIO / "turn_on_kitchen_lights.wav", 0.0, info["seconds"], info["seconds"])
    row = bench_listen.run_clip(item, asr, commands, recognition, realtime=False)
    assert row["errors"] == 0 and row["verdict"] == "correct", row
    assert row["actions"] == [("Lights", {"state": "on", "room": "kitchen"})] and row["whisper_runs"] >= 1


@pytest.mark.parametrize(
    ("actions", "expected", "verdict"),
    [
        ([("ShoppingListRemove", {"item": "Orange juice."})], ("ShoppingListRemove", {"item": "orange juice"}), "correct"),
        ([("ShoppingListAdd", {"item": "this soap"})], ("ShoppingListAdd", {"item": "dish soap"}), "wrong"),
        ([("Stop", {}), ("Stop", {})], ("Stop", {}), "wrong"),  # acting twice is a wrong action
        ([("Timer", {"minutes": 60})], ("Timer", {"minutes": 62}), "wrong"),
        ([("Time", {})], None, "wrong"),  # a non-command that fired
        ([], ("Stop", {}), "none"),
    ],
)
def test_scoring_compares_text_slots_as_handlers_use_them(actions, expected, verdict):
    assert bench_listen.score(actions, expected) == verdict
