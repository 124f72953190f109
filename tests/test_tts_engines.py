"""Piper and espeak-ng produce real speech: plausible length, not silent, the right rate."""

import sys

import numpy as np
import pytest

from assistant.audio.clip import Audio
from assistant.tts.base import TTSUnavailable
from assistant.tts.espeak import EspeakEngine
from assistant.tts.piper import PiperEngine

REPLY = "The kitchen light is on."


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    return PiperEngine()


@pytest.fixture(scope="module")
def espeak() -> EspeakEngine:
    return EspeakEngine()


def assert_speech(audio: Audio, rate: int, words: int) -> None:
    assert audio.sample_rate == rate
    assert audio.samples.dtype == np.float32
    # Speech runs at about 2-4 words per second, plus a little lead-in and tail.
    assert words / 5.0 < audio.duration < words / 1.5 + 0.6
    assert audio.rms() > 0.02
    assert np.abs(audio.samples).max() <= 1.0
    # Speech has pauses: its loudest 50 ms windows are far above its quietest ones.
    window = rate // 20
    levels = [np.sqrt(np.mean(audio.samples[i:i + window] ** 2)) for i in range(0, len(audio) - window, window)]
    assert max(levels) > 10 * min(levels)


def test_piper_speaks(piper: PiperEngine) -> None:
    assert_speech(piper.synthesize(REPLY), 22050, words=5)


def test_piper_streams_one_chunk_per_sentence(piper: PiperEngine) -> None:
    chunks = list(piper.stream("Hello. The timer is set. Goodbye for now."))
    assert len(chunks) == 3
    assert all(chunk.sample_rate == 22050 and chunk.rms() > 0.02 for chunk in chunks)


def test_piper_model_is_loaded_once(piper: PiperEngine) -> None:
    piper.synthesize("one")
    piper.synthesize("two")
    assert list(piper._voices) == [piper.model_path]


def test_piper_missing_package_is_unavailable_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)  # makes `import piper` raise ImportError
    with pytest.raises(TTSUnavailable, match=r"\.\[piper\]"):
        PiperEngine()


def test_piper_missing_model_is_unavailable(tmp_path) -> None:
    with pytest.raises(TTSUnavailable, match="not found"):
        PiperEngine(tmp_path / "nope.onnx")


def test_espeak_speaks(espeak: EspeakEngine) -> None:
    audio = espeak.synthesize(REPLY)
    assert_speech(audio, 22050, words=5)
    assert len(list(espeak.stream(REPLY))) == 1


def test_espeak_reads_option_like_text_as_text(espeak: EspeakEngine) -> None:
    """Text goes on stdin, so a transcript like "--help" is spoken, not parsed as an option."""
    audio = espeak.synthesize("--version -v xx; rm -rf /")
    assert audio.duration > 1.0 and audio.rms() > 0.02


def test_espeak_unknown_voice_is_a_clear_error(espeak: EspeakEngine) -> None:
    with pytest.raises(ValueError, match="no-such-voice"):
        espeak.synthesize("hello", voice="no-such-voice")
    assert espeak.synthesize("hello", voice="en-gb+f3").rms() > 0.02


def test_espeak_missing_program_is_unavailable() -> None:
    with pytest.raises(TTSUnavailable, match="espeak-ng"):
        EspeakEngine(program="espeak-ng-not-installed")
