"""`assistant serve` as systemd runs it: a real process, a real notify socket, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from service_support import tiny_en_checkpoint

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(180)

V1 = 'language: en\nintents:\n  Hello:\n    sentences: [hello there]\n    reply: "Hi."\n'
V2 = V1 + '  Bye:\n    sentences: [goodbye now]\n    reply: "Bye."\n'


class Manager:
    """The listening end of NOTIFY_SOCKET, collecting what the service tells systemd."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 60.0, after: int = 0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages[after:]:
                if key in message and (value is None or message[key] == value):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {key}={value} within {timeout} s; got {self.messages}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def close(self) -> None:
        self.sock.close()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_serve_notifies_ready_pings_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path, tmp_path_factory) -> None:
    checkpoint = tiny_en_checkpoint(tmp_path_factory)
    commands = tmp_path / "commands.yaml"
    commands.write_text(V1)
    manager = Manager(tmp_path / "notify.sock")
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path / "home"), "NOTIFY_SOCKET": str(manager.path),
           "WATCHDOG_USEC": "400000", "PYTHONUNBUFFERED": "1"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--commands", str(commands), "--no-mic", "--port", "0",
         "--model", str(checkpoint), "--device", "cpu", "--engine", "espeak", "--reload-interval", "0.2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = manager.wait_for("READY", "1", timeout=120)
        statuses = [m["STATUS"] for m in manager.messages if "STATUS" in m]
        assert statuses[:3] == ["loading commands", f"loading Whisper {checkpoint}", "warming up the voice"]
        url = re.search(r"API (http://\S+)", ready["STATUS"]).group(1)
        health = get_json(url + "/v1/health")
        assert health["status"] == "ok" and health["models"]["asr"]["loaded"] and health["models"]["tts"]["loaded"]
        voices = get_json(url + "/v1/voices")
        assert voices["default_engine"] == "espeak" and voices["engines"]["espeak"]["available"]
        assert "dotrice" in voices["engines"]["tortoise"]["voices"]  # shipped in voices/

        seen = len(manager.messages)
        manager.wait_for("WATCHDOG", "1", timeout=5, after=seen)  # pings at half of WATCHDOG_USEC
        manager.wait_for("WATCHDOG", "1", timeout=5, after=len(manager.messages))

        commands.write_text(V2)  # SIGHUP reloads at once (systemctl reload)
        seen = len(manager.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = manager.wait_for("RELOADING", "1", timeout=30, after=seen)
        assert int(reloading["MONOTONIC_USEC"]) > 0
        manager.wait_for("READY", "1", timeout=30, after=seen)
        assert post_json(url + "/v1/intent", {"text": "goodbye now", "run": True})["outcome"]["reply"] == "Bye."

        commands.write_text(V2.replace("{", "").replace("goodbye now", "open the {door}"))  # broken: unknown list
        deadline = time.monotonic() + 30
        while get_json(url + "/v1/health")["commands"]["last_error"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        health = get_json(url + "/v1/health")
        assert re.match(rf"{re.escape(str(commands))}:\d+:\d+: ", health["commands"]["last_error"])
        assert post_json(url + "/v1/intent", {"text": "goodbye now"})["intent"] == "Bye"  # old intents still work

        seen = len(manager.messages)
        proc.send_signal(signal.SIGTERM)
        manager.wait_for("STOPPING", "1", timeout=30, after=seen)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=10)
        manager.close()
    assert "Traceback" not in stderr, stderr
    assert "reload (file changed) rejected" in stderr


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")}
    env.pop("ASSISTANT_API_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "assistant", "serve", "--no-mic", "--host", "0.0.0.0"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "without a bearer token" in result.stderr


def test_serve_with_a_broken_commands_file_exits_2_with_the_position(tmp_path: Path) -> None:
    bad = tmp_path / "commands.yaml"
    bad.write_text('language: en\nintents:\n  X:\n    sentences: ["open the {door}"]\n')
    result = subprocess.run([sys.executable, "-m", "assistant", "serve", "--no-mic", "--commands", str(bad)],
                            cwd=ROOT, env={**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"{bad}:4:" in result.stderr


def test_serve_a_recording_without_api_answers_its_commands_and_exits(tmp_path: Path, tmp_path_factory) -> None:
    """`serve --input FILE --no-api`: the shipped commands.yaml, the long mixed recording, then exit 0."""
    checkpoint = tiny_en_checkpoint(tmp_path_factory)
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "serve", "--input", str(ROOT / "tests" / "audio" / "long_mixed.wav"),
         "--no-api", "--no-speak", "--model", str(checkpoint), "--device", "cpu", "--engine", "espeak",
         "--commands", str(ROOT / "commands.yaml")],
        cwd=ROOT, env={**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")},
        capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-2000:]
    replies = re.findall(r"reply: (.*)", result.stderr)
    assert "Turning on the kitchen lights." in replies
    assert "Turning off the bedroom lights." in replies and "Timer set for 5 minutes." in replies
    assert "Traceback" not in result.stderr


def test_microphone_gone_and_back_shows_in_health(tmp_path: Path, tmp_path_factory) -> None:
    """A real PulseAudio (virtual devices) as the microphone; the sound server goes away and
    comes back while `serve` runs: health says so, and commands are heard again after."""
    sys.path.insert(0, str(ROOT / "tests" / "audio"))
    from virtual_pulse import PulseUnavailable, VirtualPulse

    checkpoint = tiny_en_checkpoint(tmp_path_factory)
    try:
        pulse = VirtualPulse(tmp_path / "pulse")
        pulse.start()
    except PulseUnavailable as exc:
        pytest.skip(f"PulseAudio unavailable: {exc}")
    manager = Manager(tmp_path / "notify.sock")
    env = {**pulse.env, "ASSISTANT_HOME": str(tmp_path / "home"), "NOTIFY_SOCKET": str(manager.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--mic", "pulse", "--no-speak", "--port", "0",
         "--model", str(checkpoint), "--device", "cpu", "--engine", "espeak",
         "--commands", str(ROOT / "commands.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready = manager.wait_for("READY", "1", timeout=120)
        url = re.search(r"API (http://\S+)", ready["STATUS"]).group(1)

        def state() -> dict:
            return get_json(url + "/v1/health")

        assert wait(lambda: state()["microphone"] == {"source": "microphone", "state": "open"}, 20)
        pulse.stop()  # the sound server, and with it the microphone, is gone
        assert wait(lambda: state()["microphone"]["state"] == "reopening", 20)
        assert state()["status"] == "degraded" and state()["listen_loop"]["running"]
        pulse.start()
        assert wait(lambda: state()["microphone"]["state"] == "open", 30)
        assert state()["status"] == "ok"
        time.sleep(0.5)
        pulse.play(ROOT / "tests" / "audio" / "what_time.wav").wait(15)
        assert wait(lambda: 'intent="GetTime"' in urllib.request.urlopen(url + "/metrics", timeout=10).read().decode(), 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
        manager.close()
        pulse.stop()
        pulse.cleanup()


def wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_serve_without_its_microphone_serves_the_api_and_says_so(tmp_path: Path, tmp_path_factory) -> None:
    """At boot the microphone may not be there yet: the API runs, health shows why, it retries."""
    checkpoint = tiny_en_checkpoint(tmp_path_factory)
    manager = Manager(tmp_path / "notify.sock")
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path / "home"), "NOTIFY_SOCKET": str(manager.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--mic", "no-such-microphone-xyz", "--no-speak", "--port", "0",
         "--model", str(checkpoint), "--device", "cpu", "--engine", "espeak", "--commands", str(ROOT / "commands.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready = manager.wait_for("READY", "1", timeout=120)
        url = re.search(r"API (http://\S+)", ready["STATUS"]).group(1)
        health = get_json(url + "/v1/health")
        assert health["status"] == "degraded"
        assert health["microphone"]["state"] == "missing" and health["microphone"]["error"]  # no such device / none at all
        assert post_json(url + "/v1/intent", {"text": "what time is it"})["intent"] == "GetTime"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=10)
        manager.close()
    assert "serving without listening" in stderr and "Traceback" not in stderr


def test_serve_with_an_unreadable_recording_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    result = subprocess.run([sys.executable, "-m", "assistant", "serve", "--input", str(bad), "--no-api",
                             "--engine", "espeak"],
                            cwd=ROOT, env={**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"{bad}: not a WAV file" in result.stderr
