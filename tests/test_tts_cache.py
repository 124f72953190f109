"""Reply cache: hit/miss, least-recently-used eviction under the byte cap, corrupt entries."""

import logging

import numpy as np
import pytest

from assistant.audio.clip import Audio
from assistant.tts.cache import CacheKey, ReplyCache, default_cache_root


def tone(seconds: float, rate: int = 16000) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


def key(text: str, **kw) -> CacheKey:
    return CacheKey(kw.get("engine", "piper"), kw.get("voice"), text, kw.get("settings", ""))


def test_default_root_is_under_the_cache_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / "cache" / "replies"


def test_miss_then_hit_returns_the_same_audio(tmp_path) -> None:
    cache = ReplyCache(tmp_path)
    audio = tone(0.5)
    assert cache.get(key("hello")) is None
    cache.put(key("hello"), audio)
    hit = cache.get(key("hello"))
    assert hit is not None and hit.sample_rate == 16000
    np.testing.assert_allclose(hit.samples, audio.samples, atol=0.5 / 32768 + 1e-9)
    assert not list(tmp_path.glob(".tmp-*")), "temporary files must be renamed into place"


def test_every_part_of_the_key_matters(tmp_path) -> None:
    cache = ReplyCache(tmp_path)
    cache.put(key("hello"), tone(0.1))
    assert cache.get(key("hello", engine="espeak")) is None
    assert cache.get(key("hello", voice="emma")) is None
    assert cache.get(key("hello", settings="seed=1")) is None
    assert cache.get(key("Hello")) is None
    assert cache.get(key("hello")) is not None


def test_size_cap_evicts_the_least_recently_used(tmp_path) -> None:
    entry_bytes = len(tone(0.5).to_wav_bytes())
    cache = ReplyCache(tmp_path, max_bytes=3 * entry_bytes)
    for name in ("a", "b", "c"):
        cache.put(key(name), tone(0.5))
    assert cache.get(key("a")) is not None  # "a" is now more recent than "b"
    cache.put(key("d"), tone(0.5))
    assert key("b") not in cache
    assert all(key(name) in cache for name in ("a", "c", "d"))
    assert cache.size_bytes() <= 3 * entry_bytes


def test_an_entry_larger_than_the_cap_is_not_stored(tmp_path) -> None:
    cache = ReplyCache(tmp_path, max_bytes=1000)
    cache.put(key("long"), tone(1.0))
    assert key("long") not in cache


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_entry_is_a_logged_miss_and_removed(tmp_path, caplog, damage) -> None:
    cache = ReplyCache(tmp_path)
    cache.put(key("hello"), tone(0.5))
    (path,) = tmp_path.glob("*.wav")
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a wav at all" * 10, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with caplog.at_level(logging.WARNING, logger="assistant.tts.cache"):
        assert cache.get(key("hello")) is None
    assert "corrupt" in caplog.text
    assert not path.exists()
    cache.put(key("hello"), tone(0.5))
    assert cache.get(key("hello")) is not None


def test_invalid_cap_is_rejected(tmp_path) -> None:
    with pytest.raises(ValueError):
        ReplyCache(tmp_path, max_bytes=0)


def test_an_unwritable_cache_is_logged_and_not_fatal(tmp_path, caplog) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = ReplyCache(blocker / "replies")
    with caplog.at_level(logging.WARNING, logger="assistant.tts.cache"):
        cache.put(key("hello"), tone(0.1))
        assert cache.get(key("hello")) is None
    assert "cannot store 'hello'" in caplog.text
