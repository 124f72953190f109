"""TortoiseEngine on tiny random-weight models built from tortoise's real classes.

The weights are saved to a temporary models directory and loaded by our own loader, exactly as
published weights would be. Outputs are noise; what is checked is plumbing, lengths, determinism,
streaming, device/precision choices and strict loading.
"""

from __future__ import annotations

import math
import os
import random
import shutil
from itertools import zip_longest
from pathlib import Path

import numpy as np
import pytest
import torch

import assistant.tts.tortoise.engine as engine_module
from assistant.device import uses_half_precision
from assistant.tts.base import TTSEngine, TTSUnavailable
from assistant.tts.tortoise import (
    PRESETS,
    ModelSizes,
    TortoiseEngine,
    TortoiseSettings,
    TortoiseUnavailable,
    TortoiseWeightsError,
)
from assistant.tts.tortoise.config import WEIGHT_FILES
from assistant.tts.tortoise.latents import LatentCache
from assistant.tts.tortoise.tiny import write_random_models
from assistant.tts.voices import add_voice, get_voice, user_voices_dir

TEXT = "Turning on the kitchen lights."
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("home")
        patch.setenv("ASSISTANT_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def models_dir(home):
    return write_random_models(home / "data" / "models" / "tortoise")


@pytest.fixture(scope="module")
def engine(models_dir, home):
    settings = TortoiseSettings(max_mel_tokens=MAX_TOKENS, first_chunk_tokens=8, stream_chunk_tokens=12)
    return TortoiseEngine(settings, models_dir=models_dir, device="cpu", latent_cache=LatentCache(home / "latents"))


def hifigan_length(latents: int) -> int:
    """Samples HiFiGAN makes from n latents: x4 then x24000/22050 (floored) frames, 256 samples each."""
    return math.floor(4 * latents * 24000 / 22050) * 256


def test_engine_satisfies_interface(engine):
    assert isinstance(engine, TTSEngine)
    assert engine.name == "tortoise"


def test_fast_path_plausible_audio(engine):
    audio = engine.synthesize(TEXT)
    assert audio.sample_rate == 24000
    assert np.isfinite(audio.samples).all() and audio.rms() > 0
    # random weights rarely emit the stop code, so generation runs to the cap; either way the
    # length is whole latents through the decoder, at most max_mel_tokens of them (~46 ms each)
    lengths = {hifigan_length(n) for n in range(1, MAX_TOKENS + 1)}
    assert len(audio) in lengths
    assert 0.04 < audio.duration <= MAX_TOKENS * 1024 / 22050 + 0.01


def test_max_mel_tokens_bounds_length(engine):
    short = engine.synthesize(TEXT, max_mel_tokens=10)
    assert len(short) <= hifigan_length(10)


def test_same_seed_same_audio_different_seed_differs(engine):
    first = engine.synthesize(TEXT, seed=7)
    again = engine.synthesize(TEXT, seed=7)
    other = engine.synthesize(TEXT, seed=8)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert len(other) != len(first) or not np.array_equal(other.samples, first.samples)


@pytest.mark.parametrize("path", ["fast", "classic"])
def test_global_rngs_untouched(engine, path):
    # tortoise reseeds the global torch/numpy/random generators on every call; ours use a private one
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    engine.synthesize(TEXT, seed=5, path=path, candidates=1, diffusion_iterations=2)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_classic_same_seed_same_audio_with_interleaved_work(engine):
    settings = dict(path="classic", candidates=2, diffusion_iterations=3, cond_free=True, seed=11)
    alone = engine.synthesize(TEXT, **settings)
    # another reply's model work between every stage must not change this one (private RNG)
    chunks = engine.stream("Something else entirely.", seed=1)

    def guard_with_interference():
        next(chunks, None)
        return engine._guard(rng)

    from assistant.tts.tortoise.inference import classic_synthesize
    from assistant.tts.tortoise.rng import PrivateRNG

    rng = PrivateRNG(11, "cpu")
    chosen = engine._settings(None, settings)
    interleaved = classic_synthesize(
        engine.models, TEXT, engine.voice_latent(None), engine.voice_latent(None, "diffusion"), chosen,
        guard_with_interference,
    )
    np.testing.assert_array_equal(interleaved.numpy(), alone.samples)


def test_stream_yields_chunks_before_generation_ends_and_matches_full(engine):
    steps = []
    hook = engine.models.autoregressive.inference_model.register_forward_hook(lambda *_: steps.append(1))
    try:
        stream = engine.stream(TEXT, seed=3)
        first = next(stream)
        steps_at_first_chunk = len(steps)
        chunks = [first, *stream]
        total_steps = len(steps)
    finally:
        hook.remove()
    full = engine.synthesize(TEXT, seed=3)
    assert len(chunks) >= 3
    assert steps_at_first_chunk < total_steps / 2  # audio started while the GPT was still running
    joined = np.concatenate([c.samples for c in chunks])
    # Tolerance: 1e-5. Streamed chunks hold back the decoder's measured lookahead and decode each
    # window from its measured lookbehind, so every sample they emit is final; the only difference
    # from one full decode is float summation order in convolutions over different lengths
    # (~1e-7). Tortoise's own crossfaded chunks differ by far more near every seam and drop the
    # last 1024 samples, so no crossfade is used or needed.
    assert len(joined) == len(full)
    np.testing.assert_allclose(joined, full.samples, atol=1e-5, rtol=0)


def test_interleaved_streams_do_not_disturb_each_other(engine):
    # Two replies streamed at once (e.g. the HTTP API and the listen loop): the GPT's prompt
    # embedding lives on the shared model and the RNG is global, so both must be per reply.
    alone = engine.synthesize(TEXT, seed=21)
    other_alone = engine.synthesize("Five minutes.", seed=22)
    first, second = engine.stream(TEXT, seed=21), engine.stream("Five minutes.", seed=22)
    got_first, got_second = [], []
    for a, b in zip_longest(first, second):
        got_first += [a] if a is not None else []
        got_second += [b] if b is not None else []
    np.testing.assert_allclose(np.concatenate([c.samples for c in got_first]), alone.samples, atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        np.concatenate([c.samples for c in got_second]), other_alone.samples, atol=1e-5, rtol=0
    )


def test_corrupt_sizes_file_is_unavailable(models_dir, tmp_path):
    broken = _copy(models_dir, tmp_path)
    (broken / "sizes.json").write_text("{not json")
    with pytest.raises(TortoiseWeightsError, match="sizes"):
        TortoiseEngine(models_dir=broken, device="cpu")


def test_stream_decoding_work_is_linear(engine):
    # tortoise re-decodes the whole reply for every chunk; we decode a window per chunk, so the
    # frames decoded in total stay within one pass plus a bounded context per chunk.
    decoded = []
    hook = engine.models.hifigan.register_forward_pre_hook(lambda _m, args: decoded.append(args[0].shape[-1]))
    try:
        chunks = list(engine.stream(TEXT, seed=4, max_mel_tokens=MAX_TOKENS))
    finally:
        hook.remove()
    context = engine.decoder_context()
    total_frames = sum(len(c) for c in chunks) // 256
    per_chunk_extra = (context.lookahead + context.lookbehind) // 256 + 2
    assert len(decoded) == len(chunks) >= 3
    assert decoded[-1] < total_frames  # the last chunk did not re-decode from the start
    assert sum(decoded) <= total_frames + len(decoded) * per_chunk_extra
    assert 0 < context.lookahead < 24000 and 0 < context.lookbehind < 24000  # edge reach, well under 1 s


def test_classic_path_plausible_audio_and_knobs(engine):
    ranked = []
    hook = engine.models.clvp.register_forward_hook(lambda *_: ranked.append(1))
    try:
        audio = engine.synthesize(TEXT, path="classic", candidates=2, batch_size=1, diffusion_iterations=3, cond_free=True)
    finally:
        hook.remove()
    assert len(ranked) == 2  # both candidates scored by CLVP (one per batch)
    assert audio.sample_rate == 24000 and np.isfinite(audio.samples).all()
    # diffusion makes 4 * 24000/22050 mel frames per latent, UnivNet 256 samples per frame
    assert len(audio) % 256 == 0
    assert 0 < len(audio) <= (MAX_TOKENS * 4 * 24000 // 22050) * 256
    chunks = list(engine.stream(TEXT, path="classic", candidates=1, diffusion_iterations=2))
    assert len(chunks) == 1 and len(chunks[0]) > 0


def test_kv_cache_on_and_device_cpu(engine):
    gpt = engine.models.autoregressive
    assert gpt.inference_model.kv_cache is True
    assert engine.device == "cpu" and engine.half is False
    assert {p.device.type for p in gpt.parameters()} == {"cpu"}
    assert {p.device.type for p in engine.models.hifigan.parameters()} == {"cpu"}


def test_unavailable_device_fails_clearly(models_dir):
    with pytest.raises(ValueError, match="unknown device"):
        TortoiseEngine(models_dir=models_dir, device="tpu")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: an absent GPU cannot be asked for")
    with pytest.raises(ValueError, match="CUDA is not available"):
        TortoiseEngine(models_dir=models_dir, device="cuda")


def test_half_precision_follows_the_device_helper(models_dir, monkeypatch):
    # Models load lazily, so the precision decision is observable without a GPU.
    monkeypatch.setattr(engine_module, "resolve_device", lambda name: name)
    for device in ("cuda", "cuda:1", "xpu", "mps", "cpu"):
        chosen = TortoiseEngine(models_dir=models_dir, device=device)
        assert chosen.half is uses_half_precision(device)
        assert chosen.models.device == device and chosen.models.half is chosen.half
    assert TortoiseEngine(models_dir=models_dir, device="cuda", half=False).half is False
    with pytest.raises(ValueError, match="half precision needs"):
        TortoiseEngine(models_dir=models_dir, device="cpu", half=True)


def test_missing_weights_unavailable(tmp_path):
    assert TortoiseEngine.available(tmp_path) is False
    with pytest.raises(TortoiseUnavailable, match="autoregressive.pth") as raised:
        TortoiseEngine(models_dir=tmp_path, device="cpu")
    assert isinstance(raised.value, TTSUnavailable)  # the Speech facade's fallback catches this


def test_available_with_all_files(models_dir):
    assert TortoiseEngine.available(models_dir) is True


def _copy(models_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    return target


def test_strict_loading_catches_missing_key(models_dir, tmp_path):
    broken = _copy(models_dir, tmp_path)
    path = broken / WEIGHT_FILES["hifigan"]
    state = torch.load(path, weights_only=True)
    removed = next(iter(state))
    del state[removed]
    torch.save(state, path)
    engine = TortoiseEngine(models_dir=broken, device="cpu")
    with pytest.raises(TortoiseWeightsError, match=f"1 weights missing: {removed}"):
        engine.load()


def test_truncated_weights_file_is_a_clear_error(models_dir, tmp_path):
    broken = _copy(models_dir, tmp_path)
    path = broken / WEIGHT_FILES["autoregressive"]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(TortoiseWeightsError, match="cannot read weights"):
        TortoiseEngine(models_dir=broken, device="cpu").load()


def test_sizes_that_do_not_fit_the_weights(models_dir, tmp_path):
    broken = _copy(models_dir, tmp_path)
    ModelSizes.tiny(width=32).save(broken)
    with pytest.raises(TortoiseWeightsError, match="do not fit"):
        TortoiseEngine(models_dir=broken, device="cpu").load()


def test_published_sizes_are_the_default():
    sizes = ModelSizes()
    assert sizes.autoregressive["layers"] == 30 and sizes.autoregressive["model_dim"] == 1024
    assert sizes.hifigan["upsample_factors"] == [8, 8, 2, 2]
    assert sizes.diffusion["model_channels"] == 1024 and sizes.clvp["text_enc_depth"] == 20


def test_cache_key_covers_settings_weights_and_voice(models_dir, tmp_path, home):
    copy = _copy(models_dir, tmp_path)
    engine = TortoiseEngine(models_dir=copy, device="cpu")
    key = engine.cache_key()
    assert key == engine.cache_key("dotrice") == TortoiseEngine(models_dir=copy, device="cpu").cache_key()
    assert TortoiseEngine(TortoiseSettings(seed=9), models_dir=copy, device="cpu").cache_key() != key
    path = copy / WEIGHT_FILES["hifigan"]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # new weights
    assert engine.cache_key() != key
    voice = add_voice("keyed", [get_voice("dotrice").clips[0]])
    before = engine.cache_key("keyed")
    voice.clips[0].write_bytes(voice.clips[0].read_bytes()[:-2000])  # the user re-records a clip
    assert engine.cache_key("keyed") != before
    shutil.rmtree(user_voices_dir() / "keyed")


def test_presets_and_settings_validation():
    assert set(PRESETS) == {"ultra_fast", "fast", "standard", "high_quality"}
    hq = TortoiseSettings.from_preset("high_quality", temperature=0.5)
    assert (hq.candidates, hq.diffusion_iterations, hq.cond_free, hq.temperature) == (256, 400, True, 0.5)
    assert TortoiseSettings.from_preset("ultra_fast").cond_free is False
    with pytest.raises(ValueError, match="unknown Tortoise preset"):
        TortoiseSettings.from_preset("turbo")
    with pytest.raises(ValueError, match="top_p"):
        TortoiseSettings(top_p=1.5)
    with pytest.raises(TypeError):
        TortoiseSettings.from_preset("fast", warp_speed=True)
    assert TortoiseSettings(seed=1).cache_key() != TortoiseSettings(seed=2).cache_key()


def test_empty_text_refused(engine):
    for text in ("   ", "", " . , ! "):
        with pytest.raises(ValueError, match="empty"):
            engine.synthesize(text)


def test_long_text_is_said_in_segments(engine):
    # one GPT call takes < 400 text tokens and makes <= max_mel_tokens codes: longer replies are
    # split at sentences (~200 characters) and said piece by piece, in both paths and when streamed
    sentence = "The washing machine in the basement has finished its cycle and the clothes are ready. "
    text = sentence * 6  # ~520 characters, about 130 tokens per 300 characters
    steps = []
    hook = engine.models.autoregressive.inference_model.register_forward_hook(lambda *_: steps.append(1))
    try:
        whole = engine.synthesize(text, seed=2, max_mel_tokens=8)
    finally:
        hook.remove()
    assert len(steps) >= 2 * 8  # text of ~520 characters: two GPT runs (segments) of 8 codes
    assert len(whole) > hifigan_length(8)
    streamed = np.concatenate([c.samples for c in engine.stream(text, seed=2, max_mel_tokens=8)])
    np.testing.assert_allclose(streamed, whole.samples, atol=1e-5, rtol=0)
    very_long = "word " * 400  # no sentence ends at all: split between words
    assert len(engine.synthesize(very_long, max_mel_tokens=4)) > 0


def test_private_rng_continues_across_interruptions():
    from assistant.tts.tortoise.rng import PrivateRNG

    reference = torch.Generator().manual_seed(42)
    expected = torch.rand(6, generator=reference)
    rng = PrivateRNG(42, "cpu")
    torch.manual_seed(0)
    global_expected = torch.rand(4)
    torch.manual_seed(0)
    with rng.active():
        first = torch.rand(3)
    global_first = torch.rand(2)  # someone else's randomness in between
    with rng.active():
        second = torch.rand(3)
    global_second = torch.rand(2)
    assert torch.equal(torch.cat([first, second]), expected)
    assert torch.equal(torch.cat([global_first, global_second]), global_expected)
