"""What the Recognizer hears while a reply plays: only the stop set, with a guard of its own for
the short pass (the echo canceller's output scores lower than clean speech), never anything else."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.asr.recognizer import Recognizer, RecognizerSettings
from assistant.asr.settings import Transcript
from assistant.intents import load_commands
from asr_support import COMMANDS


class DroppingASR:
    """Says `text` with `avg_logprob`; below -1.0 the text is dropped, as WhisperASR's guard does.
    The full window (second pass) says `full`."""

    def __init__(self, text: str, avg_logprob: float, full: str = "") -> None:
        self.text, self.avg_logprob, self.full = text, avg_logprob, full
        self.passes: list[bool | None] = []

    def vocabulary_prompt(self, words):
        return None

    def transcribe(self, audio, prompt=None, short_context=None):
        self.passes.append(short_context)
        if short_context is False:
            return Transcript(text=self.full, segments=[{"text": self.full}], duration_ms=400.0)
        segment = {"text": self.text, "avg_logprob": self.avg_logprob}
        if self.avg_logprob < -1.0:
            segment["dropped"] = f"avg_logprob {self.avg_logprob:.2f} < -1.0"
            return Transcript(text="", segments=[segment], duration_ms=150.0)
        return Transcript(text=self.text, segments=[segment], duration_ms=150.0)


@pytest.fixture(scope="module")
def commands():
    return load_commands(COMMANDS)


AUDIO = np.zeros(8000, np.float32)


def test_an_unsure_stop_over_a_reply_is_decided_by_the_short_pass(commands):
    asr = DroppingASR("Stop.", -1.3)
    result = Recognizer(asr, commands).barge_in(AUDIO)
    assert result.match is not None and result.match.intent == "Stop"
    assert (result.path, result.passes) == ("short", 1) and asr.passes == [True]


def test_below_the_barge_in_guard_the_full_window_decides(commands):
    asr = DroppingASR("Stop.", -1.8, full="Stop.")
    result = Recognizer(asr, commands).barge_in(AUDIO)
    assert (result.path, result.passes, result.match.intent) == ("full", 2, "Stop")
    asr = DroppingASR("Stop.", -1.3)
    strict = Recognizer(asr, commands, RecognizerSettings(barge_in_logprob=-1.0)).barge_in(AUDIO)
    assert strict.match is None and asr.passes == [True, False]


def test_an_unsure_text_that_is_not_the_stop_set_is_never_acted_on(commands):
    for text in ("Turn on the kitchen lights.", "Stop the timer.", "I start."):
        asr = DroppingASR(text, -1.3)
        result = Recognizer(asr, commands).barge_in(AUDIO)
        assert result.match is None, text


def test_the_unsure_guard_applies_to_barge_in_only(commands):
    """Outside a reply a dropped text stays dropped: the normal policy runs its second pass."""
    asr = DroppingASR("Stop.", -1.3, full="")
    result = Recognizer(asr, commands).recognize(AUDIO)
    assert result.match is None and result.text == "" and asr.passes == [True, False]


def test_the_barge_in_guard_is_a_log_probability():
    with pytest.raises(ValueError, match="barge_in_logprob"):
        RecognizerSettings(barge_in_logprob=0.5)


class PromptedASR(DroppingASR):
    """Hears "stop" over a reply as "start" when prompted with the whole grammar's words (as
    tiny.en did in the virtual room), as "stop" with the stop set's own words; notes its prompts."""

    def __init__(self) -> None:
        super().__init__("", -0.5, full="Stop.")
        self.prompts: list[str | None] = []

    def vocabulary_prompt(self, words):
        return " ".join(words)

    def transcribe(self, audio, prompt=None, short_context=None):
        self.prompts.append(prompt)
        self.text = "stop" if prompt is not None and "lights" not in prompt.split() else "start"
        return super().transcribe(audio, prompt, short_context)


def test_the_stop_set_is_listened_for_with_its_own_words_as_the_prompt(commands):
    """The short pass decides (no 30 s window) because its prompt names only what can match."""
    asr = PromptedASR()
    result = Recognizer(asr, commands).barge_in(AUDIO)
    assert (result.path, result.passes, result.match.intent) == ("short", 1, "Stop")
    assert asr.prompts == [" ".join(commands.barge_in_vocabulary())]
    assert len(result.pass_ms) == 1
    assert Recognizer(asr, commands).recognize(AUDIO).match is not None  # commands: the whole grammar's prompt
    assert "lights" in asr.prompts[1].split()


def test_the_stop_sets_vocabulary_is_the_words_of_its_sentences(commands):
    assert commands.barge_in_vocabulary() == ["be", "cancel", "enough", "forget", "it", "mind", "never",
                                              "nevermind", "quiet", "stop", "talking", "that's"]
    assert set(commands.barge_in_vocabulary()) < {w.casefold() for w in commands.vocabulary()}


def test_without_a_vocabulary_prompt_the_stop_set_has_none_either(commands):
    asr = PromptedASR()
    Recognizer(asr, commands, RecognizerSettings(vocabulary_prompt=False)).barge_in(AUDIO)
    assert asr.prompts[0] is None
