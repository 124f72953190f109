"""The HTTP API over real parts: the shipped commands.yaml, the real Dispatcher and handlers,
Speech with the real Piper/espeak-ng engines, over real HTTP on a loopback port."""

from __future__ import annotations

import http.client
import io
import json
import struct
import threading
import time
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.asr import WhisperSettings
from assistant.audio import read_wav, resample
from assistant.handlers import Dispatcher
from assistant.intents import load_commands
from assistant.service.api import ApiBackend, ApiConfigError, ApiServer, ApiSettings, build_app, is_loopback
from assistant.service.health import ServiceState
from assistant.service.metrics import ServiceMetrics, parse_text
from assistant.tts.cache import ReplyCache
from assistant.tts.speech import Speech, SpeechSettings
from service_support import tiny_en_checkpoint, write_faulty_commands

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"


class Client:
    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = dict(headers or {})
        if content_type:
            sent["Content-Type"] = content_type
        if self.token and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.token}"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        result = response.status, {k.lower(): v for k, v in response.getheaders()}, data
        conn.close()
        return result

    def json(self, method: str, path: str, payload: Any = None, **kw: Any) -> tuple[int, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        status, _, data = self.request(method, path, body, "application/json" if body is not None else None, **kw)
        return status, json.loads(data)


class Parts:
    def __init__(self, tmp: Path) -> None:
        self.commands = load_commands(ROOT / "commands.yaml")
        self.dispatcher = Dispatcher(self.commands, timer_thread=False)
        self.speech = Speech(SpeechSettings(engine="piper", fallback=("piper", "espeak"), check_prerendered=False),
                             cache=ReplyCache(root=tmp / "replies"))
        self.state = ServiceState()
        self.state.phase = "ready"
        self.metrics = ServiceMetrics(self.state.uptime, lambda: 1.0)
        self.transcribed: list[np.ndarray] = []

    def backend(self, transcribe=None) -> ApiBackend:
        return ApiBackend(commands=lambda: self.commands, dispatcher=self.dispatcher, speech=self.speech,
                          transcribe=transcribe, health=self.state.to_json,
                          voices=lambda: {"engines": ["piper", "espeak"]}, metrics=self.metrics,
                          on_error=self.state.record_error)


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Parts:
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASSISTANT_HOME", str(home))
    built = Parts(home)
    yield built
    built.dispatcher.close()
    mp.undo()


def serve(backend: ApiBackend, settings: ApiSettings):
    server = ApiServer(build_app(backend, settings), settings)
    server.start()
    return server


@pytest.fixture(scope="module")
def api(parts: Parts):
    server = serve(parts.backend(), ApiSettings(port=0, max_json_bytes=4096, max_text_chars=300))
    yield Client(server.port)
    server.stop()


@pytest.fixture(scope="module")
def secured(parts: Parts):
    server = serve(parts.backend(), ApiSettings(port=0, token=TOKEN))
    yield server
    server.stop()


# -- intents ---------------------------------------------------------------------------------

def test_intent_matches_with_slots(api: Client) -> None:
    status, body = api.json("POST", "/v1/intent", {"text": "turn on the kitchen lights"})
    assert status == 200
    assert body == {"text": "turn on the kitchen lights", "intent": "Lights",
                    "slots": {"state": "on", "room": "kitchen"}, "exact": True}


def test_intent_run_executes_the_handler_and_returns_the_reply(api: Client) -> None:
    status, body = api.json("POST", "/v1/intent", {"text": "add milk to my shopping list", "run": True})
    assert status == 200 and body["intent"] == "ShoppingListAdd"
    assert body["outcome"] == {"ok": True, "reply": "Added milk to your shopping list.", "error": None}


def test_a_risky_intent_needs_confirmation_and_runs_only_when_confirmed(api: Client) -> None:
    def shopping() -> Any:
        return api.json("POST", "/v1/intent", {"text": "what's on my shopping list", "run": True})[1]["outcome"]["reply"]

    api.json("POST", "/v1/intent", {"text": "add eggs to my shopping list", "run": True})
    assert "eggs" in shopping()
    for extra in ({}, {"confirmed": False}):
        status, body = api.json("POST", "/v1/intent", {"text": "clear my shopping list", "run": True, **extra})
        assert status == 200 and body["intent"] == "ShoppingListClear"
        assert body["needs_confirmation"] == {"question": "Clear your whole shopping list?"}
        assert "outcome" not in body
        assert "eggs" in shopping()  # not run
    status, body = api.json("POST", "/v1/intent", {"text": "clear my shopping list", "run": True, "confirmed": True})
    assert status == 200 and body["outcome"]["ok"] is True and "needs_confirmation" not in body
    assert "eggs" not in shopping()
    # matching alone never asks; an intent without confirm: runs without being confirmed
    status, body = api.json("POST", "/v1/intent", {"text": "open the garage door"})
    assert body["intent"] == "GarageDoor" and "needs_confirmation" not in body and "outcome" not in body
    status, body = api.json("POST", "/v1/intent", {"text": "shut the garage", "run": True})
    assert body["needs_confirmation"] == {"question": "Should I close the garage door?"}
    assert api.json("POST", "/v1/intent", {"text": "stop", "run": True, "confirmed": "yes"})[0] == 422


def test_intent_no_match(api: Client) -> None:
    status, body = api.json("POST", "/v1/intent", {"text": "the weather in paris tomorrow"})
    assert status == 200 and body["intent"] is None


def test_intent_bad_fields(api: Client) -> None:
    assert api.json("POST", "/v1/intent", {"text": ""})[0] == 422
    assert api.json("POST", "/v1/intent", {"text": 5})[0] == 422
    assert api.json("POST", "/v1/intent", {"text": "stop", "run": "yes"})[0] == 422
    status, body = api.json("POST", "/v1/intent", ["not", "an", "object"])
    assert status == 400 and body["error"]["code"] == "bad_request"


# -- bad requests ------------------------------------------------------------------------------

def test_malformed_json_is_a_clear_400(api: Client) -> None:
    status, _, data = api.request("POST", "/v1/intent", b'{"text": "stop"', "application/json")
    body = json.loads(data)
    assert status == 400 and "malformed JSON" in body["error"]["message"]


def test_wrong_content_type_is_415(api: Client) -> None:
    status, _, data = api.request("POST", "/v1/intent", b"text=stop", "application/x-www-form-urlencoded")
    assert status == 415 and "application/json" in json.loads(data)["error"]["message"]
    # /v1/transcribe's 415 is checked with an ASR loaded (test_transcribe_rejects_bad_audio); here
    # there is none, and that is said first, whatever the body
    status, _, data = api.request("POST", "/v1/transcribe", b"RIFF", "text/plain")
    assert status == 503 and json.loads(data)["error"]["code"] == "unavailable"


def test_oversize_body_and_text_are_413(api: Client) -> None:
    status, _, data = api.request("POST", "/v1/intent", json.dumps({"text": "x" * 5000}).encode(), "application/json")
    assert status == 413 and json.loads(data)["error"]["code"] == "payload_too_large"
    status, body = api.json("POST", "/v1/intent", {"text": "turn on " * 60})
    assert status == 413 and "cap is 300" in body["error"]["message"]


def test_oversize_chunked_body_without_length_is_cut_off(api: Client) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    chunks = iter([b'{"text": "' + b"a" * 3000, b"b" * 3000 + b'"}'])
    conn.request("POST", "/v1/intent", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413
    conn.close()


def test_unknown_path_and_method_are_json_errors(api: Client) -> None:
    status, _, data = api.request("GET", "/v1/nothing")
    assert status == 404 and json.loads(data)["error"]["code"] == "not_found"
    status, _, data = api.request("GET", "/v1/intent")
    assert status == 405 and json.loads(data)["error"]["status"] == 405


def test_transcribe_without_asr_is_503(api: Client) -> None:
    status, _, data = api.request("POST", "/v1/transcribe", wav_bytes(np.zeros(16000, np.float32), 16000), "audio/wav")
    assert status == 503


# -- speak -------------------------------------------------------------------------------------

def read_wav_response(data: bytes) -> tuple[np.ndarray, int]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    rate = struct.unpack_from("<I", data, 24)[0]
    pcm = data[44:]
    return np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2"), rate


def test_speak_one_sentence_is_a_complete_wav(api: Client) -> None:
    status, headers, data = api.request("POST", "/v1/speak", json.dumps({"text": "Hello there."}).encode(), "application/json")
    assert status == 200 and headers["content-type"] == "audio/wav"
    assert "content-length" in headers
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnchannels() == 1 and wav.getframerate() == int(headers["x-sample-rate"])
        assert wav.getnframes() > 0.3 * wav.getframerate()


def test_speak_streams_chunks_when_the_engine_streams(api: Client) -> None:
    text = "The kitchen lights are on. The bedroom lights are off. Your timer has two minutes left."
    status, headers, data = api.request("POST", "/v1/speak", json.dumps({"text": text, "engine": "piper"}).encode(), "application/json")
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked" and "content-length" not in headers
    samples, rate = read_wav_response(data)
    assert struct.unpack_from("<I", data, 40)[0] == 0xFFFFFFFF  # length unknown when streaming started
    assert rate == int(headers["x-sample-rate"]) and len(samples) > 3 * rate


def test_speak_errors(api: Client) -> None:
    assert api.json("POST", "/v1/speak", {"text": "hi", "engine": "nope"})[0] == 400
    assert api.json("POST", "/v1/speak", {"text": "hi", "voice": 3})[0] == 422
    assert api.json("POST", "/v1/speak", {"text": "   "})[0] == 422


# -- voices, health, metrics, openapi ------------------------------------------------------------

def test_voices_health_and_openapi(api: Client) -> None:
    assert api.json("GET", "/v1/voices") == (200, {"engines": ["piper", "espeak"]})
    status, health = api.json("GET", "/v1/health")
    assert status == 200 and health["status"] == "ok" and health["uptime_seconds"] >= 0
    assert set(health) >= {"models", "microphone", "last_error", "listen_loop", "commands"}
    status, doc = api.json("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/v1/transcribe", "/v1/speak", "/v1/intent", "/v1/voices", "/v1/timers", "/v1/health", "/metrics"}
    timer = doc["components"]["schemas"]["Timers"]["properties"]["timers"]["items"]
    assert set(timer["required"]) == {"id", "label", "due", "seconds_left"}
    assert doc["components"]["schemas"]["IntentRequest"]["properties"]["text"]["maxLength"] == 300
    assert doc["components"]["schemas"]["IntentRequest"]["properties"]["confirmed"]["type"] == "boolean"
    assert "question" in doc["components"]["schemas"]["IntentResult"]["properties"]["needs_confirmation"]["properties"]
    assert "confirmed=true" in doc["paths"]["/v1/intent"]["post"]["description"]


def test_timers_lists_pending_timers_soonest_first(api: Client) -> None:
    assert api.json("GET", "/v1/timers") == (200, {"timers": []})
    before = time.time()
    api.json("POST", "/v1/intent", {"text": "set a timer for 40 minutes", "run": True})
    api.json("POST", "/v1/intent", {"text": "set a timer for 5 minutes", "run": True})
    status, body = api.json("GET", "/v1/timers")
    try:
        assert status == 200
        assert [(t["label"], t["intent"], t["seconds"]) for t in body["timers"]] == [
            ("5 minutes", "TimerSet", 300), ("40 minutes", "TimerSet", 2400)]
        first = body["timers"][0]
        assert 295 <= first["seconds_left"] <= 300
        due = datetime.fromisoformat(first["due"]).timestamp()
        assert before + 299 <= due <= time.time() + 301 and first["due"].endswith("+00:00")
    finally:
        api.json("POST", "/v1/intent", {"text": "cancel all timers", "run": True})
    assert api.json("GET", "/v1/timers") == (200, {"timers": []})


def test_metrics_count_what_happened(api: Client) -> None:
    api.json("POST", "/v1/intent", {"text": "what time is it", "run": True})
    api.json("POST", "/v1/intent", {"text": "bake me a cake"})
    status, headers, data = api.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse_text(data.decode())
    assert samples['assistant_intents_total{intent="GetTime",source="api"}'] >= 1
    assert samples['assistant_no_match_total{source="api"}'] >= 1
    assert samples['assistant_stage_seconds_count{stage="match"}'] >= 2
    assert samples['assistant_stage_seconds_bucket{stage="handler",le="+Inf"}'] >= 1
    assert samples['assistant_api_requests_total{endpoint="/v1/intent",status="200"}'] >= 2


@pytest.fixture(scope="module")
def faulty(parts: Parts, tmp_path_factory):
    """An API over a commands file whose handlers exit non-zero, hang and raise."""
    commands = load_commands(write_faulty_commands(tmp_path_factory.mktemp("faulty")))
    dispatcher = Dispatcher(commands, timer_thread=False)
    backend = parts.backend()
    backend.commands, backend.dispatcher = (lambda: commands), dispatcher
    server = serve(backend, ApiSettings(port=0))
    yield Client(server.port)
    server.stop()
    dispatcher.close()


@pytest.mark.parametrize("text, intent", [("fail now", "Fail"), ("hang now", "Hang"), ("crash now", "Crash")])
def test_failing_handlers_give_an_error_reply_and_are_counted(faulty: Client, text: str, intent: str) -> None:
    """Non-zero exit, a hang killed at its 1 s timeout, an exception: each an error reply."""
    status, body = faulty.json("POST", "/v1/intent", {"text": text, "run": True})
    assert status == 200 and body["intent"] == intent
    outcome = body["outcome"]
    assert outcome["ok"] is False and outcome["reply"] and outcome["reply"] != "Done."
    assert outcome["error"]
    samples = parse_text(faulty.request("GET", "/metrics")[2].decode())
    assert samples[f'assistant_handler_failures_total{{intent="{intent}"}}'] >= 1
    status, body = faulty.json("POST", "/v1/intent", {"text": "hello there", "run": True})
    assert body["outcome"] == {"ok": True, "reply": "Hi.", "error": None}


# -- transcribe (real Whisper tiny.en) ----------------------------------------------------------

AUDIO = ROOT / "tests" / "audio"


@pytest.fixture(scope="module")
def tiny_asr(tmp_path_factory):
    from assistant.asr import WhisperASR

    return WhisperASR(WhisperSettings(model=str(tiny_en_checkpoint(tmp_path_factory)), device="cpu"))


@pytest.fixture(scope="module")
def asr_api(parts: Parts, tiny_asr):
    server = serve(parts.backend(tiny_asr.transcribe), ApiSettings(port=0, max_audio_seconds=10, max_audio_bytes=1_000_000))
    yield Client(server.port)
    server.stop()


@pytest.fixture(scope="module", params=["guided", "free"])
def command_api(request, parts: Parts, tiny_asr):
    """/v1/transcribe with a recognizer (the service's, guided or free) behind ?commands=true."""
    from assistant.asr.recognizer import Recognizer, RecognizerSettings

    recognizer = Recognizer(tiny_asr, parts.commands, RecognizerSettings(recognition=request.param))
    backend = parts.backend(tiny_asr.transcribe)
    backend.recognize = recognizer.recognize
    server = serve(backend, ApiSettings(port=0, max_audio_seconds=10, max_audio_bytes=1_000_000))
    yield request.param, Client(server.port)
    server.stop()


def test_transcribe_a_spoken_command(asr_api: Client) -> None:
    status, _, data = asr_api.request("POST", "/v1/transcribe", (AUDIO / "what_time.wav").read_bytes(), "audio/wav")
    body = json.loads(data)
    assert status == 200, body
    assert body["text"].lower().strip(" ?.") == "what time is it"
    seconds = json.loads((AUDIO / "manifest.json").read_text())["files"]["what_time.wav"]["seconds"]
    assert body["segments"] and body["audio_seconds"] == pytest.approx(seconds, abs=0.01)


def test_transcribe_resamples_other_rates_and_channels(asr_api: Client) -> None:
    samples, rate = read_wav(AUDIO / "set_timer_five_minutes.wav")
    stereo_44k = resample(samples, rate, 44100)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(44100)
        pcm = (np.clip(stereo_44k, -1, 1) * 32767).astype("<i2")
        wav.writeframes(np.repeat(pcm, 2).tobytes())
    status, _, data = asr_api.request("POST", "/v1/transcribe", buffer.getvalue(), "audio/x-wav")
    assert status == 200
    assert json.loads(data)["text"].lower().strip(".") == "set a timer for 5 minutes"


def test_plain_transcription_says_it_was_one_free_pass(asr_api: Client) -> None:
    status, _, data = asr_api.request("POST", "/v1/transcribe", (AUDIO / "stop.wav").read_bytes(), "audio/wav")
    body = json.loads(data)
    assert status == 200 and body["path"] == "full" and body["confidence"] is None


def test_transcribe_commands_says_which_path_decided_and_the_command(command_api) -> None:
    """?commands=true recognises as the listen loop does: the path (guided with its confidence,
    or the free passes), the command it names (not run: the dispatcher is untouched)."""
    mode, client = command_api
    status, _, data = client.request("POST", "/v1/transcribe?commands=true",
                                     (AUDIO / "turn_on_kitchen_lights.wav").read_bytes(), "audio/wav")
    body = json.loads(data)
    assert status == 200, body
    assert body["intent"] == "Lights" and body["slots"] == {"state": "on", "room": "kitchen"}
    if mode == "guided":
        assert body["path"] == "guided" and 0 < body["confidence"] <= 1
    else:
        assert body["path"] in ("short", "full") and body["confidence"] is None
    assert body["passes"] >= 1 and body["duration_ms"] > 0 and "segments" not in body
    status, _, data = client.request("POST", "/v1/transcribe?commands=1", wav_bytes(np.zeros(16000, np.float32), 16000), "audio/wav")
    body = json.loads(data)
    assert status == 200 and body["intent"] is None and body["slots"] == {}  # silence is no command
    status, _, data = client.request("POST", "/v1/transcribe?commands=maybe", (AUDIO / "stop.wav").read_bytes(), "audio/wav")
    assert status == 400 and "`commands` must be true or false" in json.loads(data)["error"]["message"]


def test_transcribe_commands_without_a_recognizer_is_unavailable(asr_api: Client) -> None:
    status, _, data = asr_api.request("POST", "/v1/transcribe?commands=true", (AUDIO / "stop.wav").read_bytes(), "audio/wav")
    assert status == 503 and "no command recognizer" in json.loads(data)["error"]["message"]


def test_transcribe_rejects_bad_audio(asr_api: Client) -> None:
    status, _, data = asr_api.request("POST", "/v1/transcribe", b"RIFF\x00\x00\x00\x00WAVEjunk", "audio/wav")
    assert status == 400 and "request body" in json.loads(data)["error"]["message"]
    status, _, data = asr_api.request("POST", "/v1/transcribe", wav_bytes(np.zeros(16000 * 12, np.float32), 16000), "audio/wav")
    assert status == 413 and "cap is 10 s" in json.loads(data)["error"]["message"]
    status, _, _ = asr_api.request("POST", "/v1/transcribe", wav_bytes(np.zeros(16000 * 40, np.float32), 16000), "audio/wav")
    assert status == 413  # over max_audio_bytes
    status, _, _ = asr_api.request("POST", "/v1/transcribe", (AUDIO / "stop.wav").read_bytes(), "application/json")
    assert status == 415


# -- the token ---------------------------------------------------------------------------------

def test_token_required_when_set(secured: ApiServer) -> None:
    anonymous = Client(secured.port)
    status, headers, data = anonymous.request("GET", "/v1/health")
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert json.loads(data)["error"]["code"] == "unauthorized"
    wrong = Client(secured.port, "not-it")
    assert wrong.request("POST", "/v1/intent", b'{"text": "stop"}', "application/json")[0] == 401
    assert Client(secured.port, TOKEN).json("GET", "/v1/health")[0] == 200


def test_public_address_without_token_is_refused() -> None:
    with pytest.raises(ApiConfigError, match="without a bearer token"):
        ApiSettings(host="0.0.0.0").check()
    ApiSettings(host="0.0.0.0", token="t").check()
    ApiSettings(host="::1").check()
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and not is_loopback("192.168.1.4")
    assert not is_loopback("myhost.example")


def test_concurrent_bad_requests_do_not_disturb_good_ones(api: Client) -> None:
    results: list[int] = []

    def hammer() -> None:
        for _ in range(10):
            results.append(api.request("POST", "/v1/intent", b"{bad", "application/json")[0])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    good = [api.json("POST", "/v1/intent", {"text": "what time is it"}) for _ in range(5)]
    for thread in threads:
        thread.join()
    assert set(results) == {400}
    assert all(status == 200 and body["intent"] == "GetTime" for status, body in good)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()
