"""`assistant serve --wyoming` as a real process, and two `assistant satellite` processes on file
sources talking to it: each satellite's commands are handled once and each gets its own replies.

The satellites start before the server is up, so they also show the reconnect-with-backoff
path. Real tiny.en on the server, espeak-ng replies (deterministic, so the audio a satellite
wrote can be compared sample for sample with what espeak-ng says for the expected reply).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.client import AsyncClient
from wyoming.handle import Handled
from wyoming.info import Describe, Info

from service_support import tiny_en_checkpoint
from test_wyoming import RECORDER, Rig, free_port, read_until, wav_events

from assistant.audio import float_to_pcm16, read_wav, write_wav
from assistant.audio import WavFileSource
from assistant.playback import FileSink
from assistant.satellite import Satellite, SatelliteSettings, backoff_delays
from assistant.service.wyoming import WyomingSettings
from assistant.tts.cache import ReplyCache
from assistant.tts.speech import Speech, SpeechSettings

ROOT = Path(__file__).resolve().parents[1]
AUDIO = Path(__file__).parent / "audio"

pytestmark = pytest.mark.timeout(180)

COMMANDS = """\
language: en
lists:
  room: {values: [kitchen, bedroom]}
  state: {values: ["on", "off"]}
intents:
  Lights:
    sentences: ["turn {state} [the] {room} light[s]"]
    handler: {python: "recorder:lights"}
    reply: "Turning {state} the {room} lights."
  Stop:
    sentences: [stop]
    handler: {builtin: stop}
    reply: "Okay."
  TimerCancel:
    sentences: ["cancel the timer"]
    handler: {builtin: timer_cancel}
"""


def joined(tmp: Path, name: str, *clips: str) -> Path:
    parts = []
    for clip in clips:
        samples, rate = read_wav(AUDIO / clip)
        assert rate == 16000
        parts += [samples, np.zeros(16000, dtype=np.float32)]
    path = tmp / name
    write_wav(path, np.concatenate(parts), 16000)
    return path


def satellite(port: int, source: Path, sink: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "assistant", "satellite", "--server", f"tcp://127.0.0.1:{port}", "--input", str(source),
         "--speak-to", str(sink), "--events", "jsonl"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the Wyoming server did not come up")


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = backoff_delays(0.5, 4)
    assert [next(delays) for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]


class PlayingSink(FileSink):
    """A WAV sink that says it is still playing (as a speaker is while a reply sounds)."""

    playing = True

    @property
    def is_playing(self) -> bool:
        return self.playing


@pytest.mark.parametrize("playing", [True, False])
def test_the_microphone_is_muted_while_a_reply_plays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, playing: bool) -> None:
    """While the speaker plays, what the microphone hears is not a command (no speech, nothing
    sent); otherwise the command is sent, and a server error ends that exchange, not the run."""
    rig = Rig(tmp_path, monkeypatch)
    rig.server.backend.transcribe = None  # a server without Whisper: transcription gets an error event
    try:
        sink = PlayingSink(tmp_path / "out.wav")
        sink.playing = playing
        events: list[dict] = []
        sat = Satellite(WavFileSource(AUDIO / "stop.wav"), sink, SatelliteSettings(server=rig.uri), on_event=events.append)
        failed = sat.run()
    finally:
        rig.close()
    speech = [e for e in events if e["event"] == "speech"]
    if playing:
        assert speech == [] and sat.exchanges == [] and failed == 0
    else:
        assert len(speech) == 1 and len(sat.exchanges) == 1 and failed == 1
        assert sat.exchanges[0].error.startswith("unavailable")


class GatedSource(WavFileSource):
    """A WAV file whose frames stop at `gate_frame` until `gate` is set (time for the test to
    restart the server between two commands)."""

    def __init__(self, path: Path, gate_frame: int) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.gate_frame = gate_frame

    def frames(self):
        for index, frame in enumerate(super().frames()):
            if index == self.gate_frame:
                self.gate.wait(30)
            yield frame


def test_the_satellite_reconnects_when_the_server_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    settings = WyomingSettings(uri=f"tcp://127.0.0.1:{port}")
    first = Rig(tmp_path / "a", monkeypatch, settings)
    first.server.backend.transcribe = None  # no Whisper needed: each exchange ends with an error event
    two = joined(tmp_path, "two.wav", "stop.wav", "stop.wav")
    source = GatedSource(two, gate_frame=int(2.6 / 0.03))  # between the two commands
    sat = Satellite(source, FileSink(tmp_path / "out.wav"),
                    SatelliteSettings(server=f"tcp://127.0.0.1:{port}", backoff_min_seconds=0.1, backoff_max_seconds=0.4))
    runner = threading.Thread(target=sat.run)
    runner.start()
    second = None
    try:
        deadline = time.monotonic() + 20
        while len(sat.exchanges) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(sat.exchanges) == 1 and sat.connections == 1
        first.close()  # the server goes away...
        time.sleep(0.5)  # ...the satellite notices and retries with backoff meanwhile
        second = Rig(tmp_path / "b", monkeypatch, settings)
        second.server.backend.transcribe = None
        source.gate.set()
        runner.join(20)
        assert not runner.is_alive()
    finally:
        source.gate.set()
        sat.stop()
        runner.join(5)
        if second is not None:
            second.close()
    # two or more connections: a reconnect may land on the closing server and be reset first
    assert sat.connections >= 2 and len(sat.exchanges) == 2
    assert all(e.error and e.error.startswith("unavailable") for e in sat.exchanges)  # both answered by a server


@pytest.mark.slow
def test_serve_with_wyoming_and_two_satellites(tmp_path: Path, tmp_path_factory) -> None:
    checkpoint = tiny_en_checkpoint(tmp_path_factory)
    (tmp_path / "recorder.py").write_text(RECORDER)
    (tmp_path / "commands.yaml").write_text(COMMANDS)
    log = tmp_path / "handled.log"
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path / "home"), "WYOMING_TEST_LOG": str(log), "PYTHONUNBUFFERED": "1"}
    port = free_port()
    kitchen_in = joined(tmp_path, "kitchen.wav", "turn_on_kitchen_lights.wav", "stop.wav")
    bedroom_in = joined(tmp_path, "bedroom.wav", "turn_off_bedroom_lights.wav", "cancel_timer.wav")
    # The satellites start first: they wait, retrying with backoff, until the server is there.
    satellites = [satellite(port, kitchen_in, tmp_path / "kitchen_out.wav", env),
                  satellite(port, bedroom_in, tmp_path / "bedroom_out.wav", env)]
    serve = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--commands", str(tmp_path / "commands.yaml"), "--no-mic", "--no-api",
         "--wyoming", f"tcp://127.0.0.1:{port}", "--model", str(checkpoint), "--device", "cpu", "--engine", "espeak"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, serve)

        # The server as Home Assistant sees it: describe, then a committed command transcribed.
        async def home_assistant() -> tuple[Info, str]:
            async with AsyncClient.from_uri(f"tcp://127.0.0.1:{port}", read_timeout=60) as client:
                await client.write_event(Describe().event())
                info = Info.from_event((await read_until(client, ("info",)))[-1])
                await client.write_event(Transcribe(language="en").event())
                for event in wav_events(AUDIO / "what_time.wav"):
                    await client.write_event(event)
                text = Transcript.from_event((await read_until(client, ("transcript",)))[-1]).text
                return info, text

        info, text = asyncio.run(home_assistant())
        assert [p.name for p in info.handle] == ["assistant-intents"] and "Lights" in info.handle[0].models[0].description
        assert text == "What time is it?"

        outputs = [proc.communicate(timeout=120) for proc in satellites]
        for proc, (out, err) in zip(satellites, outputs):
            assert proc.returncode == 0, err[-3000:]
        events = [[json.loads(line) for line in out.splitlines()] for out, _ in outputs]
        for stream in events:
            kinds = [e["event"] for e in stream]
            assert "disconnected" in kinds and kinds.index("disconnected") < kinds.index("connected")  # backoff, then in
            done = stream[-1]
            assert done["event"] == "done" and done["exchanges"] == 2 and done["failed"] == 0
            assert done["max_rss_mib"] < 200, done  # no torch, no Whisper on a satellite
        replies = [[e["reply"] for e in stream if e["event"] == "exchange"] for stream in events]
        assert replies == [["Turning on the kitchen lights.", "Okay."],
                           ["Turning off the bedroom lights.", "There is no timer to cancel."]]
        assert sorted(log.read_text().splitlines()) == ["bedroom off", "kitchen on"]  # each handled once

        # Each satellite played exactly its own replies, as espeak-ng says them.
        speech = Speech(SpeechSettings(engine="espeak", fallback=("espeak",)), cache=ReplyCache(tmp_path / "cache"))
        for name, texts in (("kitchen_out.wav", replies[0]), ("bedroom_out.wav", replies[1])):
            played, rate = read_wav(tmp_path / name)
            expected = [speech.synthesize(t) for t in texts]
            assert rate == expected[0].sample_rate
            assert float_to_pcm16(played) == b"".join(float_to_pcm16(a.samples) for a in expected)

        # Handle over Wyoming runs the handler in the served process too.
        async def handle() -> str | None:
            async with AsyncClient.from_uri(f"tcp://127.0.0.1:{port}", read_timeout=30) as client:
                from wyoming.asr import Transcript as HandleRequest

                await client.write_event(HandleRequest(text="turn on the bedroom lights").event())
                return Handled.from_event((await read_until(client, ("handled",)))[-1]).text

        assert asyncio.run(handle()) == "Turning on the bedroom lights."
        assert sorted(log.read_text().splitlines()) == ["bedroom off", "bedroom on", "kitchen on"]
    finally:
        for proc in satellites:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.communicate()
    assert serve.returncode == 0
