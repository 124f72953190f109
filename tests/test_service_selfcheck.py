"""The self-check in `serve`, on by default: the service's resident Whisper (real tiny.en)
transcribes each pre-rendered reply at background priority; a misspoken take is rendered again,
a reply that never comes out right is listed in /v1/health with its WER, and a restart does not
transcribe the takes that passed again."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest

from assistant.asr import WhisperSettings
from assistant.audio.clip import Audio
from assistant.scheduler import SCHEDULER, Priority, Wait
from assistant.service.api import ApiSettings
from assistant.service.app import ServeOptions, Service
from assistant.tts.cache import ReplyCache
from assistant.tts.piper import PiperEngine
from assistant.tts.speech import Speech, SpeechSettings

from service_support import tiny_en_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

COMMANDS = """\
language: en
intents:
  Lights:
    sentences: ["turn on the kitchen lights"]
    reply: "The kitchen light is on."
  Timer:
    sentences: ["set a timer"]
    reply: "Your timer is running."
  Garbled:
    sentences: ["what is the weather"]
    reply: "It is sunny outside today."
"""


class Settings:
    seed = 0


class Slipping:
    """Piper that misspeaks like Tortoise can: its first take of every reply says something else,
    later takes (new seeds) say the text, except for the weather, which it always gets wrong."""

    name = "piper"

    def __init__(self, piper: PiperEngine) -> None:
        self.piper = piper
        self.settings = Settings()
        self.takes: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def synthesize(self, text: str, voice: str | None = None, seed: int = 0) -> Audio:
        with self._lock:
            self.takes.append((text, seed))
        if seed == 0 or "sunny" in text:
            return self.piper.synthesize("Bananas and pancakes for breakfast.")
        return self.piper.synthesize(text)

    def stream(self, text: str, voice: str | None = None):
        yield self.synthesize(text, voice)


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    from assistant.asr import WhisperASR

    return WhisperASR(WhisperSettings(model=str(tiny_en_checkpoint(tmp_path_factory)), device="cpu"))


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    return PiperEngine(noise_scale=0.0, noise_w_scale=0.0)  # the same take every run: no flaky mishearing


def start_service(tmp_path: Path, asr, engine: Slipping) -> Service:
    commands = tmp_path / "commands.yaml"
    commands.write_text(COMMANDS)
    speech = Speech(SpeechSettings(engine="piper", fallback=("piper",)), factories={"piper": lambda: engine},
                    cache=ReplyCache(root=tmp_path / "replies"))
    options = ServeOptions(commands=commands, api=ApiSettings(port=0), listen=False, speak=False,
                           warm_text="Hello.", tick_seconds=0.05)
    service = Service(options, asr=asr, speech=speech)
    service.start()
    return service


def get(service: Service, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", service.api.port, timeout=30)
    conn.request("GET", path)
    data = conn.getresponse().read()
    conn.close()
    return data


def test_serve_self_checks_prerendered_replies_and_renders_a_bad_take_again(tmp_path, monkeypatch, asr, piper) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    grants: list[Wait] = []
    remove = SCHEDULER.add_observer(grants.append)
    engine = Slipping(piper)
    service = start_service(tmp_path, asr, engine)
    try:
        assert service.speech.wait_prerendered(180)
        health = json.loads(get(service, "/v1/health"))
        replies = health["replies"]
        metrics = get(service, "/metrics").decode()
    finally:
        service.shutdown()
        remove()
    assert replies["prerendered"] == 3 and replies["checked"] == 3
    assert health["models"]["tts"]["live_engine"] == "piper" and health["models"]["tts"]["rtf"]["piper"] < 0.7
    assert [(f["text"], f["engine"]) for f in replies["failed"]] == [("It is sunny outside today.", "piper")]
    assert replies["failed"][0]["wer"] > 0.25
    replies_said = ("The kitchen light is on.", "Your timer is running.", "It is sunny outside today.")
    takes = [take for take in engine.takes if take[0] in replies_said]
    for text in ("The kitchen light is on.", "Your timer is running."):
        assert [seed for said, seed in takes if said == text] == [0, 1]  # the bad take, then a good one
    assert [seed for said, seed in takes if said == "It is sunny outside today."] == [0, 1, 2]  # 3 tries
    # the transcriptions ran as background work, and /metrics shows them
    assert any(g.work == "asr" and g.priority == Priority.BACKGROUND for g in grants)
    assert 'assistant_model_wait_seconds_count{work="asr",priority="background"' in metrics

    # a restart over the same cache: the takes that passed are neither rendered nor heard again
    heard: list[int] = []
    original = asr.transcribe
    monkeypatch.setattr(asr, "transcribe", lambda samples, *a, **k: heard.append(len(samples)) or original(samples, *a, **k))
    engine.takes.clear()
    again = start_service(tmp_path, asr, engine)
    try:
        assert again.speech.wait_prerendered(180)
        replies = again.health()["replies"]
    finally:
        again.shutdown()
    assert replies["checked"] == 3 and [f["text"] for f in replies["failed"]] == ["It is sunny outside today."]
    assert {text for text, _ in engine.takes if text in replies_said} == {"It is sunny outside today."}
    assert len(heard) == 3  # only the reply that never passed: its cached take, then two new ones
