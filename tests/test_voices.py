"""Voices (folders of clips) and their cached conditioning latents, on tiny random Tortoise models."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile
import torch

from assistant.tts import voices
from assistant.tts.tortoise import TortoiseEngine, TortoiseSettings, TortoiseUnavailable
from assistant.tts.tortoise.latents import LatentCache, LatentSettings
from assistant.tts.tortoise.tiny import write_random_models
from assistant.tts.tortoise.engine import compute_latents
from assistant.tts.voices import VoiceError, add_voice, get_voice, list_voices

SHIPPED = voices.PROJECT_VOICES_DIR / "dotrice"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return write_random_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def make_engine(models_dir, cache_dir, **settings):
    return TortoiseEngine(
        TortoiseSettings(max_mel_tokens=20, **settings), models_dir=models_dir, device="cpu",
        latent_cache=LatentCache(cache_dir),
    )


def count_conditioning_calls(engine):
    """Count passes of the GPT's conditioning encoder: one per clip each time latents are computed."""
    calls = []
    hook = engine.models.autoregressive.conditioning_encoder.register_forward_hook(lambda *_: calls.append("ar"))
    return calls, [hook]


def write_clip(path, seconds=2.0, rate=22050, freq=220.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    soundfile.write(str(path), data, rate, subtype="PCM_16")
    return path


def test_shipped_voice_listed():
    names = [v.name for v in list_voices()]
    assert "dotrice" in names
    voice = get_voice("dotrice")
    assert len(voice.clips) == 2 and 11 < voice.seconds() < 12.5


def test_unknown_voice_names_known_ones():
    with pytest.raises(VoiceError, match="unknown voice 'nobody'.*dotrice"):
        get_voice("nobody")


def test_add_voice_resamples_any_rate_and_channels(tmp_path):
    a = write_clip(tmp_path / "a.wav", seconds=2.0, rate=16000)
    b = write_clip(tmp_path / "b.flac", seconds=1.5, rate=48000, channels=2)
    voice = add_voice("me", [a, b])
    assert voice.folder.parent == voices.user_voices_dir()
    assert [c.suffix for c in voice.clips] == [".wav", ".flac"]
    clips = voice.load_clips()
    assert [len(c) for c in clips] == [44100, int(1.5 * 22050)]  # 22.05 kHz mono
    assert all(c.dim() == 1 and c.dtype == torch.float32 for c in clips)
    assert get_voice("me").folder == voice.folder


def test_user_voice_shadows_shipped(tmp_path):
    add_voice("dotrice", [write_clip(tmp_path / "x.wav")])
    assert get_voice("dotrice").folder == voices.user_voices_dir() / "dotrice"


def test_add_voice_rejects_bad_input_and_writes_nothing(tmp_path):
    good = write_clip(tmp_path / "good.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    short = write_clip(tmp_path / "short.wav", seconds=0.2)
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(22050), 22050)
    with pytest.raises(VoiceError, match="not a readable audio file"):
        add_voice("bad", [good, garbage])
    with pytest.raises(VoiceError, match="too short"):
        add_voice("bad", [short])
    with pytest.raises(VoiceError, match="silent"):
        add_voice("bad", [silent])
    with pytest.raises(VoiceError, match="no such file"):
        add_voice("bad", [tmp_path / "missing.wav"])
    with pytest.raises(VoiceError, match="voice name"):
        add_voice("../escape", [good])
    assert not (voices.user_voices_dir() / "bad").exists()
    add_voice("twice", [good])
    with pytest.raises(VoiceError, match="already exists"):
        add_voice("twice", [good])
    replaced = add_voice("twice", [good, good], replace=True)
    assert len(replaced.clips) == 2
    assert sorted(p.name for p in voices.user_voices_dir().iterdir()) == ["twice"]  # no staging leftovers


def test_latents_computed_once_for_two_replies(models_dir, tmp_path):
    engine = make_engine(models_dir, tmp_path / "latents")
    calls, hooks = count_conditioning_calls(engine)
    try:
        engine.synthesize("Hello there.")
        engine.synthesize("Timer set for five minutes.")
        list(engine.stream("It is three fifteen."))
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == ["ar", "ar"]  # one conditioning pass per clip (2 clips), once in total
    assert engine.latent_cache.stats.computed == 1
    assert engine.latent_cache.stats.memory_hits == 2


def test_disk_cache_survives_restart(models_dir, tmp_path):
    first = make_engine(models_dir, tmp_path / "latents")
    latent = first.voice_latent(None)
    second = make_engine(models_dir, tmp_path / "latents")  # new process: empty memory, same files
    calls, hooks = count_conditioning_calls(second)
    try:
        again = second.voice_latent(None)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == [] and second.latent_cache.stats.disk_hits == 1
    assert torch.equal(latent, again)
    assert not list((tmp_path / "latents").glob("*.tmp"))  # atomic writes leave no temporaries


def test_changed_clip_invalidates(models_dir, tmp_path):
    clip = write_clip(tmp_path / "a.wav")
    add_voice("changing", [clip, write_clip(tmp_path / "b.wav", freq=330)])
    engine = make_engine(models_dir, tmp_path / "latents")
    before = engine.voice_latent("changing")
    engine.voice_latent("changing")
    assert engine.latent_cache.stats.computed == 1
    write_clip(get_voice("changing").clips[0], freq=440)  # the user re-records a clip in place
    after = engine.voice_latent("changing")
    assert engine.latent_cache.stats.computed == 2
    assert not torch.equal(before, after)
    files = list((tmp_path / "latents").glob("changing.autoregressive.*.pt"))
    assert len(files) == 1  # the stale latent was pruned, on disk and in memory
    assert len(engine.latent_cache._memory) == 1


def test_changed_weights_invalidate(models_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    make_engine(models, tmp_path / "latents").voice_latent(None)
    path = models / "autoregressive.pth"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # weights replaced
    after = make_engine(models, tmp_path / "latents")
    after.voice_latent(None)
    assert (after.latent_cache.stats.computed, after.latent_cache.stats.disk_hits) == (1, 0)
    assert len(list((tmp_path / "latents").glob("dotrice.autoregressive.*.pt"))) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_file_is_recomputed(models_dir, tmp_path, damage, caplog):
    cache = tmp_path / "latents"
    expected = make_engine(models_dir, cache).voice_latent(None)
    (path,) = cache.glob("dotrice.autoregressive.*.pt")
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x00garbage" * 50, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    engine = make_engine(models_dir, cache)
    latent = engine.voice_latent(None)
    stats = engine.latent_cache.stats
    assert (stats.recovered, stats.computed) == (1, 1)
    assert torch.equal(latent, expected)  # deterministic recomputation
    assert "unreadable" in caplog.text
    assert torch.load(path, weights_only=True)["latent"].shape == expected.shape  # repaired on disk


def test_random_crop_is_seeded(models_dir, tmp_path):
    add_voice("long", [write_clip(tmp_path / "long.wav", seconds=9.0)])  # > 6 s: tortoise crops at random
    latents = [make_engine(models_dir, tmp_path / f"c{i}").voice_latent("long") for i in range(2)]
    assert torch.equal(latents[0], latents[1])
    other = make_engine(models_dir, tmp_path / "c3")
    other.latent_settings = LatentSettings(seed=1)
    assert not torch.equal(other.voice_latent("long"), latents[0])


def test_compute_latents_with_progress(models_dir, tmp_path):
    engine = make_engine(models_dir, tmp_path / "latents")
    seen = []
    result = compute_latents("dotrice", lambda done, total, what: seen.append((done, total, what)), engine=engine)
    assert result == {"autoregressive": "computed", "diffusion": "computed"}
    assert seen == [(1, 2, "autoregressive"), (2, 2, "autoregressive"), (1, 2, "diffusion"), (2, 2, "diffusion")]
    assert engine.voice_latent(None, "diffusion").shape == (1, 2 * 32)  # tiny diffusion: 32 channels
    assert compute_latents("dotrice", engine=engine) == {"autoregressive": "cached", "diffusion": "cached"}


def test_compute_latents_without_weights_is_unavailable():
    with pytest.raises(TortoiseUnavailable, match="assistant models fetch tortoise"):
        compute_latents("dotrice")
