"""The Wyoming server over real parts, spoken to by the `wyoming` package's own client classes.

Real CommandSet, Dispatcher (handlers, timers), Speech with espeak-ng (fast, deterministic), and
for the transcription tests the real Whisper tiny.en; the server listens on loopback (and on a
Unix socket), clients are `wyoming.client.AsyncClient`s, and the misbehaving peers write raw
bytes on plain sockets.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
import wave
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize
from wyoming.ping import Ping, Pong
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from assistant.assemble import build_recognizer
from assistant.audio import SAMPLE_RATE, float_to_pcm16, read_wav, resample
from assistant.handlers import Dispatcher
from assistant.intents import load_commands
from assistant.service.wyoming import (
    NOT_UNDERSTOOD,
    AudioCollector,
    FrameError,
    RequestError,
    VoiceChoice,
    WyomingBackend,
    WyomingConfigError,
    WyomingServer,
    WyomingSettings,
    split_sentences,
    recognition_transcriber,
)
from assistant.tts.cache import ReplyCache
from assistant.tts.speech import Speech, SpeechSettings

AUDIO = Path(__file__).parent / "audio"

pytestmark = pytest.mark.timeout(120)

COMMANDS = """\
language: en
lists:
  room: {values: [kitchen, bedroom]}
  state: {values: ["on", "off"]}
  seconds: {range: {from: 1, to: 3600}}
intents:
  Lights:
    sentences: ["turn {state} [the] {room} light[s]"]
    handler: {python: "recorder:lights"}
    reply: "Turning {state} the {room} lights."
  GetTime:
    sentences: ["what time is it"]
    handler: {builtin: time}
  TimerSet:
    sentences: ["set [a] timer for {seconds} second[s]"]
    handler: {builtin: timer_set}
  TimerCancel:
    sentences: ["cancel the timer"]
    handler: {builtin: timer_cancel}
  Fail:
    sentences: ["fail now"]
    handler: {run: ["sh", "-c", "exit 3"], timeout: 5}
    reply: "Done."
"""

RECORDER = """\
import os

def lights(room, state):
    with open(os.environ["WYOMING_TEST_LOG"], "a") as log:
        log.write(f"{room} {state}\\n")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Rig:
    """A running server and what it is made of."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, settings: WyomingSettings | None = None) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "recorder.py").write_text(RECORDER)
        (tmp / "commands.yaml").write_text(COMMANDS)
        self.log = tmp / "handled.log"
        monkeypatch.setenv("WYOMING_TEST_LOG", str(self.log))
        self.commands = load_commands(tmp / "commands.yaml")
        self.announced: list[str] = []
        self.dispatcher = Dispatcher(self.commands, announce=self.announced.append)
        self.speech = Speech(SpeechSettings(engine="espeak", fallback=("espeak",), check_prerendered=False),
                             cache=ReplyCache(tmp / "cache"))
        self.asr: Any = None
        settings = settings or WyomingSettings(uri=f"tcp://127.0.0.1:{free_port()}")
        self.uri = settings.uri
        self.port = urlparse(self.uri).port
        self.stages: list[str] = []
        backend = WyomingBackend(
            commands=lambda: self.commands, dispatcher=lambda: self.dispatcher,
            transcribe=self._transcribe, speech=self.speech, timers=self.dispatcher.timers,
            asr_model="tiny.en", voices=lambda: [VoiceChoice("espeak", None, "espeak-ng"), VoiceChoice("espeak", "en-us")],
            observe=lambda stage, seconds: self.stages.append(stage),
        )
        self.server = WyomingServer(backend, settings)
        self.server.start()

    def _transcribe(self, audio: np.ndarray, guided: bool) -> str:
        assert self.asr is not None, "this test did not load Whisper"
        return recognition_transcriber(self.asr, build_recognizer(self.asr, self.commands))(audio, guided)

    def handled(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def close(self) -> None:
        self.server.stop()
        self.dispatcher.close()


@pytest.fixture(scope="module")
def rig(tmp_path_factory, request):
    monkeypatch = pytest.MonkeyPatch()
    rig = Rig(tmp_path_factory.mktemp("wyoming"), monkeypatch)
    yield rig
    rig.close()
    monkeypatch.undo()


@pytest.fixture(scope="module")
def whisper():
    from asr_support import real_checkpoint

    from assistant.asr import WhisperASR, WhisperSettings

    return WhisperASR(WhisperSettings(model=str(real_checkpoint()), device="cpu"))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


async def talk(uri: str, *events: Event, until: tuple[str, ...], timeout: float = 30) -> list[Event]:
    """Send events, then read until an event of a type in `until` (inclusive)."""
    async with AsyncClient.from_uri(uri, read_timeout=timeout) as client:
        for event in events:
            await client.write_event(event)
        return await read_until(client, until)


async def read_until(client: AsyncClient, until: tuple[str, ...]) -> list[Event]:
    got = []
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed after {[e.type for e in got]}"
        got.append(event)
        if event.type in until:
            return got


def wav_events(path: Path, rate: int | None = None, width: int = 2, channels: int = 1, chunk_ms: int = 100) -> list[Event]:
    """A committed WAV as audio-start/chunk/stop in another format when asked."""
    samples, sr = read_wav(path)
    if rate is not None and rate != sr:
        samples, sr = resample(samples, sr, rate), rate
    ints = np.clip(np.round(samples * (2 ** (8 * width - 1))), -(2 ** (8 * width - 1)), 2 ** (8 * width - 1) - 1).astype(np.int64)
    frames = np.repeat(ints[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        pcm = (frames + 128).astype(np.uint8).tobytes()
    else:
        pcm = b"".join(int(v).to_bytes(width, "little", signed=True) for v in frames) if width == 3 else \
            frames.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    step = sr * chunk_ms // 1000 * width * channels
    return ([AudioStart(rate=sr, width=width, channels=channels).event()]
            + [AudioChunk(rate=sr, width=width, channels=channels, audio=pcm[i : i + step]).event() for i in range(0, len(pcm), step)]
            + [AudioStop().event()])


def pcm_of(events: list[Event]) -> tuple[int, bytes]:
    starts = [e for e in events if AudioStart.is_type(e.type)]
    assert len(starts) == 1, [e.type for e in events]
    rate = AudioStart.from_event(starts[0]).rate
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    assert all(c.rate == rate and c.width == 2 and c.channels == 1 for c in chunks)
    assert [e.type for e in events].index("audio-stop") > [e.type for e in events].index("audio-start")
    return rate, b"".join(c.audio for c in chunks)


# -- describe ------------------------------------------------------------------------------------------


def test_describe_advertises_asr_tts_handle_intent(rig) -> None:
    events = run(talk(rig.uri, Describe().event(), until=("info",)))
    info = Info.from_event(events[-1])
    assert [m.name for m in info.asr[0].models] == ["tiny.en", "tiny.en+commands"]
    assert "kitchen" in info.asr[0].models[1].description  # the commands' vocabulary
    assert [v.name for v in info.tts[0].voices] == ["espeak", "espeak:en-us"]
    assert info.tts[0].supports_synthesize_streaming
    for program in (info.handle[0], info.intent[0]):
        assert "Lights" in program.models[0].description and "TimerSet" in program.models[0].description


def test_describe_follows_a_hot_reload(rig, tmp_path: Path) -> None:
    (tmp_path / "recorder.py").write_text(RECORDER)
    (tmp_path / "commands.yaml").write_text(COMMANDS + '  Hello:\n    sentences: ["hello there"]\n    reply: "Hi."\n')
    old = rig.commands
    rig.commands = load_commands(tmp_path / "commands.yaml")
    rig.dispatcher.replace_commands(rig.commands)
    try:
        info = Info.from_event(run(talk(rig.uri, Describe().event(), until=("info",)))[-1])
        assert "Hello" in info.handle[0].models[0].description
        events = run(talk(rig.uri, Transcript(text="hello there").event(), until=("handled", "not-handled")))
        assert Handled.from_event(events[-1]).text == "Hi."
    finally:
        rig.commands = old
        rig.dispatcher.replace_commands(old)


# -- asr -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_transcribe_committed_speech_in_any_format(rig, whisper) -> None:
    rig.asr = whisper
    path = AUDIO / "turn_on_kitchen_lights.wav"
    texts = []
    for rate, width, channels in ((None, 2, 1), (44100, 3, 2), (48000, 4, 1)):
        events = run(talk(rig.uri, Transcribe(language="en").event(), *wav_events(path, rate, width, channels),
                          until=("transcript",)))
        texts.append(Transcript.from_event(events[-1]).text)
    assert texts == ["Turn on the kitchen lights."] * 3


@pytest.mark.slow
def test_guided_transcription_and_combined_exchange(rig, whisper) -> None:
    rig.asr = whisper
    before = rig.handled()
    exchange = Transcribe(name="tiny.en+commands", context={"assistant": {"handle": True, "speak": True}}).event()
    events = run(talk(rig.uri, exchange, *wav_events(AUDIO / "turn_off_bedroom_lights.wav"),
                      until=("audio-stop",)))
    types = [e.type for e in events]
    assert types[:2] == ["transcript", "handled"], types
    assert Transcript.from_event(events[0]).text == "turn off the bedroom lights"  # the prompt's spelling
    handled = Handled.from_event(events[1])
    assert handled.text == "Turning off the bedroom lights." and handled.context == {"audio": True, "intent": "Lights"}
    rate, pcm = pcm_of(events[2:])
    assert pcm == float_to_pcm16(rig.speech.synthesize(handled.text).samples)
    assert rig.handled() == before + ["bedroom off"]


def test_silence_and_no_audio_give_an_empty_transcript(rig) -> None:
    # under 0.1 s of audio is not sent to Whisper at all (this test loads no model)
    short = [AudioStart(rate=16000, width=2, channels=1).event(),
             AudioChunk(rate=16000, width=2, channels=1, audio=bytes(3000)).event(), AudioStop().event()]
    events = run(talk(rig.uri, Transcribe().event(), *short, until=("transcript",)))
    assert Transcript.from_event(events[-1]).text == ""
    events = run(talk(rig.uri, Transcribe(context={"assistant": {"handle": True, "speak": True}}).event(),
                      AudioStop().event(), until=("not-handled",)))
    assert [e.type for e in events] == ["transcript", "not-handled"]
    assert NotHandled.from_event(events[-1]).text is None  # nothing said: nothing to answer


def test_audio_collector_converts_any_format() -> None:
    t = np.arange(44100) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo24 = np.repeat(np.round(tone * 8388607).astype(np.int64)[:, None], 2, axis=1).reshape(-1)
    pcm = b"".join(int(v).to_bytes(3, "little", signed=True) for v in stereo24)
    collector = AudioCollector(max_seconds=5)
    for i in range(0, len(pcm), 6 * 1000):  # 1000-frame chunks, resampled continuously
        collector.add(AudioChunk(rate=44100, width=3, channels=2, audio=pcm[i : i + 6000]))
    out = collector.audio()
    expected = resample(tone, 44100, 16000)
    assert abs(len(out) - len(expected)) <= 2
    n = min(len(out), len(expected))
    assert np.max(np.abs(out[200 : n - 200] - expected[200 : n - 200])) < 0.01
    eight_bit = (np.round(tone * 127) + 128).astype(np.uint8).tobytes()
    collector = AudioCollector(max_seconds=5)
    collector.add(AudioChunk(rate=44100, width=1, channels=1, audio=eight_bit))
    assert np.max(np.abs(collector.audio()[200 : n - 200] - expected[200 : n - 200])) < 0.02
    with pytest.raises(RequestError):
        AudioCollector(max_seconds=0.5).add(AudioChunk(rate=44100, width=3, channels=2, audio=pcm))
    with pytest.raises(FrameError):
        AudioCollector(5).add(AudioChunk(rate=16000, width=5, channels=1, audio=bytes(10)))
    with pytest.raises(FrameError):
        AudioCollector(5).add(AudioChunk(rate=0, width=2, channels=1, audio=bytes(10)))


# -- tts -----------------------------------------------------------------------------------------------


def test_synthesize_gives_a_playable_wav(rig) -> None:
    text = "The kitchen lights are on."
    events = run(talk(rig.uri, Synthesize(text=text).event(), until=("audio-stop",)))
    rate, pcm = pcm_of(events)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
        out.writeframes(pcm)
    with wave.open(io.BytesIO(buffer.getvalue())) as back:
        assert back.getnframes() / back.getframerate() > 0.8
    assert pcm == float_to_pcm16(rig.speech.synthesize(text).samples)  # what the engine (or its cache) says
    # a voice from describe, and an unknown one (an error; the connection stays usable)
    events = run(talk(rig.uri, Synthesize(text="Hi.", voice=SynthesizeVoice(name="espeak:en-us")).event(), until=("audio-stop",)))
    assert len(pcm_of(events)[1]) > 0
    events = run(talk(rig.uri, Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event(), Ping().event(),
                      until=("pong",)))
    assert Error.from_event(events[0]).code == "unknown_voice" and events[1].type == "pong"


def test_streaming_synthesis_speaks_each_sentence_as_it_completes(rig) -> None:
    async def go() -> tuple[list[Event], list[Event]]:
        async with AsyncClient.from_uri(rig.uri, read_timeout=30) as client:
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeChunk(text="Hello there. How").event())
            early = await read_until(client, ("audio-chunk",))  # before the text is finished
            await client.write_event(SynthesizeChunk(text=" are you? Fine").event())
            await client.write_event(Synthesize(text="Hello there. How are you? Fine").event())  # HA's compat copy
            await client.write_event(SynthesizeStop().event())
            rest = await read_until(client, ("synthesize-stopped",))
            return early, rest

    early, rest = run(go())
    events = early + rest
    assert [e.type for e in early] == ["audio-start", "audio-chunk"]
    assert events[-2].type == "audio-stop" and SynthesizeStopped.is_type(events[-1].type)
    rate, pcm = pcm_of(events[:-1])
    expected = b"".join(float_to_pcm16(rig.speech.synthesize(s).resampled(rate).samples) for s in ("Hello there.", "How are you?", "Fine"))
    assert pcm == expected


def test_split_sentences() -> None:
    assert split_sentences("One. Two? Thr") == (["One.", "Two?"], "Thr")
    assert split_sentences("3.5 percent") == ([], "3.5 percent")


# -- handle and intent -------------------------------------------------------------------------------


def test_handle_runs_the_handler(rig) -> None:
    before = rig.handled()
    events = run(talk(rig.uri, Transcript(text="turn on the kitchen lights").event(), until=("handled", "not-handled")))
    handled = Handled.from_event(events[-1])
    assert handled.text == "Turning on the kitchen lights."
    assert rig.handled() == before + ["kitchen on"]
    events = run(talk(rig.uri, Transcript(text="play some jazz").event(), until=("handled", "not-handled")))
    assert NotHandled.from_event(events[-1]).text == NOT_UNDERSTOOD
    events = run(talk(rig.uri, Transcript(text="fail now").event(), until=("handled", "not-handled")))
    assert events[-1].type == "not-handled" and NotHandled.from_event(events[-1]).text  # the handler's error reply
    assert rig.handled() == before + ["kitchen on"]


def test_recognize_gives_the_intent_without_running_it(rig) -> None:
    before = rig.handled()
    events = run(talk(rig.uri, Recognize(text="turn off the bedroom lights").event(), until=("intent", "not-recognized")))
    intent = Intent.from_event(events[-1])
    assert intent.name == "Lights"
    assert {e.name: e.value for e in intent.entities} == {"room": "bedroom", "state": "off"}
    assert rig.handled() == before
    events = run(talk(rig.uri, Recognize(text="the weather is lovely").event(), until=("intent", "not-recognized")))
    assert NotRecognized.is_type(events[-1].type)


def test_timers_report_to_the_connection_that_set_them(rig) -> None:
    async def satellite() -> list[Event]:
        async with AsyncClient.from_uri(rig.uri, read_timeout=10) as client:
            await client.write_event(Transcript(text="set a timer for 1 second").event())
            got = await read_until(client, ("handled",))
            got += await read_until(client, ("audio-stop",))  # finished + its announcement
            await client.write_event(Transcript(text="set a timer for 60 seconds").event())
            got += await read_until(client, ("handled",))
            await client.write_event(Transcript(text="cancel the timer").event())
            got += await read_until(client, ("timer-cancelled",))
            return got

    events = run(satellite())
    types = [e.type for e in events]
    started = TimerStarted.from_event(events[types.index("timer-started")])
    assert started.total_seconds == 1 and started.start_seconds == 1
    assert TimerFinished.from_event(events[types.index("timer-finished")]).id == started.id
    rate, pcm = pcm_of(events[types.index("timer-finished") + 1 : types.index("audio-stop") + 1])
    assert pcm == float_to_pcm16(rig.speech.synthesize("Your timer for 1 second is done.").samples)
    assert TimerCancelled.is_type(types[-1]) and types.count("timer-started") == 2
    assert rig.announced == []  # delivered to the satellite, not announced centrally

    # A connection that has gone (Home Assistant's one per request): the assistant announces it.
    run(talk(rig.uri, Transcript(text="set a timer for 1 second").event(), until=("handled",)))
    deadline = time.monotonic() + 5
    while not rig.announced and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.announced == ["Your timer for 1 second is done."]


# -- hostile and broken peers ----------------------------------------------------------------------------


def raw_exchange(port: int, data: bytes, read_timeout: float = 5) -> list[dict]:
    """Write raw bytes, then read every event until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            block = sock.recv(65536)
            if not block:
                break
            received += block
    events = []
    stream = io.BytesIO(received)
    while line := stream.readline():
        header = json.loads(line)
        if header.get("data_length"):
            header["data"] = json.loads(stream.read(header["data_length"]))
        stream.read(header.get("payload_length") or 0)
        events.append(header)
    return events


@pytest.mark.parametrize("frame, code", [
    (b"this is not json\n", "malformed"),
    (b"[1, 2, 3]\n", "malformed"),
    (b'{"data": {}}\n', "malformed"),
    (b'{"type": "describe", "data_length": -4}\n', "malformed"),
    (b'{"type": "describe", "data_length": 3}\n[1]', "malformed"),
    (b'{"type": "audio-chunk", "data": {"width": 2, "channels": 1}}\n', "malformed"),
    (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 7, "channels": 1}, "payload_length": 2}\nab', "malformed"),
    (b'{"type": "audio-chunk", "payload_length": 999999999}\n', "too_large"),
    (b'{"type": "synthesize", "data_length": 999999}\n', "too_large"),
    (b'{"type": "x", "pad": "' + b"a" * 10000 + b'"}\n', "too_large"),
    (b"a" * 70000 + b"\n", "too_large"),
])
def test_a_malformed_or_oversized_frame_closes_that_connection_only(rig, frame: bytes, code: str) -> None:
    async def bystander() -> list[Event]:
        async with AsyncClient.from_uri(rig.uri, read_timeout=10) as client:
            await client.write_event(Ping(text="before").event())
            first = await read_until(client, ("pong",))
            events = await asyncio.to_thread(raw_exchange, rig.port, frame)
            await client.write_event(Recognize(text="turn on the kitchen lights").event())
            return first + [Event(type="raw", data={"events": events})] + await read_until(client, ("intent",))

    events = run(bystander())
    raw = events[1].data["events"]
    assert [e["type"] for e in raw] == ["error"] and raw[0]["data"]["code"] == code
    assert events[-1].type == "intent"


def test_caps_on_audio_seconds_and_text(rig) -> None:
    second = AudioChunk(rate=16000, width=2, channels=1, audio=bytes(32000)).event()
    events = run(talk(rig.uri, Transcribe().event(), AudioStart(rate=16000, width=2, channels=1).event(),
                      *[second] * 31, until=("error",)))
    assert Error.from_event(events[-1]).code == "too_large"
    # too much text is refused, the connection stays open
    events = run(talk(rig.uri, Synthesize(text="word " * 1000).event(), Ping().event(), until=("pong",)))
    assert Error.from_event(events[0]).code == "too_large" and events[1].type == "pong"


def test_a_client_leaving_mid_stream_leaves_the_server_serving(rig) -> None:
    async def leave_mid_audio() -> None:
        client = AsyncClient.from_uri(rig.uri)
        await client.connect()
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=bytes(3200)).event())
        await client.disconnect()

    async def leave_mid_reply() -> None:
        client = AsyncClient.from_uri(rig.uri, read_timeout=10)
        await client.connect()
        await client.write_event(Synthesize(text="This is a rather long reply. " * 20).event())
        await read_until(client, ("audio-chunk",))
        await client.disconnect()

    run(leave_mid_audio())
    run(leave_mid_reply())
    deadline = time.monotonic() + 10
    while rig.server.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.server.connections == 0
    events = run(talk(rig.uri, Recognize(text="what time is it").event(), until=("intent",)))
    assert Intent.from_event(events[-1]).name == "GetTime"


def test_many_clients_at_once(rig) -> None:
    async def one(i: int) -> tuple[str, int]:
        room = ("kitchen", "bedroom")[i % 2]
        events = await talk(rig.uri, Recognize(text=f"turn on the {room} lights").event(),
                            Synthesize(text=f"Client {i}.").event(), until=("audio-stop",))
        intent = Intent.from_event(events[0])
        return {e.name: e.value for e in intent.entities}["room"], len(pcm_of(events[1:])[1])

    async def all_of_them() -> list[tuple[str, int]]:
        return await asyncio.gather(*(one(i) for i in range(12)))

    results = run(all_of_them())
    assert [room for room, _ in results] == [("kitchen", "bedroom")[i % 2] for i in range(12)]
    assert all(size > 0 for _, size in results)


def test_connection_cap_and_peer_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    rig = Rig(tmp_path, monkeypatch, WyomingSettings(uri=f"tcp://127.0.0.1:{port}", max_connections=2))
    try:
        async def go() -> list[Any]:
            held = [AsyncClient.from_uri(rig.uri, read_timeout=5) for _ in range(2)]
            for client in held:
                await client.connect()
                await client.write_event(Ping().event())
                await read_until(client, ("pong",))
            async with AsyncClient.from_uri(rig.uri, read_timeout=5) as extra:  # told at once, then closed
                refused = [await extra.read_event(), await extra.read_event()]
            assert refused[1] is None
            refused = refused[:1]
            await held[0].disconnect()
            await asyncio.sleep(0.2)
            accepted = await talk(rig.uri, Ping().event(), until=("pong",))
            await held[1].disconnect()
            return [Error.from_event(refused[-1]).code, accepted[-1].type]

        assert run(go()) == ["busy", "pong"]
    finally:
        rig.close()

    with pytest.raises(WyomingConfigError, match="allow-remote"):
        WyomingSettings(uri="tcp://0.0.0.0:10300").check()
    WyomingSettings(uri="tcp://0.0.0.0:10300", allow_remote=True).check()
    with pytest.raises(WyomingConfigError):
        WyomingSettings(uri="http://127.0.0.1:10300").check()
    with pytest.raises(WyomingConfigError):
        WyomingSettings(allowed_peers=("kitchen",))
    lan = WyomingSettings(uri="tcp://0.0.0.0:1", allow_remote=True, allowed_peers=("192.168.1.0/24",))
    assert lan.peer_allowed("192.168.1.20") and lan.peer_allowed("127.0.0.1") and lan.peer_allowed(None)
    assert not lan.peer_allowed("10.0.0.5")
    assert not WyomingSettings().peer_allowed("192.168.1.20")


def test_unix_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wyoming.sock"
    rig = Rig(tmp_path, monkeypatch, WyomingSettings(uri=f"unix://{path}"))
    try:
        events = run(talk(f"unix://{path}", Recognize(text="what time is it").event(), until=("intent",)))
        assert Intent.from_event(events[-1]).name == "GetTime"
    finally:
        rig.close()
    assert not path.exists()


def test_zeroconf_announces_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--zeroconf: Home Assistant finds `_wyoming._tcp` with our port (asked by another mDNS peer)."""
    from zeroconf.asyncio import AsyncZeroconf

    port = free_port()
    name = f"assistant-test-{port}"
    rig = Rig(tmp_path, monkeypatch, WyomingSettings(uri=f"tcp://127.0.0.1:{port}", zeroconf=True, zeroconf_name=name))
    try:
        async def lookup() -> Any:
            peer = AsyncZeroconf()
            try:
                return await peer.async_get_service_info("_wyoming._tcp.local.", f"{name}._wyoming._tcp.local.", timeout=5000)
            finally:
                await peer.async_close()

        info = run(lookup())
        assert info is not None and info.port == port and info.parsed_addresses() == ["127.0.0.1"]
    finally:
        rig.close()
