"""The decoding guide: which token sequences a grammar allows, with Whisper's real tokenizer (no model)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import whisper
from hassil.intents import Intents

from assistant.asr.guide import DecodingGuide, build_guide, guide_from_intents
from assistant.intents import load_commands


@pytest.fixture(scope="module")
def tokenizer():
    return whisper.tokenizer.get_tokenizer(False, language="en", task="transcribe")


def guide_of(yaml_text: str, tokenizer, tmp_path: Path, **extra) -> DecodingGuide:
    path = tmp_path / "commands.yaml"
    path.write_text(textwrap.dedent(yaml_text))
    return build_guide(load_commands(path, extra_lists=extra or None), tokenizer)


LIGHTS = """
    language: en
    lists:
      room:
        values: [kitchen, "living room", {in: bedroom, out: bed_room}, {in: "(dining room|dining-room)", out: dining}]
      minutes: {range: {from: 1, to: 120}}
      brightness: {range: {from: 0, to: 100}}
      item: {wildcard: true}
    expansion_rules:
      the_lights: "[the] {room} light[s]"
    skip_words: [please, "can you"]
    intents:
      Lights:
        sentences:
          - (turn|switch) (on|off) <the_lights>
          - "{room} light[s] (on|off)"
      Dim:
        sentences:
          - dim <the_lights> to {brightness} percent
      Timer:
        sentences:
          - set a timer for {minutes} minute[s]
      Shopping:
        sentences:
          - add {item} to [my] shopping list
      Both:
        sentences:
          - (open the door; turn on the fan)
      Stop:
        sentences: [stop]
"""


@pytest.fixture
def lights(tokenizer, tmp_path):
    return guide_of(LIGHTS, tokenizer, tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "Turn on the kitchen lights.",
        "turn off the living room light",
        "Switch on bedroom lights!",
        "Turn off the dining-room lights.",
        "Turn off the dining room lights.",
        "Kitchen lights on.",
        "Stop.",
        "stop",
        "Please stop.",  # skip words at the start
        "Stop please.",  # and at the end
        "Can you turn on the kitchen lights?",
    ],
)
def test_alternatives_optionals_rules_lists_and_skip_words(lights, text):
    assert lights.accepts_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "Turn on the kitchen",  # a prefix is not a sentence
        "Turn on the garage lights.",  # not a room
        "Turn on the bed_room lights.",  # a list's out: value is not spoken
        "Turn on the kitchen lights lights.",
        "Hello there.",
        "Please please stop.",  # one skip phrase, not any number
        "Stop. Stop.",
        "",
    ],
)
def test_what_the_grammar_cannot_say_is_refused(lights, text):
    assert not lights.accepts_text(text)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Set a timer for 5 minutes.", True),
        ("Set a timer for five minutes.", True),
        ("set a timer for 25 minutes", True),
        ("Set a timer for twenty-five minutes.", True),
        ("Set a timer for twenty five minutes.", True),
        ("Set a timer for 120 minutes.", True),
        ("Set a timer for one hundred twenty minutes.", True),
        ("Set a timer for 121 minutes.", False),
        ("Set a timer for 0 minutes.", False),
        ("Set a timer for zero minutes.", False),
        ("Set a timer for 5 5 minutes.", False),
        ("Dim the kitchen lights to 50 percent.", True),
        ("Dim the kitchen lights to 50%.", True),  # Whisper's spelling; BPE glues "%."
        ("Dim the kitchen lights to 50%", True),
        ("Dim the kitchen lights to 0 percent", True),
        ("Dim the kitchen lights to 101 percent", False),
    ],
)
def test_numbers_as_digits_and_words(lights, text, ok):
    assert lights.accepts_text(text) is ok


def test_large_numbers_with_and_without_thousands_separator(tokenizer, tmp_path):
    guide = guide_of(
        """
        language: en
        lists: {seconds: {range: {from: 1, to: 3600}}}
        intents: {T: {sentences: ["wait {seconds} seconds"]}}
        """,
        tokenizer,
        tmp_path,
    )
    for text in ("Wait 3600 seconds.", "Wait 3,600 seconds.", "wait three thousand six hundred seconds", "wait 1 seconds"):
        assert guide.accepts_text(text), text
    assert not guide.accepts_text("Wait 3601 seconds.")


def test_permutations_in_every_order(lights):
    assert lights.accepts_text("Open the door, turn on the fan.") is False  # no commas in the grammar
    assert lights.accepts_text("Open the door turn on the fan.")
    assert lights.accepts_text("Turn on the fan open the door.")
    assert not lights.accepts_text("Open the door.")


def test_wildcards_take_any_words_and_end_where_the_grammar_goes_on(lights, tokenizer):
    assert lights.accepts_text("Add milk to my shopping list.")
    assert lights.accepts_text("Add a pint of oat milk to the shopping list.") is False  # "the" is not in the grammar
    assert lights.accepts_text("Add a pint of oat milk to shopping list")
    assert lights.accepts_text("Add milk, eggs and 2 lemons to my shopping list.")
    # the wildcard may even contain the grammar's own next word
    assert lights.accepts_text("Add salt to taste to my shopping list.")
    assert not lights.accepts_text("Add to my shopping list.")  # a wildcard says something
    assert not lights.accepts_text("Add milk.")

    state = lights.start
    for token in tokenizer.encode(" Add"):
        state = lights.advance(state, token)
    step = lights.step(state)
    assert step.free == 1 and not step.end  # the wildcard's first token: any word start
    assert lights.advance(state, tokenizer.encode(",")[0]) is None  # not punctuation
    state = lights.advance(state, tokenizer.encode(" milk")[0])
    step = lights.step(state)
    assert step.free == 2 and lights.in_wildcard(state)  # inside: any text token ...
    assert tokenizer.encode(" to")[0] in step.tokens  # ... beside the grammar's next word
    assert lights.advance(state, tokenizer.eot) is None


def test_token_steps(lights, tokenizer):
    start = lights.step(lights.start)
    first = {tokenizer.decode([t]) for t in start.tokens}
    assert {" Turn", " turn", " Stop", " stop", " Kitchen", " kitchen", " Please", " Add"} <= first
    assert " lights" not in first and start.free == 0 and not start.end
    assert list(start.tokens) == sorted(start.tokens)
    state = lights.start
    for token in tokenizer.encode(" Stop"):
        assert not lights.is_complete(state)
        state = lights.advance(state, token)
    assert lights.is_complete(state)  # end-of-text allowed after "Stop"
    stop = lights.step(state)
    assert {tokenizer.decode([t]) for t in stop.tokens} >= {".", "?", "!", " please", " Please"}
    period = lights.advance(state, tokenizer.encode(".")[0])
    assert lights.is_complete(period) and len(lights.step(period).tokens) == 0  # only the end after "."
    assert lights.advance(lights.start, tokenizer.encode(" lights")[0]) is None
    # states are interned: the same tokens lead to the same state
    again = lights.advance(lights.start, tokenizer.encode(" Stop")[0])
    assert again == lights.advance(lights.start, tokenizer.encode(" Stop")[0])


def test_case_variants_whisper_writes(tokenizer, tmp_path):
    guide = guide_of(
        """
        language: en
        lists: {device: {values: [tv, "ceiling fan"]}}
        intents: {TurnOn: {sentences: ["what can I say", "turn on the {device}"]}}
        """,
        tokenizer,
        tmp_path,
    )
    for text in ("What can I say?", "what can i say", "Turn on the TV.", "Turn on the Ceiling Fan.", "turn on the tv"):
        assert guide.accepts_text(text), text


def test_wildcard_only_templates_are_left_out(tokenizer, tmp_path):
    guide = guide_of(
        """
        language: en
        lists: {message: {wildcard: true}}
        intents:
          Say: {sentences: ["{message}", "[please] {message}"]}
          Broadcast: {sentences: ["broadcast {message}"]}
        """,
        tokenizer,
        tmp_path,
    )
    assert (guide.templates, guide.dropped_templates) == (1, 2)
    assert guide.accepts_text("Broadcast dinner is ready.")
    assert not guide.accepts_text("Dinner is ready.")


def test_only_wildcards_or_nothing_gives_an_empty_guide(tokenizer, tmp_path):
    only_wild = guide_of(
        """
        language: en
        lists: {message: {wildcard: true}}
        intents: {Say: {sentences: ["{message}"]}}
        """,
        tokenizer,
        tmp_path,
    )
    nothing = guide_from_intents(Intents.from_dict({"language": "en", "intents": {}}), tokenizer)
    for guide in (only_wild, nothing):
        assert guide.empty and guide.templates == 0
        assert not guide.accepts_text("anything at all")


def test_run_time_lists(tokenizer, tmp_path):
    guide = guide_of(
        """
        language: en
        intents: {TurnOn: {sentences: ["turn on [the] {name}"]}}
        """,
        tokenizer,
        tmp_path,
        name=["desk lamp", {"in": "(tv|television)", "out": "tv"}],
    )
    for text in ("Turn on the desk lamp.", "turn on television", "Turn on the TV."):
        assert guide.accepts_text(text), text
    assert not guide.accepts_text("Turn on the desk.")


def test_home_assistant_intents_build_without_enumerating(tokenizer):
    home_assistant_intents = pytest.importorskip("home_assistant_intents")
    from test_intents_ha import EN, HA_LISTS

    ha = load_commands(EN, extra_lists=HA_LISTS)
    guide = build_guide(ha, tokenizer)
    assert guide.templates >= 800 and not guide.empty
    for text in (
        "Turn on the kitchen light.",
        "Turn off the desk switch.",
        "Set the brightness of the kitchen to 50%.",
        "Set a timer for 5 minutes.",
        "set a timer for twenty five minutes",
        "Add eggs to my shopping list.",
        "Lock the front door.",
        "What time is it?",
        "Please turn on the TV.",
    ):
        assert guide.accepts_text(text), text
    for text in ("Hello there, how are you?", "Turn on the kitchen", "Set a timer for 500 minutes."):
        assert not guide.accepts_text(text), text
    # lazily built: only the states these sentences visited exist
    assert guide.states_built < 500
