"""The service and its durable state: timers restored at start, unreadable state in health."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.service.api import ApiSettings
from assistant.service.app import ServeOptions, Service
from assistant.store import Store, default_path
from assistant.tts.cache import ReplyCache
from assistant.tts.speech import Speech, SpeechSettings

ROOT = Path(__file__).resolve().parents[1]


class Said(logging.Handler):
    """What the service says (without a speaker, replies and announcements are logged)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "assistant.service.app" and record.getMessage().startswith("reply: "):
            self.texts.append(record.getMessage().removeprefix("reply: "))


@pytest.fixture
def said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    handler = Said()
    logger = logging.getLogger("assistant.service.app")
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def start(tmp_path: Path) -> Service:
    speech = Speech(SpeechSettings(engine="espeak", fallback=("espeak",), check_prerendered=False),
                    cache=ReplyCache(root=tmp_path / "replies"))
    options = ServeOptions(commands=ROOT / "commands.yaml", api=ApiSettings(port=0), listen=False, transcribe=False,
                           speak=False)
    service = Service(options, speech=speech)
    service.start()
    return service


def call(service: Service, path: str, payload: dict | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{service.api.port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_timers_outlive_the_service_and_overdue_ones_are_said_at_start(tmp_path: Path, said: Said) -> None:
    service = start(tmp_path)
    try:
        assert service.state.models["asr"] == {"loaded": False}  # --no-transcribe: no Whisper
        reply = call(service, "/v1/intent", {"text": "set a timer for 40 minutes", "run": True})["outcome"]["reply"]
        assert reply == "Timer set for 40 minutes."
    finally:
        service.shutdown()
    # while it was down, another timer came due (written as a previous run would have)
    store = Store(default_path())
    store.add_timer("10 minutes", "Time's up!", 600, time.time() - 185, "TimerSet")
    store.close()

    service = start(tmp_path)
    try:
        timers = call(service, "/v1/timers")["timers"]
        assert [(t["label"], t["intent"]) for t in timers] == [("40 minutes", "TimerSet")]
        assert 2390 <= timers[0]["seconds_left"] <= 2400
        assert said.texts.count("Your 10 minute timer finished 3 minutes ago.") == 1
        health = call(service, "/v1/health")
        assert health["status"] == "ok" and health["state"] == {"path": str(default_path()), "set_aside": []}
    finally:
        service.shutdown()
    service = start(tmp_path)
    try:
        assert said.texts.count("Your 10 minute timer finished 3 minutes ago.") == 1  # once, not at every start
    finally:
        service.shutdown()


def test_an_unreadable_state_file_is_set_aside_and_shown_in_health(tmp_path: Path, said: Said) -> None:
    path = default_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 512)
    service = start(tmp_path)
    try:
        health = call(service, "/v1/health")
        assert health["status"] == "degraded"
        (aside,) = health["state"]["set_aside"]
        assert Path(aside["moved_to"]).read_bytes() == b"\x00garbage" * 512 and aside["key"] is None
        assert "I couldn't read my saved timers, so any timer set before I restarted is lost." in said.texts
        reply = call(service, "/v1/intent", {"text": "what's on my shopping list", "run": True})["outcome"]["reply"]
        assert reply.startswith("I couldn't read your saved shopping list, so I set it aside")
    finally:
        service.shutdown()


def test_no_transcribe_needs_no_mic(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "assistant", "serve", "--no-transcribe"], cwd=ROOT,
                            env={**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--no-transcribe needs --no-mic" in result.stderr
