"""Self-check: the WER threshold (catwalk's bug: an integer distance vs 0.2 passed only exact
matches) and re-rendering that keeps the best take."""

import numpy as np
import pytest

from assistant.audio.clip import Audio
from assistant.tts.selfcheck import PAD_SECONDS, WHISPER_RATE, SelfCheck, normalized_words, word_error_rate

TEN_WORDS = "please turn on the light in the kitchen right now"


def test_wer_counts_edits_per_reference_word() -> None:
    assert word_error_rate(TEN_WORDS, TEN_WORDS.replace("kitchen", "chicken")) == pytest.approx(0.1)
    assert word_error_rate("turn on the light", "turn off the night") == pytest.approx(0.5)
    assert word_error_rate("turn on the light", "turn on the") == pytest.approx(0.25)
    assert word_error_rate("turn on", "turn on the light please") == pytest.approx(1.5)
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "you") == 1.0


def test_normalisation_ignores_case_punctuation_and_number_form() -> None:
    assert word_error_rate("Timer set for 7:30.", "timer set for seven thirty") == 0.0
    assert word_error_rate("It's 25% done!", "its twenty five percent done") == 0.0
    assert normalized_words("Twenty-One, GO!") == ["twenty", "one", "go"]


def _clip(index: int) -> Audio:
    """A distinct 'rendering' per try: its length in samples encodes which take it is."""
    return Audio(np.full(100 + index, 0.1, dtype=np.float32), WHISPER_RATE)


class Takes:
    """Renders take 0, 1, 2...; the transcriber 'hears' the scripted transcript of each take."""

    def __init__(self, transcripts: list[str]) -> None:
        self.transcripts = transcripts
        self.rendered = 0

    def render(self) -> Audio:
        audio = _clip(self.rendered)
        self.rendered += 1
        return audio

    def transcribe(self, samples: np.ndarray) -> str:
        assert samples.dtype == np.float32
        return self.transcripts[len(samples) - 100 - 2 * int(PAD_SECONDS * WHISPER_RATE)]


def test_a_small_slip_passes_at_the_default_threshold() -> None:
    takes = Takes([TEN_WORDS.replace("kitchen", "chicken")])
    result = SelfCheck(takes.transcribe).run(TEN_WORDS, takes.render)
    assert takes.rendered == 1 and result.passed and result.wer == pytest.approx(0.1)


def test_a_bad_take_is_rendered_again_until_one_passes() -> None:
    takes = Takes(["turn off the night", "turn on the light"])
    result = SelfCheck(takes.transcribe, threshold=0.25, max_tries=3).run("turn on the light", takes.render)
    assert takes.rendered == 2
    assert result.passed and result.wer == 0.0 and len(result.audio) == 101 and result.tries == 2


def test_the_best_take_is_kept_when_none_passes() -> None:
    takes = Takes(["nothing like it at all", "turn off the night", "banana"])
    result = SelfCheck(takes.transcribe, max_tries=3).run("turn on the light", takes.render)
    assert takes.rendered == 3
    assert not result.passed and result.wer == pytest.approx(0.5) and len(result.audio) == 101


def test_audio_is_resampled_to_16k_and_padded_with_silence_for_the_transcriber() -> None:
    seen = []
    check = SelfCheck(lambda samples: seen.append(samples) or "hello")
    check.run("hello", lambda: Audio(np.full(22050, 0.5, dtype=np.float32), 22050))
    pad = int(PAD_SECONDS * 16000)
    assert len(seen) == 1 and len(seen[0]) == 16000 + 2 * pad
    assert not seen[0][:pad].any() and not seen[0][-pad:].any()
    assert seen[0][pad + 100] == pytest.approx(0.5, abs=1e-3)


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        SelfCheck(lambda s: "", max_tries=0)
    with pytest.raises(ValueError):
        SelfCheck(lambda s: "", threshold=-0.1)
