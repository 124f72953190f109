"""Guided recognition: the decoder with real tiny.en on the committed speech, the confidence
judgement on made-up numbers, the Recognizer's guided path with its fallbacks."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
import pytest

from assistant.asr.confidence import GuidedSettings, judge
from assistant.asr.recognizer import Recognizer, RecognizerSettings
from assistant.audio.wav import read_wav
from assistant.intents import load_commands
from asr_support import AUDIO, COMMANDS, manifest, real_checkpoint

GUIDED = RecognizerSettings(recognition="guided")


# -- the judgement (no model) ------------------------------------------------------------------


@dataclass(frozen=True)
class Said:
    text: str
    logprob: float
    tokens: int

    @property
    def mean_logprob(self) -> float:
        return self.logprob / self.tokens

    @property
    def token_logprobs(self) -> tuple[float, ...]:
        return (self.logprob / self.tokens,) * self.tokens


@dataclass(frozen=True)
class Decode:
    sentences: tuple
    free: Said
    no_speech_prob: float = 0.1


@pytest.fixture(scope="module")
def commands():
    return load_commands(COMMANDS)


def test_judge_accepts_what_the_audio_supports(commands):
    decode = Decode((Said("Turn on the kitchen lights.", -2.0, 7), Said("Turn off the kitchen lights.", -9.0, 7)),
                    Said("Pern on the kitchen lights.", -1.5, 7))
    verdict = judge(decode, commands.match, GuidedSettings())
    assert verdict.match is not None and verdict.match.slots == {"state": "on", "room": "kitchen"}
    assert verdict.reason == "" and verdict.competitor_margin == pytest.approx(7.0)
    assert verdict.margin == pytest.approx(-0.5 / 7)
    assert 0.9 < verdict.confidence <= 1.0


@dataclass(frozen=True)
class Spiked(Said):
    """A sentence whose log-probability sits in one token (a swapped word)."""

    spike: float = 0.0

    @property
    def token_logprobs(self) -> tuple[float, ...]:
        rest = (self.logprob - self.spike) / (self.tokens - 1)
        return (rest,) * (self.tokens - 1) + (self.spike,)


def test_judge_rejects_one_swapped_word_that_the_mean_hides(commands):
    """"bedroom" for a clearly heard "bathroom": close to the free decode per token on average,
    but one token far below the floor; the same sentence said by Whisper itself is accepted."""
    free = Said("Turn off the bathroom lights.", -1.4, 7)
    swapped = Spiked("Turn off the bedroom lights.", -5.6, 7, spike=-4.6)
    assert swapped.mean_logprob - free.mean_logprob > -GuidedSettings().margin  # the mean lets it through
    verdict = judge(Decode((swapped,), free), commands.match, GuidedSettings())
    assert verdict.match is None and "one token at -4.60" in verdict.reason
    verdict = judge(Decode((swapped,), Said("turn off the bedroom lights", -5.6, 7)), commands.match, GuidedSettings())
    assert verdict.match is not None and verdict.match.slots["room"] == "bedroom"
    ok = Spiked("Turn off the bedroom lights.", -5.6, 7, spike=-3.9)
    assert judge(Decode((ok,), free), commands.match, GuidedSettings()).match is not None
    with pytest.raises(ValueError):
        GuidedSettings(weakest_token=-1.0)


def test_judge_ignores_runner_ups_of_the_same_meaning(commands):
    decode = Decode((Said("Stop.", -1.0, 2), Said("stop", -1.1, 2), Said("Cancel", -1.2, 2)), Said("Stop.", -1.0, 2))
    # "stop" means the same; "Cancel" is another sentence of the same intent with the same (no) slots
    verdict = judge(decode, commands.match, GuidedSettings())
    assert verdict.match is not None and verdict.competitor_margin is None and verdict.margin == 0.0


@pytest.mark.parametrize(
    ("decode", "why"),
    [
        # chatter forced into the grammar: far below what Whisper said by itself
        (Decode((Said("What's the time?", -30.0, 6),), Said("I love the summer.", -3.0, 6)), "below the free decode"),
        # an opposite pair too close to call
        (Decode((Said("Turn on the kitchen lights.", -2.0, 7), Said("Turn off the kitchen lights.", -2.5, 7)),
                Said("Turn on the kitchen lights.", -2.0, 7)), "another meaning"),
        # a number too close to call
        (Decode((Said("Set a timer for 15 minutes.", -3.0, 8), Said("Set a timer for 50 minutes.", -3.4, 8)),
                Said("Set a timer for 15 minutes.", -3.0, 8)), "another meaning"),
        (Decode((Said("Stop.", -1.0, 2),), Said("Stop.", -1.0, 2), no_speech_prob=0.95), "no_speech_prob"),
        (Decode((), Said("Hello.", -1.0, 2)), "no grammar sentence"),
        (Decode((Said("hello", -1.0, 2),), Said("hello", -1.0, 2)), "not exactly a command"),
    ],
)
def test_judge_rejects(commands, decode, why):
    verdict = judge(decode, commands.match, GuidedSettings())
    assert verdict.match is None and why in verdict.reason


def test_settings_are_checked():
    with pytest.raises(ValueError):
        GuidedSettings(margin=-1)
    with pytest.raises(ValueError):
        GuidedSettings(no_speech=0)
    with pytest.raises(ValueError):
        RecognizerSettings(recognition="psychic")


class FakeASR:
    """A transcriber without a resident model: guided recognition cannot run on it."""

    def transcribe(self, audio, prompt=None, *, short_context=None):
        from assistant.asr.settings import Transcript

        return Transcript(text="Stop.", segments=[{}], duration_ms=1.0)

    def vocabulary_prompt(self, words):
        return None


def test_guided_without_a_resident_whisper_decodes_freely(commands):
    recognizer = Recognizer(FakeASR(), commands, GUIDED)
    assert recognizer.guide is None
    result = recognizer.recognize(np.zeros(1600, dtype=np.float32))
    assert (result.path, result.match.intent, result.confidence) == ("short", "Stop", None)


# -- real tiny.en ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asr():
    from assistant.asr import WhisperASR, WhisperSettings

    return WhisperASR(WhisperSettings(model=str(real_checkpoint()), device="cpu"))


@pytest.fixture(scope="module")
def recognizer(asr, commands):
    return Recognizer(asr, commands, GUIDED)


def clip(name: str, start: float | None = None, end: float | None = None) -> np.ndarray:
    audio, rate = read_wav(AUDIO / name)
    if start is not None:
        audio = audio[int(start * rate) : int(end * rate)]
    return audio


def long_segments(command: bool) -> list[tuple[str, np.ndarray]]:
    info = manifest()["long_mixed.wav"]
    return [(s["text"], clip("long_mixed.wav", s["start"] - 0.2, s["end"] + 0.3))
            for s in info["segments"] if s["command"] is command]


COMMAND_FILES = ["turn_on_kitchen_lights.wav", "turn_off_bedroom_lights.wav", "set_timer_five_minutes.wav",
                 "what_time.wav", "add_milk.wav", "stop.wav", "what_date.wav", "cancel_timer.wav",
                 "pause_mid_command.wav"]


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMAND_FILES)
def test_committed_commands_are_decided_by_the_guided_path(recognizer, commands, name):
    expected = commands.match(manifest()[name]["text"])
    result = recognizer.recognize(clip(name))
    assert (result.match.intent, result.match.slots) == (expected.intent, expected.slots)
    if name == "add_milk.wav":
        # Whisper hears "and nope to my shopping list": the guided "add milk ..." is 0.85 per
        # token below that, past the margin, so the full window decides (and gets it right)
        assert (result.path, result.passes) == ("full", 2) and result.confidence < 0.5
    else:
        assert (result.path, result.passes) == ("guided", 1)
        assert 0.5 < result.confidence <= 1.0


@pytest.mark.slow
def test_chatter_and_noise_never_fire_a_guided_action(recognizer):
    for text, audio in long_segments(command=False) + [("noise", clip("noise.wav"))]:
        result = recognizer.recognize(audio)
        assert result.path != "guided", text
        assert result.match is None, (text, result)


@pytest.mark.slow
def test_decoder_rows_share_one_pass_and_stay_in_the_grammar(asr, recognizer):
    from assistant.asr.guided import DecoderSettings, GuidedDecoder

    guide = recognizer.guide
    for name in ("what_time.wav", "cancel_timer.wav", "set_timer_five_minutes.wav"):
        audio = clip(name)
        decoded = GuidedDecoder(asr).decode(audio, guide)
        # the free row is Whisper's own greedy short-context decode, KV cache and all
        assert decoded.free.text == asr.transcribe(audio, None, short_context=True).text
        assert decoded.audio_ctx < 1500
        assert [h.logprob for h in decoded.sentences] == sorted((h.logprob for h in decoded.sentences), reverse=True)
        for sentence in decoded.sentences:
            assert guide.accepts(sentence.tokens), sentence.text
            assert len(sentence.token_logprobs) == len(sentence.tokens) + 1  # end-of-text scored too
            assert sentence.logprob == pytest.approx(sum(sentence.token_logprobs))
            assert all(p <= 0 for p in sentence.token_logprobs)
        greedy = GuidedDecoder(asr, DecoderSettings(beam_size=1)).decode(audio, guide)
        assert greedy.best.text.rstrip(".?!").casefold() == decoded.best.text.rstrip(".?!").casefold()


@pytest.mark.slow
def test_silence_long_noise_and_bad_grammars_never_crash(asr, commands, tmp_path):
    recognizer = Recognizer(asr, commands, GUIDED)
    silent = recognizer.recognize(np.zeros(32000, dtype=np.float32))
    assert (silent.text, silent.match, silent.confidence) == ("", None, None)  # gated before any decode
    noise = np.random.default_rng(1).normal(0, 0.03, 30 * 16000).astype(np.float32)
    loud = recognizer.recognize(noise)
    assert loud.match is None and loud.path != "guided"
    for grammar in ("lists: {message: {wildcard: true}}\nintents: {Say: {sentences: ['{message}']}}",):
        path = tmp_path / "wild.yaml"
        path.write_text("language: en\n" + grammar)
        only_wild = Recognizer(asr, load_commands(path), GUIDED)
        assert only_wild.guide is None  # nothing to guide with: free recognition
        assert only_wild.recognize(clip("stop.wav")).path in ("short", "full")


@pytest.mark.slow
def test_a_reload_changes_what_is_recognised(asr, commands, tmp_path):
    recognizer = Recognizer(asr, commands, GUIDED)
    assert recognizer.recognize(clip("stop.wav")).match.intent == "Stop"
    path = tmp_path / "commands.yaml"
    path.write_text(textwrap.dedent("""
        language: en
        intents:
          Halt:
            sentences: [halt, "stop the music"]
          GetTime:
            sentences: ["what time is it"]
    """))
    recognizer.replace_commands(load_commands(path))
    assert recognizer.guide.accepts_text("Stop the music.") and not recognizer.guide.accepts_text("Stop.")
    result = recognizer.recognize(clip("stop.wav"))
    assert result.path != "guided" and (result.match is None or result.match.intent != "Stop")
    assert recognizer.recognize(clip("what_time.wav")).match.intent == "GetTime"


@pytest.mark.slow
def test_complete_at_a_pause_is_one_guided_decode_reused_when_the_command_closes(asr, commands, monkeypatch):
    """Guided, the speculation at a pause is the guided decode itself: a complete command is
    accepted by the same confidence check, and a prefix ("stop", which "stop the timer"
    extends) comes back with its decode, which the closed segment's recognition reuses."""
    recognizer = Recognizer(asr, commands, GUIDED)
    done, first = recognizer.complete(clip("turn_on_kitchen_lights.wav"))
    assert done is not None and (done.path, done.passes) == ("guided", 1)
    assert (done.match.intent, done.match.slots) == ("Lights", {"state": "on", "room": "kitchen"})
    assert first.guided is not None and 0.5 < done.confidence <= 1.0
    audio = clip("stop.wav")
    done, first = recognizer.complete(audio)
    assert done is None and first.guided is not None and first.guided.best.text.strip(" .!").lower() == "stop"
    decodes: list[int] = []
    monkeypatch.setattr(recognizer._decoder, "decode", lambda *a: decodes.append(1))
    result = recognizer.recognize(audio, reuse=first)
    assert decodes == [] and result.reused and (result.path, result.match.intent) == ("guided", "Stop")
