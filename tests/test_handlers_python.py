"""`python:` handlers: slots as keyword arguments, results in replies, failures never crash."""

from __future__ import annotations

import json
import logging
import sqlite3
import textwrap
import threading
import time
from pathlib import Path

import pytest

from assistant.handlers import Dispatcher
from assistant.intents import IntentMatch, load_commands

MODULE = '''
import time

calls = []

def greet(name, greeting="Hello"):
    calls.append(name)
    return f"{greeting}, {name}!"

def add(item, **rest):
    return {"item": item.upper(), "count": 2, "rest": sorted(rest)}

def boom(item):
    raise RuntimeError("the list is on fire")

def hang():
    time.sleep(5)
    return "too late"

def silent():
    return None

async def later(name):
    return f"async {name}"
'''

INTENTS = """
lists:
  name: {wildcard: true}
  item: {wildcard: true}
intents:
  Greet:
    sentences: ["greet {name}"]
    handler: {python: "handlers.mod:greet"}
  Add:
    sentences: ["add {item}"]
    handler: {python: "handlers.mod:add"}
    reply: "Added {result.item}, {result.count} items."
  Boom:
    sentences: ["boom {item}"]
    handler: {python: "handlers.mod:boom", error_reply: "The list broke."}
  Hang:
    sentences: ["hang"]
    handler: {python: "handlers.mod:hang", timeout: 0.2}
  Silent:
    sentences: ["silent"]
    handler: {python: "handlers.mod:silent"}
    reply: "Done: {result}"
  Later:
    sentences: ["later {name}"]
    handler: {python: "handlers.mod:later"}
"""


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


@pytest.fixture
def dispatcher(tmp_path: Path) -> Dispatcher:
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "mod.py").write_text(MODULE)
    (tmp_path / "commands.yaml").write_text(textwrap.dedent(INTENTS))
    d = Dispatcher(load_commands(tmp_path / "commands.yaml"), timer_thread=False)
    yield d
    d.close()


def test_called_with_the_slots_it_accepts(dispatcher: Dispatcher) -> None:
    outcome = dispatcher.handle(IntentMatch("Greet", {"name": "Ada", "extra": "ignored"}, "greet ada"))
    assert outcome.ok and outcome.reply == "Hello, Ada!"


def test_dict_result_is_read_with_dotted_fields(dispatcher: Dispatcher) -> None:
    outcome = dispatcher.handle(IntentMatch("Add", {"item": "milk", "other": 1}, "add milk"))
    assert outcome.ok and outcome.reply == "Added MILK, 2 items."


def test_exception_becomes_an_error_reply_and_a_logged_traceback(dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        outcome = dispatcher.handle(IntentMatch("Boom", {"item": "x"}, "boom x"))
    assert not outcome.ok and outcome.reply == "The list broke."
    assert outcome.error == "handlers.mod:boom raised RuntimeError: the list is on fire"
    assert "Traceback" in caplog.text and "the list is on fire" in caplog.text


def test_a_hung_function_is_abandoned_after_its_timeout(dispatcher: Dispatcher) -> None:
    started = time.monotonic()
    outcome = dispatcher.handle(IntentMatch("Hang", {}, "hang"))
    assert time.monotonic() - started < 2
    assert not outcome.ok and "timed out after 0.2 s" in outcome.error and "cannot be killed" in outcome.error
    assert outcome.reply == "Sorry, that failed."


def test_none_result_with_a_reply_needing_it_is_an_error(dispatcher: Dispatcher) -> None:
    outcome = dispatcher.handle(IntentMatch("Silent", {}, "silent"))
    assert not outcome.ok and outcome.error == "no value for {result}"


def test_coroutine_functions_are_awaited(dispatcher: Dispatcher) -> None:
    assert dispatcher.handle(IntentMatch("Later", {"name": "Bo"}, "later bo")).reply == "async Bo"


def test_missing_required_argument_is_an_error_reply(dispatcher: Dispatcher) -> None:
    outcome = dispatcher.handle(IntentMatch("Greet", {}, "greet"))
    assert not outcome.ok and "TypeError" in outcome.error


def test_reload_picks_up_edits_to_the_module(tmp_path: Path, dispatcher: Dispatcher) -> None:
    (tmp_path / "handlers" / "mod.py").write_text(MODULE.replace('f"{greeting}, {name}!"', 'f"Hi again, {name}."'))
    dispatcher.replace_commands(load_commands(tmp_path / "commands.yaml"))
    assert dispatcher.handle(IntentMatch("Greet", {"name": "Ada"}, "greet ada")).reply == "Hi again, Ada."


def test_shipped_shopping_list_example(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    d = Dispatcher(load_commands(root / "commands.yaml"), timer_thread=False)
    try:
        assert d.handle(IntentMatch("ShoppingListRead", {}, "")).reply == "Your shopping list is empty."
        assert d.handle(IntentMatch("ShoppingListAdd", {"item": "Milk."}, "")).reply == "Added milk to your shopping list."
        assert d.handle(IntentMatch("ShoppingListAdd", {"item": "eggs"}, "")).reply == "Added eggs to your shopping list."
        assert d.handle(IntentMatch("ShoppingListRead", {}, "")).reply == "Your shopping list has milk and eggs."
        assert d.handle(IntentMatch("ShoppingListRemove", {"item": "milk"}, "")).reply == "Removed milk from your shopping list."
        assert d.handle(IntentMatch("ShoppingListRemove", {"item": "milk"}, "")).reply == "milk is not on your shopping list."
        assert d.handle(IntentMatch("ShoppingListClear", {}, "")).reply == "Your shopping list is now empty."
        assert d.handle(IntentMatch("ShoppingListAdd", {"item": "tea"}, "")).reply == "Added tea to your shopping list."
        # committed to the state database in the data folder, readable by another connection
        with sqlite3.connect(tmp_path / "home" / "data" / "state.sqlite3") as db:
            assert json.loads(db.execute("SELECT value FROM kv WHERE key = 'shopping'").fetchone()[0]) == ["tea"]
    finally:
        d.close()


def test_stop_releases_a_waiting_python_handler(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text("import time\n\ndef wait():\n    time.sleep(3)\n    return 'late'\n")
    (tmp_path / "commands.yaml").write_text(
        textwrap.dedent(
            """
            intents:
              Wait:
                sentences: ["wait"]
                handler: {python: "slow:wait", timeout: 30}
              Stop:
                sentences: ["stop"]
                handler: {builtin: stop}
            """
        )
    )
    d = Dispatcher(load_commands(tmp_path / "commands.yaml"), timer_thread=False)
    results = []
    worker = threading.Thread(target=lambda: results.append(d.handle(IntentMatch("Wait", {}, "wait"))))
    started = time.monotonic()
    worker.start()
    time.sleep(0.1)
    assert d.handle(IntentMatch("Stop", {}, "stop")).ok
    worker.join(2)
    assert time.monotonic() - started < 2
    assert results and not results[0].ok and "stopped" in results[0].error and results[0].reply is None
