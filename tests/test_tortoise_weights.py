"""`assistant models fetch tortoise`: explicit download, clear failure without a hub."""

from __future__ import annotations

import time

import pytest

from assistant.tts.tortoise import TortoiseUnavailable
from assistant.tts.tortoise.config import WEIGHT_FILES
from assistant.tts.weights import TortoiseFetchError, fetch_tortoise


def test_unreachable_hub_fails_fast_and_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(TortoiseFetchError, match=r"not reachable.*copy autoregressive\.pth.*by hand") as raised:
        fetch_tortoise(target=tmp_path / "models", endpoint="http://127.0.0.1:9")
    assert time.monotonic() - start < 5  # no minute of silent retries
    assert isinstance(raised.value, TortoiseUnavailable)
    assert list((tmp_path / "models").iterdir()) == []  # nothing half-written


def test_offline_mode_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TortoiseFetchError, match="HF_HUB_OFFLINE"):
        fetch_tortoise(target=tmp_path)


def test_default_target_is_models_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))
    target = tmp_path / "data" / "models" / "tortoise"
    target.mkdir(parents=True)
    for name in WEIGHT_FILES.values():
        (target / name).write_bytes(b"present")
    assert fetch_tortoise() == target  # complete: nothing to download, no network touched
    assert "already present" in capsys.readouterr().out
