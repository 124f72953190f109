"""Home Assistant's English intents load through our loader and match their own sentences."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import home_assistant_intents  # the [test] extra: a hard requirement of the suite, never a skip
import pytest

from assistant.intents import load_commands
from assistant.intents.sampling import sample_intents

EN = Path(home_assistant_intents.__file__).parent / "data" / "en.json"

# HA supplies {name}, {area} and {floor} at run time from its entities; a small household here.
HA_LISTS = {
    "name": [
        {"in": "kitchen light", "context": {"domain": "light"}},
        {"in": "front door", "context": {"domain": "lock"}},
        {"in": "garage door", "context": {"domain": "cover"}},
        {"in": "tv", "context": {"domain": "media_player"}},
        {"in": "ceiling fan", "context": {"domain": "fan"}},
        {"in": "movie time", "context": {"domain": "scene"}},
        {"in": "water valve", "context": {"domain": "valve"}},
        {"in": "robot", "context": {"domain": "vacuum"}},
        {"in": "mower", "context": {"domain": "lawn_mower"}},
        {"in": "thermostat", "context": {"domain": "climate"}},
        {"in": "motion sensor", "context": {"domain": "binary_sensor"}},
        {"in": "shopping", "context": {"domain": "todo"}},
        {"in": "alice", "context": {"domain": "person"}},
        {"in": "forecast", "context": {"domain": "weather"}},
        {"in": "doorbell", "context": {"domain": "button"}},
        {"in": "goodnight", "context": {"domain": "script"}},
        {"in": "outside temperature", "context": {"domain": "sensor"}},
        {"in": "desk switch", "context": {"domain": "switch"}},
    ],
    "area": ["kitchen", "living room"],
    "floor": ["first floor"],
}
CONTEXT = {"area": {"value": "kitchen"}}


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def ha():
    return load_commands(EN, extra_lists=HA_LISTS)


def test_loads_unchanged_and_needs_its_run_time_lists(ha, tmp_path):
    assert len(ha.intents) >= 40 and "HassTurnOn" in ha.intents
    with pytest.raises(Exception, match=r"unknown list \{(name|area|floor)\}"):
        load_commands(EN)
    # Treating the run-time lists as wildcards also loads.
    assert load_commands(EN, extra_lists={k: "wildcard" for k in HA_LISTS}).intents.keys() == ha.intents.keys()


def test_matches_its_own_sample_sentences(ha):
    outcomes: Counter[str] = Counter()
    wrong = []
    for sample in sample_intents(ha.hassil_intents, ha.extra_slot_lists, per_template=1, seed=11):
        match = ha.match_exact(sample.text, CONTEXT)
        if match is None:
            outcomes["none"] += 1
        elif match.intent == sample.intent:
            outcomes["own"] += 1
        else:
            outcomes["other"] += 1
            wrong.append((sample.text, sample.intent, match.intent))
    total = sum(outcomes.values())
    assert total > 800
    assert outcomes["own"] / total >= 0.95, outcomes
    assert outcomes["other"] / total <= 0.01, wrong


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("Turn on the kitchen light.", "HassTurnOn", {"area": "kitchen", "domain": "light"}),
        ("Turn on the desk switch.", "HassTurnOn", {"name": "desk switch"}),
        ("set the kitchen light brightness to 40%", "HassLightSet", {"name": "kitchen light", "brightness": 40}),
        ("Set a timer for 5 minutes.", "HassStartTimer", {"minutes": 5}),
        ("set a timer for five minutes", "HassStartTimer", {"minutes": 5}),
        ("add milk to my shopping list", "HassShoppingListAddItem", {"item": "milk"}),
        ("What time is it?", "HassGetCurrentTime", {}),
    ],
)
def test_known_sentences(ha, text, intent, slots):
    match = ha.match(text, CONTEXT)
    assert match is not None and match.intent == intent
    assert {k: match.slots.get(k) for k in slots} == slots


def test_volume_ranges_share_bounds_but_keep_their_sign(ha):
    """en.json has volume_step_down (multiplier -1) next to 0..100 percentage ranges."""
    down = ha.match("turn down the tv volume by ten percent", CONTEXT)
    assert down is not None and down.slots["volume_step"] == -10
    up = ha.match("turn up the tv volume by ten percent", CONTEXT)
    assert up is not None and up.slots["volume_step"] == 10
    level = ha.match("set the tv volume to ten percent", CONTEXT)
    assert level is not None and level.slots["volume_level"] == 10
