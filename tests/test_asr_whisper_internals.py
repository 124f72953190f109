"""The openai-whisper internals assistant/asr/resident.py relies on, checked against the pin.

WhisperASR drives Whisper below its public `transcribe()`: it encodes fewer than 3000 mel frames
itself (conv1, conv2, a slice of the positional embedding, the blocks, ln_post), subclasses
`DecodingTask` to hand it those features (`_get_audio_features`), replaces its `inference` with a
`PyTorchInference` that projects only the logits `_main_loop` reads (a hook on the text decoder's
`ln`), appends a `LogitFilter` to
`logit_filters`, reads `sample_begin` and `tokenizer.eot`, and builds `DecodingOptions` by field
name. None of that is a stable API. pyproject pins openai-whisper; when the pin moves, these
tests say exactly which internal changed, and the numeric checks say whether our path still
computes what Whisper's own encoder and decoder compute. Tiny random-weight model: seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import inspect
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper
import whisper.audio
import whisper.decoding
import whisper.model
import whisper.tokenizer

from assistant.asr import WhisperASR, WhisperSettings
from assistant.asr import resident
from asr_support import save_random_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# The release whose internals the checks below were written against. Moving the pin means
# re-reading resident.py against the new release, then updating this.
CHECKED_VERSION = "20250625"


def params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


@pytest.fixture(scope="module")
def asr(tmp_path_factory) -> WhisperASR:
    checkpoint = save_random_checkpoint(tmp_path_factory.mktemp("tiny") / "random.pt")
    return WhisperASR(WhisperSettings(model=str(checkpoint), device="cpu"))


def speechlike(seconds: float) -> np.ndarray:
    return np.random.default_rng(3).normal(0, 0.1, int(seconds * 16000)).astype(np.float32)


def test_installed_whisper_is_the_pinned_release_these_checks_were_written_for():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if re.match(r"openai-whisper\b", d)]
    assert pins == [f"openai-whisper=={CHECKED_VERSION}"], pins
    assert importlib.metadata.version("openai-whisper") == CHECKED_VERSION
    assert whisper.__version__ == CHECKED_VERSION


def test_audio_constants_and_log_mel_signature():
    a = whisper.audio
    assert (a.SAMPLE_RATE, a.HOP_LENGTH, a.N_SAMPLES, a.N_FRAMES) == (16000, 160, 480000, 3000)
    assert (resident.SAMPLE_RATE, resident.HOP, resident.MAX_SAMPLES, resident.N_FRAMES) == (16000, 160, 480000, 3000)
    assert params(a.log_mel_spectrogram) == ["audio", "n_mels", "padding", "device"]
    # padding appends that many zero samples before the STFT: the frame count resident.log_mel cuts at
    mel = a.log_mel_spectrogram(torch.zeros(16000), 80, padding=a.N_SAMPLES)
    assert mel.shape == (80, 100 + a.N_FRAMES)


def test_model_loading_tokenizer_and_dims_fields():
    assert params(whisper.load_model)[:2] == ["name", "device"]
    sig = inspect.signature(whisper.tokenizer.get_tokenizer)
    assert list(sig.parameters)[0] == "multilingual"
    assert {"num_languages", "language", "task"} <= {
        n for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    fields = {f.name for f in dataclasses.fields(whisper.model.ModelDimensions)}
    assert {"n_mels", "n_audio_ctx", "n_audio_state", "n_text_ctx", "n_vocab"} <= fields
    assert isinstance(getattr(whisper.model.Whisper, "is_multilingual"), property)
    assert isinstance(getattr(whisper.model.Whisper, "num_languages"), property)


def test_encoder_has_the_parts_the_short_context_encoder_runs(asr):
    encoder = asr.model.encoder
    assert isinstance(encoder, whisper.model.AudioEncoder)
    assert isinstance(encoder.conv1, torch.nn.Conv1d) and encoder.conv1.stride == (1,)
    assert isinstance(encoder.conv2, torch.nn.Conv1d) and encoder.conv2.stride == (2,)  # mel_frames_for keeps frames even
    assert encoder.positional_embedding.shape == (asr.model.dims.n_audio_ctx, asr.model.dims.n_audio_state)
    assert len(encoder.blocks) == asr.model.dims.n_audio_layer and isinstance(encoder.ln_post, torch.nn.LayerNorm)
    # the order resident._encode copies: gelu(conv1), gelu(conv2), permute, + positions, blocks, ln_post
    source = inspect.getsource(whisper.model.AudioEncoder.forward)
    steps = ["F.gelu(self.conv1(x))", "F.gelu(self.conv2(x))", "x.permute(0, 2, 1)",
             "x + self.positional_embedding", "for block in self.blocks", "self.ln_post(x)"]
    positions = [source.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), dict(zip(steps, positions))


def test_decoding_task_hooks_and_options_fields():
    d = whisper.decoding
    fields = {f.name: f for f in dataclasses.fields(d.DecodingOptions)}
    assert {"task", "language", "temperature", "sample_len", "without_timestamps", "fp16", "prompt"} <= set(fields)
    assert params(d.DecodingTask.__init__) == ["self", "model", "options"]
    assert params(d.DecodingTask.run) == ["self", "mel"]
    assert params(d.DecodingTask._get_audio_features) == ["self", "mel"]
    # run() must still get its features from the hook _FeaturesDecodingTask overrides
    assert "self._get_audio_features(mel)" in inspect.getsource(d.DecodingTask.run)
    assert params(d.LogitFilter.apply) == ["self", "logits", "tokens"]
    assert "for logit_filter in self.logit_filters" in inspect.getsource(d.DecodingTask._main_loop)
    assert issubclass(resident._FeaturesDecodingTask, d.DecodingTask)
    assert issubclass(resident._StopRepetition, d.LogitFilter)
    result_fields = {f.name for f in dataclasses.fields(d.DecodingResult)}
    assert {"text", "tokens", "avg_logprob", "no_speech_prob", "compression_ratio"} <= result_fields


def test_a_task_exposes_the_attributes_resident_reads(asr):
    task = resident._FeaturesDecodingTask(asr.model, whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False))
    assert isinstance(task.logit_filters, list)
    assert isinstance(task.sample_begin, int) and task.sample_begin == len(task.initial_tokens)
    assert task.tokenizer.eot == 50256  # English-only vocabulary (n_vocab 51864)


def test_full_frames_through_our_encoder_equal_whispers_encoder(asr):
    audio = speechlike(2.0)
    mel = asr.log_mel(audio, short=False)
    assert mel.shape == (1, 80, 3000)
    with torch.inference_mode():
        expected = asr.model.encoder(mel)
    ours = asr._encode(audio, short=False)
    assert ours.shape == (1, 1500, 16)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_short_frames_equal_whispers_encoder_with_its_positions_sliced(asr):
    """Whisper's own forward (which asserts the positional embedding's shape) on an encoder whose
    embedding is cut to the short length gives exactly our short-context features."""
    audio = speechlike(1.5)
    mel = asr.log_mel(audio, short=True)
    positions = mel.shape[-1] // 2
    assert positions == asr.mel_frames_for(len(audio)) // 2 == 125
    sliced = copy.deepcopy(asr.model.encoder)
    sliced.positional_embedding = sliced.positional_embedding[:positions].clone()
    with torch.inference_mode():
        expected = sliced(mel)
    torch.testing.assert_close(asr._encode(audio, short=True), expected, rtol=0, atol=0)


def test_features_task_decodes_exactly_like_whisper_decode(asr):
    """Full window: our task fed encoder output == whisper.decode fed the mel (its own encoder)."""
    audio = speechlike(2.0)
    ours, audio_ctx = asr._decode(audio, None, short=False)
    options = whisper.DecodingOptions(task="transcribe", language="en", temperature=0.0,
                                      sample_len=asr.token_budget(len(audio)), without_timestamps=True, fp16=False)
    theirs = whisper.decode(asr.model, asr.log_mel(audio, short=False)[0], options)
    assert audio_ctx == 1500
    assert ours.tokens == theirs.tokens and len(ours.tokens) > 0
    assert ours.text == theirs.text
    assert ours.avg_logprob == pytest.approx(theirs.avg_logprob, abs=1e-6)
    assert ours.no_speech_prob == pytest.approx(theirs.no_speech_prob, abs=1e-6)


def test_short_features_reach_the_decoder_unchanged(asr, monkeypatch):
    """Whisper's stock _get_audio_features would run the encoder again on 125-position features
    (it only recognises 1500); ours passes them through, and the stop filter sees every step."""
    audio = speechlike(1.5)
    seen: list[tuple[int, ...]] = []
    original = asr.model.decoder.forward

    def spy(tokens, audio_features, kv_cache=None):
        seen.append(tuple(audio_features.shape))
        return original(tokens, audio_features, kv_cache=kv_cache)

    monkeypatch.setattr(asr.model.decoder, "forward", spy)
    applied: list[int] = []
    monkeypatch.setattr(resident._StopRepetition, "apply", lambda self, logits, tokens: applied.append(tokens.shape[1]))
    result, audio_ctx = asr._decode(audio, None, short=True)
    assert audio_ctx == 125 and seen and set(seen) == {(1, 125, 16)}
    start = applied[0]  # one filter call per decoder step, on the tokens so far
    assert applied == list(range(start, start + len(seen)))
    assert len(result.tokens) <= len(seen)


def test_the_loop_reads_only_the_start_token_and_last_logits():
    """`_NeededLogits` projects two positions of the first call: the ones `_main_loop` reads."""
    loop = inspect.getsource(whisper.decoding.DecodingTask._main_loop)
    assert "logits[:, self.sot_index]" in loop and "logits = logits[:, -1]" in loop
    assert "self.inference.logits(tokens, audio_features)" in loop
    assert "x = self.ln(x)" in inspect.getsource(whisper.model.TextDecoder.forward)


def test_a_prompted_pass_decodes_exactly_like_whisper_decode(asr):
    """With a prompt (the first call projects 2 of its ~20 positions) the tokens, log-probability
    and no-speech probability are Whisper's own."""
    audio = speechlike(2.0)
    prompt = "turn on off the kitchen bedroom lights stop cancel timer"
    ours, _ = asr._decode(audio, prompt, short=False)
    options = whisper.DecodingOptions(task="transcribe", language="en", temperature=0.0, prompt=prompt,
                                      sample_len=asr.token_budget(len(audio)), without_timestamps=True, fp16=False)
    theirs = whisper.decode(asr.model, asr.log_mel(audio, short=False)[0], options)
    assert ours.tokens == theirs.tokens and len(ours.tokens) > 0
    assert ours.avg_logprob == pytest.approx(theirs.avg_logprob, abs=1e-5)
    assert ours.no_speech_prob == pytest.approx(theirs.no_speech_prob, abs=1e-6)


def test_the_first_call_projects_the_read_positions_and_marks_the_rest(asr):
    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False, prompt="kitchen lights")
    task = resident._FeaturesDecodingTask(asr.model, options)
    tokens = torch.tensor([task.initial_tokens])
    features = asr._encode(speechlike(1.0), short=True)
    with torch.inference_mode():
        ours = task.inference.logits(tokens, features)
        expected = asr.model.decoder(tokens, features)
    task.inference.cleanup_caching()
    assert ours.shape == expected.shape and task.sot_index < tokens.shape[1] - 1
    for position in (task.sot_index, tokens.shape[1] - 1):
        torch.testing.assert_close(ours[:, position], expected[:, position], rtol=1e-5, atol=1e-5)
    others = [p for p in range(tokens.shape[1]) if p not in (task.sot_index, tokens.shape[1] - 1)]
    assert torch.isnan(ours[:, others]).all()
