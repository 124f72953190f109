"""The durable store: timers and handler data survive restarts; unreadable state is set aside."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from assistant.handlers import Dispatcher
from assistant.handlers.builtins import overdue_announcement
from assistant.handlers.timers import Timer
from assistant.intents import IntentMatch, load_commands
from assistant.store import Store, StoreError, shared_store

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """A monotonic clock and a wall clock that move together (a restart resets the monotonic one)."""

    def __init__(self, wall: float = 1_800_000_000.0) -> None:
        self.wall = wall
        self.mono = 50.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def restart(self, down_for: float) -> None:
        self.wall += down_for
        self.mono = 7.0  # a new boot: monotonic time starts again


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def shipped():
    return load_commands(ROOT / "commands.yaml")


def run(store: Store, clock: Clock, shipped, said: list[str]) -> Dispatcher:
    return Dispatcher(shipped, announce=said.append, clock=lambda: clock.mono, wall=lambda: clock.wall,
                      timer_thread=False, now=lambda: datetime(2026, 3, 7, 15, 5), store=store)


def say(d: Dispatcher, commands, text: str) -> str | None:
    match = commands.match(text)
    assert match is not None, text
    return d.handle(match).reply


def test_a_pending_timer_survives_a_restart_and_fires_on_time(tmp_path: Path, shipped) -> None:
    clock, said = Clock(), []
    path = tmp_path / "state.sqlite3"
    d = run(Store(path), clock, shipped, said)
    assert say(d, shipped, "set a timer for 40 minutes") == "Timer set for 40 minutes."
    clock.advance(600)
    d.close()  # the process ends (close keeps stored timers)
    clock.restart(down_for=300)

    d = run(Store(path), clock, shipped, said)
    assert d.restore_timers() == []
    (timer, left), = d.timers.pending()
    assert left == pytest.approx(40 * 60 - 900)
    assert (timer.label, timer.intent) == ("40 minutes", "TimerSet")
    assert say(d, shipped, "how much time is left") == "25 minutes left."
    clock.advance(1499)
    assert d.timers.run_due() == 0
    clock.advance(1)
    assert d.timers.run_due() == 1 and said == ["Time's up! Your timer for 40 minutes is done."]
    assert Store(path).timers() == []  # fired: gone from disk, not said again at the next start


def test_a_timer_due_while_down_is_announced_once(tmp_path: Path, shipped) -> None:
    clock, said = Clock(), []
    path = tmp_path / "state.sqlite3"
    d = run(Store(path), clock, shipped, said)
    say(d, shipped, "set a timer for 40 minutes")
    say(d, shipped, "set a timer for 1 hour and 30 minutes")
    d.close()
    clock.restart(down_for=43 * 60)

    d = run(Store(path), clock, shipped, said)
    assert d.restore_timers() == ["Your 40 minute timer finished 3 minutes ago."]
    assert said == ["Your 40 minute timer finished 3 minutes ago."]
    assert say(d, shipped, "repeat that") == "Your 40 minute timer finished 3 minutes ago."
    assert [t.label for t, _ in d.timers.pending()] == ["1 hour and 30 minutes"]
    assert d.restore_timers() == []  # once per run
    d.close()
    clock.restart(down_for=5)
    d = run(Store(path), clock, shipped, said)
    assert d.restore_timers() == []  # not repeated by the next start either
    assert [t.label for t, _ in d.timers.pending()] == ["1 hour and 30 minutes"]


def test_cancel_is_durable(tmp_path: Path, shipped) -> None:
    clock, said = Clock(), []
    path = tmp_path / "state.sqlite3"
    d = run(Store(path), clock, shipped, said)
    say(d, shipped, "set a timer for 5 minutes")
    assert say(d, shipped, "cancel the timer") == "Timer cancelled."
    d.close()
    clock.restart(down_for=3600)
    d = run(Store(path), clock, shipped, said)
    assert d.restore_timers() == [] and d.timers.pending() == [] and said == []


@pytest.mark.parametrize(("label", "ago", "text"), [
    ("40 minutes", 180, "Your 40 minute timer finished 3 minutes ago."),
    ("1 hour", 20, "Your 1 hour timer finished 20 seconds ago."),
    ("1 minute and 30 seconds", 3 * 3600 + 100, "Your timer for 1 minute and 30 seconds finished 3 hours and 2 minutes ago."),
    ("", 0.2, "Your timer finished 1 second ago."),
])
def test_overdue_wording(label: str, ago: float, text: str) -> None:
    assert overdue_announcement(Timer(0, 1, 60, "x", label), ago) == text


def test_a_store_that_cannot_save_means_no_timer_is_acknowledged(tmp_path: Path, shipped) -> None:
    store = Store(tmp_path / "state.sqlite3")
    d = run(store, Clock(), shipped, [])
    store.close()  # every write now fails
    outcome = d.handle(shipped.match("set a timer for 5 minutes"))
    assert not outcome.ok and outcome.reply == "Sorry, I didn't catch how long." and "could not be saved" in outcome.error
    assert d.timers.pending() == []


def test_committed_writes_are_visible_to_another_connection_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    store.transact("shopping", lambda value: value + ["milk"], default=[])
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert json.loads(other.execute("SELECT value FROM kv WHERE key = 'shopping'").fetchone()[0]) == ["milk"]
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.parametrize("damage", [b"this is not a database at all\n" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_an_unreadable_state_file_is_moved_aside_not_overwritten(tmp_path: Path, damage: bytes, caplog) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(damage)
    with caplog.at_level(logging.ERROR):
        store = Store(path, wall=lambda: 1_800_000_000.0)
    aside = tmp_path / "state.sqlite3.unreadable-20270115T080000Z"
    assert aside.read_bytes() == damage  # kept byte for byte
    assert "cannot be read" in caplog.text and str(aside) in caplog.text
    (problem,) = store.problems
    assert problem.key is None and problem.moved_to == str(aside)
    assert store.health()["set_aside"][0]["moved_to"] == str(aside)
    # the notice is given once per key, and is itself durable (a restart before anyone asked still tells)
    store.close()
    store = Store(path)
    assert store.problems == [] and len(store.set_asides()) == 1
    first = store.transact("shopping", None, default=[])
    assert first.lost is not None and first.lost.moved_to == str(aside)
    assert store.transact("shopping", None, default=[]).lost is None
    assert store.take_notice("timers") is not None and store.take_notice("timers") is None


def test_a_second_damaged_file_in_the_same_second_keeps_both(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    for text in (b"first" * 300, b"second" * 300):
        path.write_bytes(text)
        Store(path, wall=lambda: 1_800_000_000.0).close()
    kept = sorted(p.read_bytes()[:6] for p in tmp_path.glob("state.sqlite3.unreadable-*") if not p.name.endswith(("-wal", "-shm")))
    assert kept == [b"firstf", b"second"]


def test_a_value_that_is_not_json_is_kept_aside_inside_the_store(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store(path).transact("shopping", lambda value: ["milk"], default=[])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE kv SET value = '[\"milk\", trunc' WHERE key = 'shopping'")
    store = Store(path, wall=lambda: 1_800_000_000.0)
    outcome = store.transact("shopping", lambda value: value + ["eggs"], default=[])
    assert outcome.value == ["eggs"] and outcome.lost is not None and outcome.lost.key == "shopping"
    with sqlite3.connect(path) as db:
        rows = dict(db.execute("SELECT key, value FROM kv"))
    assert rows["shopping.unreadable-20270115T080000Z"] == '["milk", trunc'  # the old bytes, untouched


def test_a_schema_from_the_future_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    store = Store(path)
    assert "schema version '99'" in store.problems[0].reason
    assert len(list(tmp_path.glob("state.sqlite3.unreadable-*"))) >= 1


def test_a_folder_that_cannot_be_written_is_a_store_error_not_a_set_aside(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        Store(blocker / "state.sqlite3")


def test_the_shopping_list_says_when_the_saved_list_could_not_be_read(tmp_path: Path, shipped) -> None:
    data = tmp_path / "home" / "data"
    data.mkdir(parents=True)
    (data / "state.sqlite3").write_bytes(b"garbage, not a database" * 50)
    d = Dispatcher(shipped, timer_thread=False)
    try:
        reply = d.handle(IntentMatch("ShoppingListAdd", {"item": "milk"}, "")).reply
        assert reply == ("I couldn't read your saved shopping list, so I set it aside and started a new one. "
                         "Added milk to your shopping list.")
        assert d.handle(IntentMatch("ShoppingListRead", {}, "")).reply == "Your shopping list has milk."
        assert [p.name.startswith("state.sqlite3.unreadable-") for p in data.iterdir()].count(True) == 1
        assert shared_store().problems[0].key is None
    finally:
        d.close()
