"""The serve assembly with its real parts: real Whisper tiny.en, the real listen loop, intents,
Dispatcher and handlers, espeak-ng; audio fed like a microphone; health, metrics, reload,
watchdog and faults observed from outside."""

from __future__ import annotations

import http.client
import json
import logging
import queue
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.asr import WhisperSettings
from assistant.audio import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, float_to_pcm16, read_wav
from assistant.service.api import ApiSettings
from assistant.service.app import ServeOptions, Service
from assistant.service.notify import Notifier
from assistant.tts.cache import ReplyCache
from assistant.tts.speech import Speech, SpeechSettings

from service_support import FAULTY_MODULE, tiny_en_checkpoint

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "audio"

pytestmark = pytest.mark.timeout(240)

# Phrases of the committed test speech, wired to handlers that fail in each way a real one can.
COMMANDS = """\
language: en
intents:
  Hang:
    sentences: ["turn on the kitchen lights"]
    handler: {run: ["sleep", "30"], timeout: 1}
    reply: "Lights on."
  Fail:
    sentences: ["what time is it"]
    handler: {run: ["sh", "-c", "echo broken >&2; exit 3"], timeout: 5}
    reply: "It is late."
  Crash:
    sentences: ["add milk to my shopping list"]
    handler: {python: "faulty:crash"}
    reply: "Added."
  Date:
    sentences: ["what's the date today", "what is the date today"]
    reply: "Today is a good day."
"""

ERROR_REPLY = re.compile(r"sorry|wrong|fail|could(n't| not)", re.I)


class FeedSource:
    """Behaves like a microphone: quiet frames at real time when nothing is fed, fed WAVs as
    fast as the loop takes them; `stall()` freezes it (a wedged device or loop), `resume()`
    undoes that, `break_once()` makes frames() raise once (a driver error)."""

    realtime = True

    def __init__(self) -> None:
        self.state = "open"
        self._queue: queue.Queue[bytes] = queue.Queue()
        self._running = threading.Event()
        self._running.set()
        self._raise = False

    def feed(self, *names: str) -> None:
        for name in names:
            samples, rate = read_wav(AUDIO / name)
            assert rate == SAMPLE_RATE
            pcm = float_to_pcm16(np.concatenate([samples, np.zeros(SAMPLE_RATE, np.float32)]))
            for offset in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
                self._queue.put(pcm[offset : offset + FRAME_BYTES])

    def stall(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def break_once(self) -> None:
        self._raise = True

    def frames(self):
        quiet = bytes(FRAME_BYTES)
        while self.state != "closed":
            self._running.wait()
            if self._raise:
                self._raise = False
                raise OSError("input overflowed: device error")
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                time.sleep(FRAME_SAMPLES / SAMPLE_RATE)
                yield quiet

    def close(self) -> None:
        self.state = "closed"
        self._running.set()


class Replies(logging.Handler):
    """Collects what the service would have said (with --no-speak replies are logged)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.texts: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name == "assistant.service.app" and message.startswith("reply: "):
            with self.changed:
                self.texts.append(message.removeprefix("reply: "))
                self.changed.notify_all()

    def wait(self, count: int, timeout: float = 60.0) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.texts) >= count, timeout), f"replies so far: {self.texts}"
            return list(self.texts)


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    from assistant.asr import WhisperASR

    return WhisperASR(WhisperSettings(model=str(tiny_en_checkpoint(tmp_path_factory)), device="cpu"))


@pytest.fixture
def commands_file(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    (tmp_path / "faulty.py").write_text(FAULTY_MODULE)
    path = tmp_path / "commands.yaml"
    path.write_text(COMMANDS)
    return path


@pytest.fixture
def replies():
    handler = Replies()
    logger = logging.getLogger("assistant.service.app")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def make_service(commands_file: Path, asr, source, tmp_path: Path) -> Service:
    speech = Speech(SpeechSettings(engine="espeak", fallback=("espeak",), check_prerendered=False),
                    cache=ReplyCache(root=tmp_path / "replies"))
    options = ServeOptions(commands=commands_file, api=ApiSettings(port=0, max_json_bytes=2048), speak=False,
                           tick_seconds=0.05, reload_interval=0.1, loop_restart_seconds=0.2)
    return Service(options, asr=asr, speech=speech, source=source)


@pytest.fixture
def running(commands_file: Path, asr, tmp_path: Path):
    """A started service whose main loop runs in a thread; yields (service, source)."""
    source = FeedSource()
    service = make_service(commands_file, asr, source, tmp_path)
    service.start()
    thread = threading.Thread(target=service.run, name="service-main", daemon=True)
    thread.start()
    yield service, source
    service.request_stop()
    thread.join(30)
    assert not thread.is_alive()


def api(service: Service, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", service.api.port, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": content_type} if content_type else {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def health(service: Service) -> dict:
    return json.loads(api(service, "GET", "/v1/health")[1])


def metrics(service: Service) -> dict[str, float]:
    from assistant.service.metrics import parse_text

    return parse_text(api(service, "GET", "/metrics")[1].decode())


def test_failing_handlers_get_error_replies_and_the_loop_goes_on(running, replies: Replies) -> None:
    service, source = running
    started = time.monotonic()
    source.feed("turn_on_kitchen_lights.wav", "what_time.wav", "add_milk.wav", "what_date.wav")
    said = replies.wait(4)
    hang, fail, crash, date = said[:4]
    assert all(ERROR_REPLY.search(text) for text in (hang, fail, crash)), said
    assert date == "Today is a good day."
    assert time.monotonic() - started < 25  # the hanging handler was killed at its 1 s timeout, not 30 s
    samples = metrics(service)
    for intent in ("Hang", "Fail", "Crash"):
        assert samples[f'assistant_handler_failures_total{{intent="{intent}"}}'] == 1
    assert samples['assistant_intents_total{intent="Date",source="loop"}'] == 1
    assert samples['assistant_stage_seconds_count{stage="asr"}'] >= 4
    waited = sum(v for k, v in samples.items() if k.startswith("assistant_speech_end_to_action_seconds_count"))
    assert waited == 4  # every command's wait from the end of speech is measured
    assert health(service)["status"] == "ok"


def test_a_broken_reload_keeps_the_loop_on_the_old_intents(running, replies: Replies, commands_file: Path) -> None:
    service, source = running
    commands_file.write_text(COMMANDS.replace('"what is the date today"]', '"what is the {day}"]'))
    deadline = time.monotonic() + 20
    while service.state.reload_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    error = health(service)["commands"]["last_error"]
    assert error and error.startswith(f"{commands_file}:")
    source.feed("what_date.wav")
    assert replies.wait(1)[-1] == "Today is a good day."
    commands_file.write_text(COMMANDS.replace("Today is a good day.", "It is reload day."))
    deadline = time.monotonic() + 20
    while service.state.reload_error is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert health(service)["commands"]["last_error"] is None
    source.feed("what_date.wav")
    assert replies.wait(2)[-1] == "It is reload day."
    samples = metrics(service)
    assert samples['assistant_reloads_total{result="error"}'] == 1
    assert samples['assistant_reloads_total{result="ok"}'] == 1


def test_hostile_requests_do_not_disturb_the_loop(running, replies: Replies) -> None:
    service, source = running
    source.feed("what_date.wav", "what_date.wav")
    statuses = []
    for _ in range(10):
        statuses.append(api(service, "POST", "/v1/intent", b"{not json", "application/json")[0])
        statuses.append(api(service, "POST", "/v1/intent", json.dumps({"text": "x" * 5000}).encode(), "application/json")[0])
        statuses.append(api(service, "POST", "/v1/transcribe", b"\0" * 100, "audio/wav")[0])
        statuses.append(api(service, "POST", "/v1/speak", b"hello", "text/plain")[0])
    assert sorted(set(statuses)) == [400, 413, 415]
    assert replies.wait(2) == ["Today is a good day.", "Today is a good day."]
    assert health(service)["status"] == "ok" and health(service)["listen_loop"]["running"]


def test_a_crashed_loop_is_restarted(running, replies: Replies) -> None:
    service, source = running
    source.break_once()
    deadline = time.monotonic() + 20
    while service.state.loop_restarts == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    state = health(service)
    assert state["listen_loop"]["restarts"] == 1
    assert "device error" in state["last_error"]["message"]
    source.feed("what_date.wav")
    assert replies.wait(1) == ["Today is a good day."]


class FlakyASR:
    """The real Whisper, failing on its first call the way a GPU can (out of memory)."""

    def __init__(self, asr) -> None:
        self.asr = asr
        self.failures = 1

    def transcribe(self, audio, prompt=None, **options):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("CUDA out of memory")
        return self.asr.transcribe(audio, prompt, **options)

    def vocabulary_prompt(self, words):
        return self.asr.vocabulary_prompt(words)


def test_a_failing_stage_is_logged_and_the_loop_goes_on(commands_file: Path, asr, tmp_path: Path, replies: Replies) -> None:
    source = FeedSource()
    service = make_service(commands_file, FlakyASR(asr), source, tmp_path)
    service.start()
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        source.feed("what_date.wav", "what_date.wav")
        assert replies.wait(1) == ["Today is a good day."]  # the first segment failed, the second was answered
        state = health(service)
        assert state["last_error"]["stage"] == "asr" and "out of memory" in state["last_error"]["message"]
        assert metrics(service)['assistant_errors_total{stage="asr"}'] == 1
    finally:
        service.request_stop()
        thread.join(30)


class NotifyListener:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.name = str(path)

    def drain(self, seconds: float) -> list[str]:
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return got


def test_watchdog_pings_stop_when_the_loop_stalls_and_resume_after(commands_file: Path, asr, tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    source = FeedSource()
    speech = Speech(SpeechSettings(engine="espeak", fallback=("espeak",), check_prerendered=False),
                    cache=ReplyCache(root=tmp_path / "replies"))
    options = ServeOptions(commands=commands_file, api=None, speak=False, tick_seconds=0.02, stall_seconds=0.5)
    service = Service(options, asr=asr, speech=speech, source=source, notifier=Notifier(listener.name),
                      watchdog_env={"WATCHDOG_USEC": "200000"})
    service.start()
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        assert any(m.startswith("READY=1") for m in listener.drain(0.3))  # sent by start(), queued on the socket
        assert sum(m == "WATCHDOG=1" for m in listener.drain(1.0)) >= 5  # every 0.1 s
        source.stall()
        time.sleep(0.7)  # past stall_seconds
        listener.drain(0.05)
        assert [m for m in listener.drain(1.0) if m == "WATCHDOG=1"] == []
        assert "taken no audio" in (service.watchdog.failing or "")
        source.resume()
        assert sum(m == "WATCHDOG=1" for m in listener.drain(0.6)) >= 2
    finally:
        service.request_stop()
        thread.join(30)
    assert any(m.startswith("STOPPING=1") for m in listener.drain(0.2))


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
