"""`assistant models fetch tortoise`: explicit download, clear failure without a hub."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
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


class FakeHub:
    """A local HTTP server answering like the Hugging Face hub for the five weight files."""

    def __init__(self, corrupt: str | None = None) -> None:
        self.files = {name: os.urandom(2000 + i) for i, name in enumerate(WEIGHT_FILES.values())}
        self.corrupt = corrupt
        self.requests: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _headers(self) -> bytes | None:
                hub.requests.append(f"{self.command} {self.path}")
                name = self.path.rsplit("/", 1)[-1]
                if name not in hub.files:
                    self.send_response(404)
                    self.end_headers()
                    return None
                data = hub.files[name]
                served = data[:-1] + bytes([data[-1] ^ 1]) if name == hub.corrupt else data
                self.send_response(200)
                self.send_header("X-Repo-Commit", "a" * 40)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(served)))
                self.end_headers()
                return served

            def do_HEAD(self) -> None:
                self._headers()

            def do_GET(self) -> None:
                served = self._headers()
                if served is not None:
                    self.wfile.write(served)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_download_from_a_reachable_hub(tmp_path, online, capsys):
    hub = FakeHub()
    try:
        target = fetch_tortoise(target=tmp_path / "models", endpoint=hub.endpoint)
        assert {p.name: p.read_bytes() for p in target.iterdir()} == hub.files  # no staging leftovers
        out = capsys.readouterr().out
        assert "[1/5] autoregressive.pth" in out and "[5/5] vocoder.pth" in out and "verified" in out
        hub.requests.clear()
        fetch_tortoise(target=target, endpoint=hub.endpoint)
        assert hub.requests == []  # complete and not forced: no network
        (target / "clvp2.pth").unlink()
        fetch_tortoise(target=target, endpoint=hub.endpoint)
        assert {r.rsplit("/", 1)[-1] for r in hub.requests} == {"clvp2.pth"}  # only the missing file
        hub.requests.clear()
        fetch_tortoise(force=True, target=target, endpoint=hub.endpoint)
        assert len({r.rsplit("/", 1)[-1] for r in hub.requests}) == 5
    finally:
        hub.close()


def test_corrupted_download_is_rejected(tmp_path, online):
    hub = FakeHub(corrupt="hifidecoder.pth")
    try:
        with pytest.raises(TortoiseFetchError, match="hifidecoder.pth: sha256 .* does not match"):
            fetch_tortoise(target=tmp_path, endpoint=hub.endpoint)
    finally:
        hub.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["autoregressive.pth"]  # the bad file never lands
