"""Loader features, exact matching with ASR habits, the range-cache fix, vocabulary and replies."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from assistant.intents import IntentMatch, load_commands

FIXTURE = Path(__file__).parent / "fixtures" / "intents_grammar.yaml"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def fixture_commands():
    return load_commands(FIXTURE)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "commands.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_shorthand_and_data_blocks(fixture_commands):
    assert set(fixture_commands.intents) >= {"LightsOn", "Volume", "ShoppingAdd"}
    assert fixture_commands.match("volume up 5") == IntentMatch("Volume", {"up": 5}, "volume up 5", True)


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("turn on the kitchen lights", "LightsOn", {"room": "kitchen"}),
        ("Turn on the kitchen lights.", "LightsOn", {"room": "kitchen"}),
        ("Uh, turn on the kitchen lights.", "LightsOn", {"room": "kitchen"}),
        ("Um, turn on the, uh, living room light.", "LightsOn", {"room": "living room"}),
        ("switch on bedroom light", "LightsOn", {"room": "bed_room"}),  # in/out values
        ("Set the kitchen light to 40%.", "Brightness", {"room": "kitchen", "brightness": 40}),
        ("set the kitchen light to 40 percent", "Brightness", {"room": "kitchen", "brightness": 40}),
        ("set kitchen lights to forty percent", "Brightness", {"room": "kitchen", "brightness": 40}),
        ("Set a timer for 5 minutes.", "Timer", {"minutes": 5}),
        ("set a timer for five minutes", "Timer", {"minutes": 5}),
        ("Add eggs um to my shopping list.", "ShoppingAdd", {"item": "eggs"}),
        ("What time is it?", "Time", {}),
    ],
)
def test_exact_matches_with_asr_habits(fixture_commands, text, intent, slots):
    match = fixture_commands.match(text)
    assert match is not None and (match.intent, match.slots, match.exact) == (intent, slots, True)
    # "5" and "five" give the same int (== alone would let 5.0 or "5" pass)
    assert {k: type(v) for k, v in match.slots.items()} == {k: type(v) for k, v in slots.items()}


def test_percent_sign_in_grammar_and_spelled_percent(tmp_path):
    commands = load_commands(write(tmp_path, '''
        intents:
          Sign: {sentences: ["dim to {level}%"]}
          Word: {sentences: ["fade to {level} percent"]}
        lists:
          level: {range: {from: 0, to: 100}}
        '''))
    assert commands.match("Dim to 40%.").slots == {"level": 40}
    assert commands.match("Fade to 40%.").slots == {"level": 40}


def test_literal_number_words_in_grammar_match_digits(tmp_path):
    commands = load_commands(write(tmp_path, 'intents:\n  Five: {sentences: ["give me five minutes"]}\n'))
    assert commands.match("Give me 5 minutes.").intent == "Five"


def test_features_rules_permutations_skip_words_steps_wildcards(tmp_path):
    commands = load_commands(write(tmp_path, '''
        language: en
        skip_words: ["please"]
        expansion_rules:
          colour: "(red|green)"
        intents:
          Paint:
            sentences: ["paint it <colour>", "(make; it <colour>)"]
          Temp:
            sentences: ["heat to {t} degrees"]
          Note:
            sentences: ["note {text}"]
          Inline:
            sentences: ["channel {1..9:channel}"]
          Local:
            data:
              - sentences: ["pick {fruit}"]
                lists:
                  fruit: {values: [apple, pear]}
        lists:
          t: {range: {from: 10, to: 30, step: 5}}
          text: {wildcard: true}
        '''))
    assert commands.match("please paint it red").intent == "Paint"
    assert commands.match("it green make").intent == "Paint"
    assert commands.match("heat to 20 degrees").slots == {"t": 20}
    assert commands.match("heat to 21 degrees") is None  # not on the step
    assert commands.match("Note buy more coffee.").slots == {"text": "buy more coffee"}
    assert commands.match("channel 7").slots == {"channel": 7}
    assert commands.match("pick pear").slots == {"fruit": "pear"}


def test_requires_and_excludes_context(tmp_path):
    commands = load_commands(write(tmp_path, '''
        intents:
          Unlock:
            data:
              - sentences: ["open [the] {thing}"]
                requires_context: {domain: lock}
          OpenCover:
            data:
              - sentences: ["open [the] {thing}"]
                excludes_context: {domain: lock}
        lists:
          thing:
            values:
              - {in: front door, out: door, context: {domain: lock}}
              - {in: garage, out: garage, context: {domain: cover}}
        '''))
    assert commands.match("open the front door").intent == "Unlock"
    assert commands.match("open the garage").intent == "OpenCover"


def test_extra_lists_supplied_at_run_time(tmp_path):
    path = write(tmp_path, 'intents:\n  TurnOn: {sentences: ["turn on {name}"]}\n')
    with pytest.raises(Exception, match=r"unknown list \{name\}"):
        load_commands(path)
    commands = load_commands(path, extra_lists={"name": ["desk lamp", {"in": "tv", "out": "media.tv"}]})
    assert commands.match("turn on desk lamp").slots == {"name": "desk lamp"}
    assert commands.match("turn on tv").slots == {"name": "media.tv"}
    assert load_commands(path, extra_lists={"name": "wildcard"}).match("turn on anything at all").slots == {
        "name": "anything at all"
    }


def test_negative_multiplier_does_not_leak_into_ranges_with_the_same_bounds(fixture_commands, tmp_path):
    """hassil 3.12.1 caches number words per bounds, values already multiplied."""
    commands = load_commands(write(tmp_path, '''
        intents:
          Down: {sentences: ["lower by {down}"]}
          Up: {sentences: ["raise by {up}"]}
          Scaled: {sentences: ["scale by {scaled}"]}
        lists:
          down: {range: {from: 0, to: 100, multiplier: -1}}
          up: {range: {from: 0, to: 100}}
          scaled: {range: {from: 0, to: 100, multiplier: 0.5}}
        '''))
    assert commands.match("lower by ten").slots == {"down": -10}
    assert commands.match("raise by ten").slots == {"up": 10}
    assert commands.match("scale by ten").slots == {"scaled": 5}
    assert commands.match("lower by ten").slots == {"down": -10}
    assert commands.match("raise by 10").slots == {"up": 10}
    # Another file loaded in the same process is not affected either.
    assert fixture_commands.match("volume up twenty").slots == {"up": 20}
    assert fixture_commands.match("volume down twenty").slots == {"down": -20}


def test_vocabulary_has_grammar_and_list_words(fixture_commands):
    words = fixture_commands.vocabulary()
    assert {"turn", "kitchen", "living", "shopping", "lights", "light", "timer"} <= set(words)
    assert len(words) == len(set(words)) and "null" not in words and "" not in words


def test_static_replies_and_intent_specs(tmp_path):
    commands = load_commands(write(tmp_path, '''
        intents:
          Hello:
            sentences: ["hello"]
            reply: "Hello there {{friend}}"
          Room:
            sentences: ["go to {room}"]
            reply: "Going to {room}"
        lists:
          room: {values: [kitchen]}
        '''))
    assert commands.static_replies() == ["Hello there {friend}"]
    spec = commands.intents["Room"]
    assert (spec.reply, spec.slots, spec.sentences, spec.line) == ("Going to {room}", frozenset({"room"}), ("go to {room}",), 5)


def test_number_words_are_ready_at_load(tmp_path, monkeypatch):
    """hassil builds a range's number words on first use (~180 ms for 1..3600): done at load."""
    import hassil.string_matcher

    commands = load_commands(write(tmp_path, '''
        intents:
          Wait: {sentences: ["wait {s} seconds"]}
        lists:
          s: {range: {from: 1, to: 3599, multiplier: 2}}
        '''))

    def not_at_match_time(*args, **kwargs):
        raise AssertionError("number words built while matching")

    monkeypatch.setattr(hassil.string_matcher, "_build_range_trie", not_at_match_time)
    assert commands.match("wait ten seconds").slots == {"s": 20}


def test_handler_fields_may_be_used_in_replies(tmp_path):
    commands = load_commands(write(tmp_path, '''
        intents:
          GetTime:
            sentences: ["what time is it"]
            handler: {builtin: time}
            reply: "It's {time}."
        '''))
    spec = commands.intents["GetTime"]
    assert spec.handler is not None and "time" in spec.handler.reply_fields()
    assert commands.static_replies() == []


def test_can_continue_tells_a_complete_command_from_the_start_of_a_longer_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "intents:\n"
        "  Lights:\n    sentences: ['turn {state} the {room} lights']\n"
        "  Stop:\n    sentences: ['stop', 'stop the timer']\n"
        "  Remind:\n    sentences: ['remind me to {task}']\n"
        "  Add:\n    sentences: ['add {item} to my list']\n"
        "  Timer:\n    sentences: ['set a timer for {minutes} minutes']\n"
        "lists:\n  state: {values: ['on', 'off']}\n  room: {values: [kitchen, living room]}\n"
        "  task: {wildcard: true}\n  item: {wildcard: true}\n  minutes: {range: {from: 1, to: 90}}\n"
    )
    commands = load_commands(path)
    assert not commands.can_continue("Turn off the kitchen lights.")
    assert commands.can_continue("turn off the kitchen")  # "lights" must follow
    assert commands.can_continue("turn off the living")  # part of a list value
    assert commands.can_continue("stop")  # "stop the timer"
    assert not commands.can_continue("stop the timer")
    assert commands.can_continue("remind me to buy")  # a wildcard that ends the template
    assert not commands.can_continue("add milk to my list")  # a wildcard in the middle ends at "to"
    assert commands.can_continue("set a timer for twenty")  # "twenty five", or "minutes"
    assert not commands.can_continue("set a timer for 20 minutes")
    assert not commands.can_continue("the weather is lovely")
