"""Built-ins and the Dispatcher's own duties, on the shipped commands.yaml, with a manual clock."""

from __future__ import annotations

import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from assistant.handlers import Dispatcher
from assistant.handlers.builtins import duration_seconds, spell_duration
from assistant.intents import IntentMatch, load_commands

ROOT = Path(__file__).resolve().parent.parent


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def shipped():
    return load_commands(ROOT / "commands.yaml")


@pytest.fixture
def rig(shipped):
    clock = ManualClock()
    said: list[str] = []
    cancels: list[bool] = []
    d = Dispatcher(
        shipped,
        announce=said.append,
        cancel=lambda: cancels.append(True),
        clock=clock,
        timer_thread=False,
        now=lambda: datetime(2026, 3, 7, 15, 5),
    )
    yield d, clock, said, cancels
    d.close()


def say(d: Dispatcher, commands, text: str):
    match = commands.match(text)
    assert match is not None, text
    return d.handle(match)


def test_time_and_date(rig, shipped) -> None:
    d, *_ = rig
    assert say(d, shipped, "what time is it").reply == "It's 3:05 PM."
    assert say(d, shipped, "what's the date today").reply == "Today is Saturday, March 7."


def test_time_formats_midnight_and_noon(shipped) -> None:
    for hour, text in ((0, "12:00 AM"), (12, "12:00 PM"), (9, "9:00 AM")):
        d = Dispatcher(shipped, timer_thread=False, now=lambda hour=hour: datetime(2026, 1, 1, hour, 0))
        assert say(d, shipped, "what time is it").reply == f"It's {text}."


def test_timer_set_fires_and_announces(rig, shipped) -> None:
    d, clock, said, _ = rig
    assert say(d, shipped, "set a timer for five minutes").reply == "Timer set for 5 minutes."
    clock.now += 299
    assert d.timers.run_due() == 0 and said == []
    clock.now += 1
    assert d.timers.run_due() == 1
    assert said == ["Time's up! Your timer for 5 minutes is done."]
    assert d.timers.pending() == []
    # "repeat that" repeats the announcement, the last thing said.
    assert say(d, shipped, "repeat that").reply == "Time's up! Your timer for 5 minutes is done."


def test_timer_left_and_cancel(rig, shipped) -> None:
    d, clock, said, _ = rig
    assert say(d, shipped, "how much time is left on the timer").reply == "No timer is running."
    say(d, shipped, "set a timer for 1 hour and 30 minutes")
    clock.now += 90
    assert say(d, shipped, "how much time is left on my timer").reply == "1 hour, 28 minutes and 30 seconds left."
    say(d, shipped, "set a timer for 10 seconds")
    assert say(d, shipped, "how much time is left").reply == "2 timers: 10 seconds, then 1 hour, 28 minutes and 30 seconds left."
    assert say(d, shipped, "cancel all timers").reply == "2 timers cancelled."
    assert say(d, shipped, "cancel the timer").reply == "There is no timer to cancel."
    clock.now += 10_000
    assert d.timers.run_due() == 0 and said == []


def test_timer_with_fixed_slot_and_without_duration(rig, shipped) -> None:
    d, *_ = rig
    assert say(d, shipped, "set a timer for an hour").reply == "Timer set for 1 hour."
    outcome = d.handle(IntentMatch("TimerSet", {}, "set a timer"))
    assert not outcome.ok and outcome.reply == "Sorry, I didn't catch how long."


def test_timers_fire_on_the_background_thread(shipped) -> None:
    fired = threading.Event()
    d = Dispatcher(shipped, announce=lambda text: fired.set())
    try:
        d.timers.start(0.05, "done")
        assert fired.wait(2)
    finally:
        d.close()


def test_timers_survive_a_reload(rig, shipped) -> None:
    d, clock, said, _ = rig
    say(d, shipped, "set a timer for 2 minutes")
    d.replace_commands(load_commands(ROOT / "commands.yaml"))
    clock.now += 120
    d.timers.run_due()
    assert said == ["Time's up! Your timer for 2 minutes is done."]


def test_close_cancels_timers(rig, shipped) -> None:
    d, clock, said, _ = rig
    say(d, shipped, "set a timer for 2 minutes")
    d.close()
    clock.now += 1000
    assert d.timers.run_due() == 0 and said == []


def test_stop_calls_cancel(rig, shipped) -> None:
    d, _, _, cancels = rig
    for text in ("stop", "never mind", "Never mind."):
        outcome = say(d, shipped, text)
        assert outcome.ok and outcome.reply == "Okay."
    assert cancels == [True, True, True]


def test_repeat_before_anything_was_said(rig, shipped) -> None:
    d, *_ = rig
    assert say(d, shipped, "say that again").reply == "I haven't said anything yet."
    say(d, shipped, "what time is it")
    assert say(d, shipped, "repeat that").reply == "It's 3:05 PM."
    assert say(d, shipped, "repeat that").reply == "It's 3:05 PM."


def test_help_lists_one_example_per_intent(rig, shipped) -> None:
    d, *_ = rig
    reply = say(d, shipped, "what can I say").reply
    assert reply.startswith('You can say: "what time is it"; ')
    for example in ("set a timer for 5 minutes", "turn on the kitchen lights", "what's on my shopping list"):
        assert f'"{example}"' in reply
        assert shipped.match(example) is not None  # the examples are real commands
    assert reply.count('"') == 2 * len(shipped.intents)


def test_help_example_uses_list_values_and_rules(tmp_path: Path) -> None:
    path = tmp_path / "commands.yaml"
    path.write_text(
        textwrap.dedent(
            """
            lists:
              color: {values: [{in: "(crimson|red)", out: red}, blue]}
            expansion_rules:
              paint: "(paint|color)"
            intents:
              Paint:
                data:
                  - sentences: ["<paint> [the] wall {color} [please]"]
                    lists: {size: {range: {from: 10, to: 20}}}
              Grow:
                sentences: ["grow by {size} percent"]
                lists: {size: {range: {from: 10, to: 20}}}
              Help:
                sentences: ["help"]
                handler: {builtin: help}
            """
        )
    )
    commands = load_commands(path)
    reply = Dispatcher(commands, timer_thread=False).handle(IntentMatch("Help", {}, "help")).reply
    assert reply == 'You can say: "paint the wall crimson"; "grow by 10 percent"; "help".'


def test_unknown_intent_and_missing_reply_value_never_raise(tmp_path: Path) -> None:
    path = tmp_path / "commands.yaml"
    path.write_text('lists:\n  who: {wildcard: true}\nintents:\n  Hi:\n    sentences: ["hi [{who}]"]\n    reply: "Hello {who}"\n')
    d = Dispatcher(load_commands(path), timer_thread=False)
    assert d.handle(IntentMatch("Hi", {"who": "Ada"}, "")).reply == "Hello Ada"
    outcome = d.handle(IntentMatch("Hi", {}, "hi"))
    assert not outcome.ok and outcome.reply == "Sorry, that failed." and outcome.error == "no value for {who}"
    outcome = d.handle(IntentMatch("Gone", {}, ""))
    assert not outcome.ok and "unknown intent" in outcome.error
    outcome = d.handle(object())  # not even a match
    assert not outcome.ok and outcome.reply == "Sorry, that failed."


def test_replace_commands_switches_intents(tmp_path: Path) -> None:
    path = tmp_path / "commands.yaml"
    path.write_text('intents:\n  Hi:\n    sentences: ["hi"]\n    reply: "Hello"\n')
    d = Dispatcher(load_commands(path), timer_thread=False)
    path.write_text('intents:\n  Hi:\n    sentences: ["hi"]\n    reply: "Howdy"\n')
    d.replace_commands(load_commands(path))
    assert d.handle(IntentMatch("Hi", {}, "hi")).reply == "Howdy"


def test_a_failing_announcer_does_not_stop_later_timers(shipped) -> None:
    clock = ManualClock()
    heard: list[str] = []

    def announce(text: str) -> None:
        if not heard:
            heard.append("boom")
            raise OSError("speaker unplugged")
        heard.append(text)

    d = Dispatcher(shipped, announce=announce, clock=clock, timer_thread=False)
    d.timers.start(1, "first")
    d.timers.start(2, "second")
    clock.now += 5
    assert d.timers.run_due() == 2
    assert heard == ["boom", "second"]


@pytest.mark.parametrize(
    ("slots", "seconds", "spoken"),
    [
        ({"minutes": 5}, 300, "5 minutes"),
        ({"hours": 1, "minutes": 30}, 5400, "1 hour and 30 minutes"),
        ({"seconds": 90}, 90, "1 minute and 30 seconds"),
        ({"minutes": "2", "seconds": 1}, 121, "2 minutes and 1 second"),
        ({"minutes": 0.5}, 30, "30 seconds"),
    ],
)
def test_durations(slots, seconds, spoken) -> None:
    assert duration_seconds(slots) == seconds
    assert spell_duration(seconds) == spoken


def test_real_time_timer_latency_is_small(shipped) -> None:
    fired: list[float] = []
    done = threading.Event()
    d = Dispatcher(shipped, announce=lambda text: (fired.append(time.monotonic()), done.set()))
    try:
        start = time.monotonic()
        d.timers.start(0.1, "x")
        assert done.wait(2)
        assert 0.09 <= fired[0] - start < 0.5
    finally:
        d.close()


def test_timer_listeners_see_owner_and_delivery(rig, shipped) -> None:
    """A satellite's timer: listeners see start/cancel/finish with the owner; a finished timer its
    owner was told about is not announced locally (but "repeat" still knows it)."""
    from assistant.handlers.timers import timer_owner

    d, clock, said, _ = rig
    seen: list[tuple[str, int, str | None]] = []

    def listener(kind, timer):
        seen.append((kind, timer.id, timer.owner))
        return kind == "finished" and timer.owner == "kitchen"

    remove = d.timers.add_listener(listener)
    token = timer_owner.set("kitchen")
    try:
        say(d, shipped, "set a timer for 10 seconds")
    finally:
        timer_owner.reset(token)
    say(d, shipped, "set a timer for 20 seconds")  # the local microphone's: no owner
    clock.now += 10
    assert d.timers.run_due() == 1
    assert said == []  # delivered to the kitchen, not announced here
    assert say(d, shipped, "repeat that").reply == "Time's up! Your timer for 10 seconds is done."
    assert say(d, shipped, "cancel the timer").reply == "Timer cancelled."
    assert seen == [("started", 1, "kitchen"), ("started", 2, None), ("finished", 1, "kitchen"), ("cancelled", 2, None)]
    remove()
    say(d, shipped, "set a timer for 5 seconds")
    clock.now += 5
    d.timers.run_due()
    assert len(seen) == 4 and said == ["Time's up! Your timer for 5 seconds is done."]
