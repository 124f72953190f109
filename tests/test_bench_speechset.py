"""The benchmark set's builder (bench/speechset.py): the plan is deterministic and its labels are
what the text matcher reads from each sentence; noise is mixed at the SNR it claims. No Whisper,
no Piper: the plan needs no audio engine, the mixing test speaks with espeak-ng only."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.intents import load_commands  # noqa: E402
from assistant.intents.sampling import WILDCARD_FILLERS, sample_intents  # noqa: E402
from bench import speechset  # noqa: E402

TINY = speechset.Sizes(commands=12, chatter=3, near_misses=4, noise_only=2, pauses=3, realtime=4)


@pytest.fixture(scope="module")
def grammars():
    return speechset.load_grammars()


@pytest.fixture(scope="module")
def planned(grammars):
    return speechset.plan(TINY, grammars=grammars)


def test_the_plan_is_the_same_every_time_and_changes_with_the_seed(grammars, planned):
    assert speechset.plan(TINY, grammars=grammars) == planned
    other = speechset.plan(TINY, seed=speechset.SEED + 1, grammars=grammars)
    assert [p.text for p in other] != [p.text for p in planned]
    assert len({p.id for p in planned}) == len(planned)


def test_every_spoken_command_means_its_label_to_the_text_matcher(grammars, planned):
    commands = [p for p in planned if p.kind in ("command", "pause")]
    assert commands
    for item in commands:
        match = grammars[item.grammar].match(item.text)
        assert match is not None, item.text
        assert (match.intent, match.slots) == (item.intent, item.slots), item.text
        assert " ".join(item.utterance.parts) == item.text


def test_chatter_means_nothing_and_near_misses_are_outside_their_grammar(grammars, planned):
    chatter = [p for p in planned if p.kind == "chatter"]
    near = [p for p in planned if p.kind == "near-miss"]
    assert len({p.text for p in chatter}) == TINY.chatter and len({p.text for p in near}) == TINY.near_misses
    for item in chatter:
        assert item.intent is None
        assert all(g.match(item.text) is None for g in grammars.values()), item.text
    for item in near:
        assert item.intent is None
        assert grammars[item.grammar].match_exact(item.text) is None, item.text
    # every listed sentence, not only the ones this tiny plan drew
    for text in speechset.CHATTER:
        assert all(g.match(text) is None for g in grammars.values()), text
    for grammar, text in speechset.NEAR_MISSES:
        assert grammars[grammar].match_exact(text) is None, text


def test_sizes_voices_conditions_and_the_realtime_subset(planned):
    commands = [p for p in planned if p.kind == "command"]
    by_sentence: dict[str, set[str]] = {}
    for item in commands:
        by_sentence.setdefault(item.id.rsplit("-", 1)[0], set()).add(item.condition)
    assert len(by_sentence) == TINY.commands
    assert all(conditions == set(speechset.COMMAND_CONDITIONS) for conditions in by_sentence.values())
    stops = [p for p in commands if p.condition == speechset.CLEAN and p.text == "stop"]
    assert sorted(p.voice for p in stops) == sorted(v.name for v in speechset.VOICES)
    assert {p.voice for p in commands} == {v.name for v in speechset.VOICES}
    assert {p.grammar for p in commands} == {"commands", "fixture"}
    pauses = [p for p in planned if p.kind == "pause"]
    assert len(pauses) == TINY.pauses and all(len(p.utterance.parts) == 2 and all(p.utterance.parts) for p in pauses)
    assert all(p.realtime for p in pauses)
    realtime = [p for p in commands if p.realtime]
    assert len(realtime) == TINY.realtime and all(p.condition == speechset.CLEAN for p in realtime)
    assert len([p for p in planned if p.kind == "noise"]) == TINY.noise_only


def test_wildcards_get_the_sets_own_fillers_not_the_tests(planned):
    items = [p.slots["item"] for p in speechset.plan(speechset.Sizes(commands=40, realtime=0))
             if "item" in p.slots]
    assert items and set(items) <= set(speechset.FILLERS)
    assert not set(speechset.FILLERS) & set(WILDCARD_FILLERS)


def test_sampler_takes_fillers_and_refuses_none():
    fixture = load_commands(ROOT / "tests" / "fixtures" / "intents_grammar.yaml")
    samples = [s for s in sample_intents(fixture.hassil_intents, per_template=5, seed=3, wildcard_fillers=("kiwi",))
               if s.intent == "ShoppingAdd"]
    assert samples and all(fixture.match(s.text).slots["item"] == "kiwi" for s in samples)
    with pytest.raises(ValueError, match="wildcard_fillers"):
        list(sample_intents(fixture.hassil_intents, wildcard_fillers=()))


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="one 'stop' per voice"):
        speechset.Sizes(commands=2)
    with pytest.raises(ValueError, match="chatter"):
        speechset.Sizes(chatter=len(speechset.CHATTER) + 1)
    with pytest.raises(ValueError, match="fixture_share"):
        speechset.Sizes(fixture_share=1.5)


def _db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed on this machine")
@pytest.mark.parametrize("condition, snr", [("white@10dB", 10.0), ("babble@5dB", 5.0)])
def test_noise_is_mixed_at_the_snr_it_claims(condition, snr):
    synth = speechset.Synthesiser()
    babble = speechset.Babble(synth)
    utterance = speechset.Utterance(("turn on the kitchen lights",), "espeak-us", 160, 50)
    base = dict(id="t", kind="command", grammar="commands", text="turn on the kitchen lights", intent="Lights",
                utterance=utterance, speech_dbfs=-20.0, lead_seconds=0.5, noise_seed=7)
    clean, start, end = speechset.render(speechset.ItemPlan(**base), synth, babble)
    noisy, start2, end2 = speechset.render(speechset.ItemPlan(**base, condition=condition), synth, babble)
    again, _, _ = speechset.render(speechset.ItemPlan(**base, condition=condition), synth, babble)
    assert (start, end) == (start2, end2) and 0.5 < start < end < len(clean) / 16000 - speechset.TAIL_SECONDS + 0.01
    assert np.array_equal(noisy, again)  # seeded
    assert not clean[: int(0.5 * 16000)].any()  # clean lead is silence
    span = slice(round(start * 16000), round(end * 16000))
    speech_db = _db(clean[span])
    assert abs(speech_db - (-20.0)) < 1.0
    noise = noisy - clean
    assert abs((speech_db - _db(noise[span])) - snr) < 1.0
