"""WhisperASR mechanics on a tiny random-weight model loaded through our loader: devices,
contexts, the model lock, the repetition handling and the drop rules (recognition itself is
tested on real tiny.en in test_asr_real.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assistant.asr import Transcript, WhisperASR, WhisperSettings
from assistant.asr.resident import first_period, repeats_ngram
from assistant.scheduler import SCHEDULER
from asr_support import save_random_checkpoint


def noise(samples: int) -> np.ndarray:
    """Quiet white noise (-26 dBFS): above the silence gate, so the model really runs."""
    return np.random.default_rng(1).normal(0, 0.05, samples).astype(np.float32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("tiny") / "random.pt")


@pytest.fixture(scope="module")
def asr(checkpoint):
    return WhisperASR(WhisperSettings(model=str(checkpoint), device="cpu", short_context=True))


def test_loads_by_path_on_cpu_in_fp32_and_is_warm(asr, checkpoint):
    assert asr.checkpoint == checkpoint
    assert asr.device == "cpu" and asr.fp16 is False
    assert asr.model.dims.n_audio_state == 16
    assert asr.warmup_ms > 0
    assert next(asr.model.parameters()).dtype == torch.float32


def test_auto_device_is_cpu_without_an_accelerator(checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert WhisperASR(WhisperSettings(model=str(checkpoint))).device == "cpu"


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "xpu", "mps"])
def test_absent_accelerators_fail_clearly(checkpoint, device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="not available|only"):
        WhisperASR(WhisperSettings(model=str(checkpoint), device=device))


def test_unknown_device_name_is_refused(checkpoint):
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        WhisperASR(WhisperSettings(model=str(checkpoint), device="gpu"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"no_speech_threshold": 0}, "no_speech_threshold"),
    ({"context_margin_seconds": -1}, "context_margin_seconds"),
    ({"language": ""}, "language"),
])
def test_settings_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WhisperSettings(**kwargs)


def test_text_that_never_ends_is_retried_on_the_full_window_then_dropped_as_improbable(asr):
    """Random weights babble without end or repetition: the token budget stops the short-context
    decode, the full window is tried, and the nonsense is dropped by the log-probability guard."""
    result = asr.transcribe(noise(32000))
    assert isinstance(result, Transcript) and result.duration_ms > 0
    (segment,) = result.segments
    assert segment["repetition"] and segment["full_context_retry"] and segment["audio_ctx"] == 1500
    assert segment["text"] and result.text == ""
    assert segment["dropped"].startswith("avg_logprob")


def test_short_context_covers_the_audio_plus_the_margin(asr):
    assert asr.mel_frames_for(32000) == 300  # 2 s + 1 s margin at 100 frames/s
    assert asr.mel_frames_for(16001) % 2 == 0  # conv2 halves it
    assert asr.mel_frames_for(16000 * 40) == 3000  # never more than Whisper's window
    assert asr.mel_frames_for(32000, short=False) == 3000


def encoded_contexts(asr, monkeypatch) -> list[int]:
    """Records the number of encoder positions of every encoder pass `asr` makes."""
    contexts: list[int] = []
    real = asr._encode

    def spy(audio, *, short):
        features = real(audio, short=short)
        contexts.append(features.shape[1])
        return features

    monkeypatch.setattr(asr, "_encode", spy)
    return contexts


def test_full_context_is_the_default_and_can_be_chosen_per_call(checkpoint, asr, monkeypatch):
    full = WhisperASR(WhisperSettings(model=str(checkpoint), device="cpu"))
    contexts = encoded_contexts(full, monkeypatch)
    assert full.transcribe(noise(16000)).segments[0]["audio_ctx"] == 1500
    assert contexts == [1500]
    full.transcribe(noise(16000), short_context=True)
    assert contexts[1] == 100  # 1 s + 1 s margin = 200 mel frames; (random weights then babble: retried)
    contexts = encoded_contexts(asr, monkeypatch)
    assert asr.transcribe(noise(16000), short_context=False).segments[0]["full_context_retry"] is False
    assert contexts == [1500]


def test_mel_is_what_transcribe_gives_the_encoder_cut_short(asr):
    """transcribe() keeps the audio's own frames of a spectrogram of audio + 30 s of zeros and
    pads them with 0.0 to 3000 frames; short context is the start of exactly that."""
    from whisper.audio import N_SAMPLES, log_mel_spectrogram, pad_or_trim

    audio = np.random.default_rng(0).normal(0, 0.1, 24000).astype(np.float32)
    mel = log_mel_spectrogram(audio, 80, padding=N_SAMPLES)
    expected = pad_or_trim(mel[:, : mel.shape[-1] - 3000], 3000)
    full = asr.log_mel(audio, short=False)[0]
    short = asr.log_mel(audio, short=True)[0]
    assert torch.equal(full, expected)
    assert short.shape == (80, asr.mel_frames_for(len(audio)))
    assert torch.equal(short, expected[:, : short.shape[1]])


def test_every_inference_holds_the_model_slot(asr, monkeypatch):
    seen: list[bool] = []
    original = asr.model.decoder.forward

    def spy(*args, **kwargs):
        seen.append(SCHEDULER.held_here())
        return original(*args, **kwargs)

    monkeypatch.setattr(asr.model.decoder, "forward", spy)
    asr.transcribe(noise(8000))
    assert seen and all(seen)


def test_token_budget_grows_with_the_audio(asr):
    assert asr.token_budget(16000) == 24
    assert asr.token_budget(16000 * 30) == 224  # half the text context


@pytest.mark.parametrize(("text", "first"), [
    ("Stop. Stop. Stop. St", "Stop."),
    ("stop stop stop stop", "stop"),
    ("What time is it? What time is it? what", "What time is it?"),
    ("Turn off the bedroom lights. Turn off the", "Turn off the bedroom lights."),
    ("Turn off the bedroom lights.", None),
    ("set a timer, set an alarm", None),
])
def test_first_period_keeps_one_round_of_a_pure_repetition(text, first):
    assert first_period(text) == first


def test_repeats_ngram_looks_at_the_last_three_tokens():
    assert repeats_ngram([1, 2, 3, 9, 1, 2, 3])
    assert not repeats_ngram([1, 2, 3, 9, 1, 2, 4])
    assert not repeats_ngram([1, 2, 1, 2])  # too short to call it a loop


@pytest.mark.parametrize(("values", "dropped"), [
    ({"no_speech_prob": 0.95, "avg_logprob": -0.3}, "no_speech_prob 0.95 >= 0.8"),
    ({"no_speech_prob": 0.1, "avg_logprob": -1.7}, "avg_logprob -1.70 < -1.0"),
    ({"no_speech_prob": 0.68, "avg_logprob": -0.5}, None),  # the one-word "stop" on short context
])
def test_drop_rules(asr, values, dropped):
    assert asr._drop_reason({"text": "Thank you.", **values}) == dropped


def test_empty_text_is_dropped(asr):
    assert asr._drop_reason({"text": "", "no_speech_prob": 0.0, "avg_logprob": 0.0}) == "empty"


def test_digital_silence_is_not_transcribed_at_all(asr, monkeypatch):
    monkeypatch.setattr(asr, "_decode", lambda *a, **k: pytest.fail("the model ran on silence"))
    result = asr.transcribe(np.zeros(32000, dtype=np.float32))
    assert result.text == "" and result.segments[0]["dropped"].startswith("silent audio")
    assert asr.transcribe(np.zeros(0, dtype=np.float32)).text == ""
