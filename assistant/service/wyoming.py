"""The Wyoming protocol server: Home Assistant and satellites use the service's warm models.

Wyoming (the `wyoming` package, MIT) is what Home Assistant's Assist pipeline and every
Wyoming service speak: one JSON header line, optional JSON data and a binary payload per event,
over TCP or a Unix socket. Speaking it makes our Whisper (guided by the commands when asked),
our intents and handlers, and our voices (with the reply cache) usable from Home Assistant,
and lets small satellite machines (`assistant satellite`) send speech to one central assistant.

One `AsyncEventHandler` per connection, all on one event loop in a thread of its own; model and
handler calls run in a small thread pool. Someone is speaking to a Wyoming peer (a Home
Assistant voice satellite, our own satellite), so for the model scheduler its transcriptions and
handlers are command work and its speech is a live reply, as in the listen loop, and background
pre-rendering pauses meanwhile (the HTTP API's scripts rank below them). Nothing is cached across requests: the
active commands and dispatcher are asked for per request, so a hot reload applies at once.

What each request gets:
  describe                                     -> info (asr, tts, handle, intent)
  transcribe? audio-start audio-chunk* audio-stop -> transcript  (any rate/width/channels)
  synthesize                                   -> audio-start audio-chunk* audio-stop
  synthesize-start synthesize-chunk* synthesize-stop -> audio-start audio-chunk* audio-stop
                                                  synthesize-stopped (each sentence is spoken
                                                  as soon as its text is complete)
  transcript (handle)                          -> handled (the reply) | not-handled
  recognize                                    -> intent (with entities) | not-recognized
  ping                                         -> pong
Timers started by a connection report timer-started / timer-cancelled / timer-finished to it
while it stays connected (a satellite does; Home Assistant opens a connection per request). A
finished timer whose connection is there also gets its announcement as audio, and the central
machine stays quiet; otherwise the central machine announces it as usual. Our timers cannot be
paused or extended, so timer-updated never arises.

Satellite exchange (one round trip per spoken command): a `transcribe` whose context holds
`{"assistant": {"handle": true, "speak": true}}` is answered with the transcript, then handled
/ not-handled (context `{"audio": true}` when reply audio follows), then the reply as
audio-start/chunk/stop on the same connection. Standard events only, so the reply cannot reach
another satellite, and the audio is never sent back and forth twice.

Safety: Wyoming has no authentication. The server binds to loopback unless
`allow_remote` is set (optionally limited to `allowed_peers`); header lines, JSON data,
payloads, audio seconds, text length and concurrent connections are capped; a malformed or
oversized frame gets an `error` event and closes that connection only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
    TtsProgram,
    TtsVoice,
)
from wyoming.intent import Entity, Intent, NotRecognized, Recognize
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from assistant import __version__
from assistant.audio import SAMPLE_RATE, AudioFormatError, StreamResampler, decode_pcm, float_to_pcm16
from assistant.handlers.timers import Timer, timer_owner
from assistant.scheduler import SCHEDULER, Priority, work_priority

log = logging.getLogger(__name__)

CONTEXT_KEY = "assistant"
"""Key of our options in a request's `context` (handle, speak, guided)."""
GUIDED_SUFFIX = "+commands"
"""An ASR model name ending in this asks for recognition guided by the active commands."""
NOT_UNDERSTOOD = "Sorry, I didn't understand that."
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_ATTRIBUTION = Attribution(name="assistant (this machine)", url="")


class WyomingConfigError(ValueError):
    """The Wyoming server cannot start as configured (e.g. a public address not allowed)."""


@dataclass(frozen=True)
class WyomingSettings:
    """Where the Wyoming server listens and what it accepts from a peer."""

    uri: str = "tcp://127.0.0.1:10300"
    """tcp://HOST:PORT or unix:///path/to/socket."""
    allow_remote: bool = False
    """Serve on an address other than loopback. Wyoming has no authentication: anyone who can
    reach the port can run your handlers and use your voices."""
    allowed_peers: tuple[str, ...] = ()
    """With `allow_remote`: only these peer addresses or networks (e.g. "192.168.1.20",
    "192.168.1.0/24") may connect; empty = any. Loopback peers are always allowed."""
    guided: bool = False
    """Recognise guided by the active commands unless a request asks otherwise (a request asks
    by naming the model ending in "+commands", or with context {"assistant": {"guided": bool}})."""
    zeroconf: bool = False
    """Announce the server as `_wyoming._tcp` over mDNS, so Home Assistant discovers it."""
    zeroconf_name: str | None = None
    """The announced name (default: this machine's MAC address, as the reference servers do)."""
    max_line_bytes: int = 8 * 1024
    """Longest JSON header line; the wyoming writer puts data after the line, so real headers
    are ~100 bytes."""
    max_data_bytes: int = 64 * 1024
    """Largest JSON data block of one event."""
    max_payload_bytes: int = 1024 * 1024
    """Largest binary payload of one event (1 s of 48 kHz 32-bit stereo is 384 KB)."""
    max_audio_seconds: float = 30.0
    """Longest audio one transcription takes (one Whisper window; commands are seconds long)."""
    max_text_chars: int = 2000
    """Longest text to speak, handle or recognise (a streamed synthesis counts all chunks)."""
    max_connections: int = 16
    """Connections served at once; more are told so and closed."""
    workers: int = 4
    """Threads running model and handler calls (model work itself is ordered by the scheduler)."""
    chunk_samples: int = 1024
    """Samples per audio-chunk sent (the reference servers' default)."""

    def __post_init__(self) -> None:
        for name in ("max_line_bytes", "max_data_bytes", "max_payload_bytes", "max_connections", "workers", "chunk_samples",
                     "max_text_chars"):
            if getattr(self, name) < 1:
                raise WyomingConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.max_audio_seconds <= 0:
            raise WyomingConfigError(f"max_audio_seconds must be positive, got {self.max_audio_seconds!r}")
        for peer in self.allowed_peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError as exc:
                raise WyomingConfigError(f"allowed peer {peer!r} is not an IP address or network") from exc

    def check(self) -> None:
        """Refuse an unusable URI, and a non-loopback address without `allow_remote`."""
        parsed = urlparse(self.uri)
        if parsed.scheme == "unix":
            if not parsed.path:
                raise WyomingConfigError(f"{self.uri!r}: a unix:// URI needs a socket path")
            return
        if parsed.scheme != "tcp":
            raise WyomingConfigError(f"{self.uri!r}: use tcp://HOST:PORT or unix:///path")
        try:
            port = parsed.port
        except ValueError as exc:
            raise WyomingConfigError(f"{self.uri!r}: {exc}") from exc
        if not parsed.hostname or port is None:
            raise WyomingConfigError(f"{self.uri!r}: a tcp:// URI needs a host and a port")
        if not is_loopback(parsed.hostname) and not self.allow_remote:
            raise WyomingConfigError(
                f"refusing to serve Wyoming on {parsed.hostname!r}: the protocol has no authentication, so anyone "
                "who can reach the port could run your handlers. Bind to 127.0.0.1, or pass --wyoming-allow-remote "
                "(optionally with the peer addresses allowed) if your network is trusted")

    def peer_allowed(self, host: str | None) -> bool:
        """Whether a connection from `host` is served (None: a Unix socket peer, always)."""
        if host is None or is_loopback(host):
            return True
        if not self.allow_remote:
            return False
        if not self.allowed_peers:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(peer, strict=False) for peer in self.allowed_peers)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a host name may resolve anywhere: treat it as public
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


# -- what the server needs from the rest of the assistant ------------------------------------------


class Transcriber(Protocol):
    def __call__(self, audio: np.ndarray, guided: bool) -> str:
        """Text of float32 16 kHz mono speech: guided by the active commands (the listen loop's
        recognition policy), or free transcription. "" when nothing was said."""


class SpeechEngine(Protocol):
    """`assistant.tts.Speech`: cleans up text, uses the reply cache, streams chunks."""

    def stream(self, text: str, voice: str | None = None, engine: str | None = None) -> Iterator[Any]: ...


@dataclass(frozen=True)
class VoiceChoice:
    """A voice as Wyoming clients pick it: `name` is "ENGINE" or "ENGINE:VOICE"."""

    engine: str
    voice: str | None = None
    description: str | None = None

    @property
    def name(self) -> str:
        return self.engine if self.voice is None else f"{self.engine}:{self.voice}"


@dataclass
class WyomingBackend:
    """What the server serves; each part may be absent (its requests then get an error event).

    `commands` and `dispatcher` are called per request (hot reload swaps them); the rest are
    resident objects shared with the listen loop and the HTTP API.
    """

    commands: Callable[[], Any]
    """The active CommandSet."""
    dispatcher: Callable[[], Any]
    """The Dispatcher that runs handlers (None: handle requests are refused)."""
    transcribe: Transcriber | None
    speech: SpeechEngine | None
    timers: Any | None = None
    """The dispatcher's TimerService (`add_listener`), for timer events to their owners."""
    asr_model: str = "tiny.en"
    voices: Callable[[], list[VoiceChoice]] = field(default=lambda: [])
    observe: Callable[[str, float], None] = field(default=lambda stage, seconds: None)
    """Told each stage's duration ("asr", "match", "handler", "tts" to the first chunk)."""
    on_error: Callable[[str, str], None] = field(default=lambda stage, message: None)
    """Told about server-side failures (stage, message), for health's last_error."""


def voices_from_view(view: dict[str, Any]) -> list[VoiceChoice]:
    """The service's /v1/voices view -> the voices Wyoming advertises: each available engine in
    its default voice, and each Tortoise voice by name."""
    choices: list[VoiceChoice] = []
    for engine, info in view.get("engines", {}).items():
        if not info.get("available"):
            continue
        choices.append(VoiceChoice(engine, None, f"{engine} (default voice)"))
        for voice in info.get("voices", []) or []:
            choices.append(VoiceChoice(engine, str(voice), f"{engine} voice {voice}"))
    return choices


def recognition_transcriber(asr: Any, recognizer: Any | None) -> Transcriber:
    """The service's recognition as a Transcriber. Guided: `Recognizer.recognize` (the policy the
    listen loop uses: a short-context pass with the commands' vocabulary as prompt, kept when it
    is exactly a command, else the full window). Free: Whisper over the full 30 s window without
    a prompt (a transcript that stands on its own), also when no recognizer is given."""

    def transcribe(audio: np.ndarray, guided: bool) -> str:
        if guided and recognizer is not None:
            return str(recognizer.recognize(audio).text)
        return str(asr.transcribe(audio, short_context=False).text).strip()

    return transcribe


# -- framing ---------------------------------------------------------------------------------------------


class FrameError(Exception):
    """A frame that breaks the protocol or a cap: the connection is closed after saying why."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code


class RequestError(Exception):
    """A well-formed request that cannot be served; `close` ends the connection too."""

    def __init__(self, message: str, code: str, close: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.close = close


def _length(header: dict[str, Any], key: str, cap: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FrameError(f"{key} must be a non-negative integer, got {value!r}")
    if value > cap:
        raise FrameError(f"{key} {value} exceeds the cap of {cap} bytes", "too_large")
    return value


async def read_capped_event(reader: asyncio.StreamReader, settings: WyomingSettings) -> Event | None:
    """The next event, every length checked before anything is read; None at end of stream
    (including a peer that leaves mid-frame). Raises FrameError for a bad or oversized frame."""
    try:
        line = await reader.readline()
    except ValueError as exc:  # longer than the stream's own limit (64 KiB)
        raise FrameError(f"header line too long ({exc})", "too_large") from exc
    if not line or not line.endswith(b"\n"):
        return None
    if len(line) > settings.max_line_bytes:
        raise FrameError(f"header line of {len(line)} bytes exceeds the cap of {settings.max_line_bytes}", "too_large")
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("type"), str) or not header["type"]:
        raise FrameError("header must be a JSON object with a string `type`")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise FrameError("`data` must be a JSON object")
    data_length = _length(header, "data_length", settings.max_data_bytes)
    payload_length = _length(header, "payload_length", settings.max_payload_bytes)
    try:
        if data_length:
            raw = await reader.readexactly(data_length)
            try:
                extra = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise FrameError(f"data is not JSON: {exc}") from exc
            if not isinstance(extra, dict):
                raise FrameError("data must be a JSON object")
            data = {**data, **extra}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    return Event(type=header["type"], data=data, payload=payload)


def _parse(cls: Any, event: Event) -> Any:
    """`cls.from_event`, with a missing or mistyped field reported as a FrameError."""
    try:
        return cls.from_event(event)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(f"{event.type}: missing or invalid field ({type(exc).__name__}: {exc})") from exc


def _text_field(value: Any, what: str, cap: int) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{what}: `text` must be a string", "bad_request")
    if len(value) > cap:
        raise RequestError(f"{what}: text of {len(value)} characters exceeds the cap of {cap}", "too_large")
    return value


def _options(context: Any) -> dict[str, Any]:
    if isinstance(context, dict) and isinstance(context.get(CONTEXT_KEY), dict):
        return context[CONTEXT_KEY]
    return {}


# -- audio in and out --------------------------------------------------------------------------------


class AudioCollector:
    """One request's audio chunks (any rate, width, channels; they may even change) as float32
    16 kHz mono, resampled continuously, refused past `max_seconds`."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.seconds = 0.0
        self._parts: list[np.ndarray] = []
        self._rate: int | None = None
        self._resampler: StreamResampler | None = None

    def add(self, chunk: AudioChunk) -> None:
        rate, width, channels = chunk.rate, chunk.width, chunk.channels
        if not isinstance(rate, int) or isinstance(rate, bool) or not 1000 <= rate <= 384000:
            raise FrameError(f"audio-chunk: rate {rate!r} is not a sample rate (1000-384000 Hz)")
        try:
            samples = decode_pcm(chunk.audio, width, channels, "audio-chunk")
        except AudioFormatError as exc:
            raise FrameError(str(exc)) from exc
        self.seconds += len(samples) / rate
        if self.seconds > self.max_seconds:
            raise RequestError(f"more than {self.max_seconds:g} s of audio in one request", "too_large", close=True)
        if rate != self._rate:
            self._flush()
            self._rate = rate
            self._resampler = StreamResampler(rate, SAMPLE_RATE)
        assert self._resampler is not None
        self._parts.append(self._resampler.process(samples))

    def _flush(self) -> None:
        if self._resampler is not None:
            self._parts.append(self._resampler.flush())

    def audio(self) -> np.ndarray:
        self._flush()
        self._resampler = None
        self._rate = None
        if not self._parts:
            return np.zeros(0, dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(self._parts), dtype=np.float32)


def audio_events(audio: Any, rate: int, chunk_samples: int) -> list[Event]:
    """One rendered chunk (`Audio`) as audio-chunk events of 16-bit mono PCM at `rate`."""
    if audio.sample_rate != rate:
        audio = audio.resampled(rate)
    pcm = float_to_pcm16(audio.samples)
    step = chunk_samples * 2
    return [AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i : i + step]).event() for i in range(0, len(pcm), step)]


def split_sentences(text: str) -> tuple[list[str], str]:
    """Complete sentences of streamed text, and the rest still being written."""
    parts = _SENTENCE_END.split(text)
    return [p.strip() for p in parts[:-1] if p.strip()], parts[-1]


# -- one connection ----------------------------------------------------------------------------------


class _Synthesis:
    """State of one synthesize-start ... synthesize-stop stream."""

    def __init__(self, engine: str | None, voice: str | None) -> None:
        self.engine = engine
        self.voice = voice
        self.pending = ""
        self.chars = 0
        self.rate: int | None = None  # set when audio-start has been sent


class WyomingHandler(AsyncEventHandler):
    """Serves one connection; requests on it are answered in order."""

    def __init__(self, server: WyomingServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.server = server
        self.settings = server.settings
        self.backend = server.backend
        self.id = f"wyoming:{next(server.ids)}"
        peer = writer.get_extra_info("peername")
        self.peer_host: str | None = peer[0] if isinstance(peer, tuple) and peer else None
        self._out = asyncio.Lock()
        self._streaming = asyncio.Lock()
        self._asr_options: dict[str, Any] | None = None
        self._asr_name: str | None = None
        self._audio: AudioCollector | None = None
        self._synthesis: _Synthesis | None = None

    # -- connection life -----------------------------------------------------------------------

    async def run(self) -> None:
        """Read capped events until the peer leaves, breaks the protocol or a cap."""
        try:
            refusal = self.server.admit(self)
            if refusal is not None:
                log.warning("Wyoming: refused %s: %s", self.peer_host or "a unix peer", refusal[1])
                await self._send_quietly(Error(text=refusal[1], code=refusal[0]).event())
                return
            while True:
                try:
                    event = await read_capped_event(self.reader, self.settings)
                    if event is None:
                        break
                    if not await self._serve(event):
                        break
                except FrameError as exc:
                    log.warning("Wyoming %s (%s): closing: %s", self.id, self.peer_host, exc)
                    await self._send_quietly(Error(text=str(exc), code=exc.code).event())
                    break
        except (ConnectionError, OSError) as exc:
            log.info("Wyoming %s: connection lost (%s)", self.id, exc)
        finally:
            self.server.release(self)
            self._audio = None
            self.writer.close()

    async def _serve(self, event: Event) -> bool:
        try:
            return await self.handle_event(event)
        except RequestError as exc:
            log.info("Wyoming %s: %s: %s", self.id, event.type, exc)
            await self._send(Error(text=str(exc), code=exc.code).event())
            return not exc.close
        except (FrameError, ConnectionError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
            log.exception("Wyoming %s: %s failed", self.id, event.type)
            self.backend.on_error("wyoming", f"{event.type}: {type(exc).__name__}: {exc}")
            await self._send(Error(text=f"{type(exc).__name__}: {exc}", code="internal_error").event())
            return True

    async def _send(self, *events: Event) -> None:
        async with self._out:
            for event in events:
                await self.write_event(event)

    async def _send_quietly(self, event: Event) -> None:
        try:
            await asyncio.wait_for(self._send(event), timeout=2)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass

    async def _call(self, priority: Priority, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in a worker thread, its model work at `priority`."""
        return await asyncio.get_running_loop().run_in_executor(self.server.executor, _at_priority, priority, fn, args)

    # -- events --------------------------------------------------------------------------------

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            await self._send(self.server.info().event())
        elif Ping.is_type(kind):
            await self._send(Pong(text=_parse(Ping, event).text).event())
        elif Transcribe.is_type(kind):
            request = _parse(Transcribe, event)
            self._asr_options = _options(request.context)
            self._asr_name = request.name
            self._audio = None
        elif AudioStart.is_type(kind):
            _parse(AudioStart, event)
            self._audio = AudioCollector(self.settings.max_audio_seconds)
        elif AudioChunk.is_type(kind):
            if self._audio is None:  # chunks without audio-start: start implicitly
                self._audio = AudioCollector(self.settings.max_audio_seconds)
            self._audio.add(_parse(AudioChunk, event))
        elif AudioStop.is_type(kind):
            with SCHEDULER.pause_background():  # a person is waiting for this command
                await self._transcribe()
        elif Transcript.is_type(kind):
            transcript = _parse(Transcript, event)
            await self._handle_text(_text_field(transcript.text, "transcript", self.settings.max_text_chars),
                                    speak=bool(_options(transcript.context).get("speak")))
        elif Recognize.is_type(kind):
            request = _parse(Recognize, event)
            await self._recognize(_text_field(request.text, "recognize", self.settings.max_text_chars))
        elif Synthesize.is_type(kind):
            if self._synthesis is None:  # inside a stream it only repeats the text, for old servers
                request = _parse(Synthesize, event)
                text = _text_field(request.text, "synthesize", self.settings.max_text_chars)
                engine, voice = self._voice(request.voice)
                await self._say(text, engine, voice)
        elif SynthesizeStart.is_type(kind):
            engine, voice = self._voice(_parse(SynthesizeStart, event).voice)
            self._synthesis = _Synthesis(engine, voice)
        elif SynthesizeChunk.is_type(kind):
            await self._synthesis_chunk(_parse(SynthesizeChunk, event).text)
        elif SynthesizeStop.is_type(kind):
            await self._synthesis_stop()
        else:
            log.debug("Wyoming %s: ignoring %s", self.id, kind)  # the protocol's rule for unknown events
        return True

    # -- asr -----------------------------------------------------------------------------------

    def _guided(self) -> bool:
        options = self._asr_options or {}
        if isinstance(options.get("guided"), bool):
            return options["guided"]
        if self._asr_name:
            return self._asr_name.endswith(GUIDED_SUFFIX)
        return self.settings.guided

    async def _transcribe(self) -> None:
        collected, self._audio = self._audio, None
        options, self._asr_options = self._asr_options or {}, None
        guided = self._guided()
        self._asr_name = None
        transcribe = self.backend.transcribe
        if transcribe is None:
            raise RequestError("speech recognition is not loaded in this service", "unavailable")
        audio = collected.audio() if collected is not None else np.zeros(0, dtype=np.float32)
        text = ""
        if len(audio) >= SAMPLE_RATE // 10:  # under 0.1 s is nothing anyone said
            started = time.perf_counter()
            text = await self._call(Priority.COMMAND, transcribe, audio, guided)
            self.backend.observe("asr", time.perf_counter() - started)
        await self._send(Transcript(text=text, language="en").event())
        if options.get("handle"):
            await self._handle_text(text, speak=bool(options.get("speak")))

    # -- handle and intent -----------------------------------------------------------------------

    async def _match(self, text: str) -> Any:
        commands = self.backend.commands()
        started = time.perf_counter()
        match = await self._call(Priority.COMMAND, commands.match, text)
        self.backend.observe("match", time.perf_counter() - started)
        return match

    async def _handle_text(self, text: str, *, speak: bool) -> None:
        dispatcher = self.backend.dispatcher()
        if dispatcher is None:
            raise RequestError("no handler dispatcher in this service", "unavailable")
        match = await self._match(text) if text.strip() else None
        if match is None:
            reply = NOT_UNDERSTOOD if text.strip() else None
            await self._send(NotHandled(text=reply, context={"audio": False}).event())
            return
        started = time.perf_counter()
        outcome = await self._call(Priority.COMMAND, self._run_handler, dispatcher, match)
        self.backend.observe("handler", time.perf_counter() - started)
        audio = bool(speak and outcome.reply and self.backend.speech is not None)
        result = Handled if outcome.ok else NotHandled
        await self._send(result(text=outcome.reply, context={"audio": audio, "intent": match.intent}).event())
        if audio:
            await self._say(outcome.reply, None, None)

    def _run_handler(self, dispatcher: Any, match: Any) -> Any:
        """In a worker thread: the handler runs with this connection as its timers' owner."""
        token = timer_owner.set(self.id)
        try:
            return dispatcher.handle(match)
        finally:
            timer_owner.reset(token)

    async def _recognize(self, text: str) -> None:
        match = await self._match(text) if text.strip() else None
        if match is None:
            await self._send(NotRecognized(text=NOT_UNDERSTOOD).event())
            return
        entities = [Entity(name=str(name), value=_jsonable(value)) for name, value in match.slots.items()]
        await self._send(Intent(name=match.intent, entities=entities, context={"exact": bool(match.exact)}).event())

    # -- tts -----------------------------------------------------------------------------------

    def _voice(self, requested: Any) -> tuple[str | None, str | None]:
        """A SynthesizeVoice -> (engine, voice); None, None: the service's configured voice."""
        name = getattr(requested, "name", None)
        if not name:
            return None, None
        if not isinstance(name, str):
            raise RequestError("voice name must be a string", "bad_request")
        for choice in self.backend.voices():
            if choice.name == name:
                return choice.engine, choice.voice
        raise RequestError(f"unknown voice {name!r} (describe lists the voices)", "unknown_voice")

    async def _say(self, text: str, engine: str | None, voice: str | None) -> None:
        """One whole audio-start ... audio-stop stream (never interleaved with another on this
        connection, e.g. a timer's announcement arriving during a reply)."""
        async with self._streaming:
            with SCHEDULER.pause_background():
                rate = await self._speak(text, engine, voice, None)
                if rate is None:  # nothing to say: still a well-formed (empty) stream
                    await self._send(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
                await self._send(AudioStop().event())

    async def _speak(self, text: str, engine: str | None, voice: str | None, rate: int | None) -> int | None:
        """Stream `text`'s audio as the engine renders it; sends audio-start first unless `rate`
        says it was sent already. Returns the stream's rate (None: nothing was said)."""
        speech = self.backend.speech
        if speech is None:
            raise RequestError("speech synthesis is not loaded in this service", "unavailable")
        if not text.strip():
            return rate
        started = time.perf_counter()
        chunks = speech.stream(text, voice, engine)
        try:
            first = True
            while True:
                chunk = await self._call(Priority.LIVE, next, chunks, None)
                if chunk is None:
                    break
                if first:
                    self.backend.observe("tts", time.perf_counter() - started)
                    first = False
                if rate is None:
                    rate = int(chunk.sample_rate)
                    await self._send(AudioStart(rate=rate, width=2, channels=1).event())
                await self._send(*audio_events(chunk, rate, self.settings.chunk_samples))
        except ValueError as exc:  # empty after clean-up, unknown voice
            raise RequestError(str(exc), "bad_request") from exc
        finally:
            await self._call(Priority.LIVE, chunks.close)  # a peer gone mid-reply: stop rendering
        return rate

    async def _synthesis_chunk(self, text: Any) -> None:
        stream = self._synthesis
        if stream is None:
            raise RequestError("synthesize-chunk outside synthesize-start ... synthesize-stop", "bad_request")
        text = _text_field(text, "synthesize-chunk", self.settings.max_text_chars)
        stream.chars += len(text)
        if stream.chars > self.settings.max_text_chars:
            self._synthesis = None
            raise RequestError(f"streamed text exceeds the cap of {self.settings.max_text_chars} characters",
                               "too_large", close=True)
        sentences, stream.pending = split_sentences(stream.pending + text)
        for sentence in sentences:
            with SCHEDULER.pause_background():
                stream.rate = await self._speak(sentence, stream.engine, stream.voice, stream.rate)

    async def _synthesis_stop(self) -> None:
        stream, self._synthesis = self._synthesis, None
        if stream is None:
            raise RequestError("synthesize-stop without synthesize-start", "bad_request")
        if stream.pending.strip():
            with SCHEDULER.pause_background():
                stream.rate = await self._speak(stream.pending, stream.engine, stream.voice, stream.rate)
        if stream.rate is not None:
            await self._send(AudioStop().event())
        await self._send(SynthesizeStopped().event())

    # -- timers (called on the event loop by the server) -----------------------------------------

    async def timer_event(self, kind: str, timer: Timer) -> None:
        try:
            if kind == "started":
                whole = int(round(timer.seconds))
                hours, rest = divmod(whole, 3600)
                minutes, seconds = divmod(rest, 60)
                await self._send(TimerStarted(id=str(timer.id), total_seconds=whole, name=None, start_hours=hours,
                                              start_minutes=minutes, start_seconds=seconds).event())
            elif kind == "cancelled":
                await self._send(TimerCancelled(id=str(timer.id)).event())
            elif kind == "finished":
                await self._send(TimerFinished(id=str(timer.id)).event())
                if timer.announce and self.backend.speech is not None:
                    await self._say(timer.announce, None, None)
        except (ConnectionError, OSError) as exc:
            log.info("Wyoming %s: timer %s not delivered (%s)", self.id, kind, exc)
        except Exception:  # noqa: BLE001
            log.exception("Wyoming %s: timer %s failed", self.id, kind)


def _at_priority(priority: Priority, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    with work_priority(priority):
        return fn(*args)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


# -- the server --------------------------------------------------------------------------------------


class WyomingServer:
    """Runs the handlers on an event loop of its own in a background thread."""

    def __init__(self, backend: WyomingBackend, settings: WyomingSettings = WyomingSettings()) -> None:
        settings.check()
        self.backend = backend
        self.settings = settings
        self.ids = itertools.count(1)
        self.executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="wyoming")
        self._connections: dict[str, WyomingHandler] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wyoming", daemon=True)
        self._server: AsyncServer | None = None
        self._zeroconf: Any = None
        self._remove_listener: Callable[[], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve; raises OSError (address in use) in the caller's thread."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        try:
            future.result(timeout=30)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            raise
        if self.backend.timers is not None:
            self._remove_listener = self.backend.timers.add_listener(self._timer_changed)
        log.info("Wyoming server on %s", self.settings.uri)

    async def _start(self) -> None:
        self._server = AsyncServer.from_uri(self.settings.uri)
        await self._server.start(lambda reader, writer: WyomingHandler(self, reader, writer))
        if self.settings.zeroconf:
            await self._announce()

    async def _announce(self) -> None:
        parsed = urlparse(self.settings.uri)
        if parsed.scheme != "tcp":
            log.warning("--zeroconf needs a tcp:// server; not announcing %s", self.settings.uri)
            return
        from wyoming.zeroconf import HomeAssistantZeroconf

        host: str | None = parsed.hostname
        try:
            if ipaddress.ip_address(host or "").version != 4 or ipaddress.ip_address(host or "").is_unspecified:
                host = None  # announce this machine's IPv4 address (the package announces IPv4 only)
        except ValueError:
            host = None  # a host name: announce this machine's address
        if host is not None and is_loopback(host):
            log.warning("announcing a loopback address over zeroconf: only this machine can use it "
                        "(bind --wyoming to this machine's LAN address, with --wyoming-allow-remote, for Home Assistant elsewhere)")
        self._zeroconf = HomeAssistantZeroconf(port=int(parsed.port or 0), name=self.settings.zeroconf_name, host=host)
        await self._zeroconf.register_server()
        log.info("Wyoming announced over zeroconf as %s._wyoming._tcp on %s:%s",
                 self._zeroconf.name, self._zeroconf.host, parsed.port)

    def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
        try:
            future.result(timeout=10)
        except Exception:  # noqa: BLE001 - shutting down: log and go on
            log.exception("stopping the Wyoming server")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _stop(self) -> None:
        if self._zeroconf is not None:
            try:
                await self._zeroconf._aiozc.async_close()  # the package keeps its AsyncZeroconf private
            except Exception:  # noqa: BLE001
                log.exception("closing zeroconf")
        if self._server is not None:
            await self._server.stop()

    def responsive(self, timeout: float = 5.0) -> bool:
        """True when the server's event loop runs a no-op within `timeout` (for the watchdog)."""
        if not self._thread.is_alive() or self._loop.is_closed():
            return False
        future = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop)
        try:
            future.result(timeout=timeout)
        except Exception:  # noqa: BLE001
            future.cancel()
            return False
        return True

    # -- connections ---------------------------------------------------------------------------

    def admit(self, handler: WyomingHandler) -> tuple[str, str] | None:
        """Register a new connection, or say why it is refused (code, message)."""
        if not self.settings.peer_allowed(handler.peer_host):
            return "forbidden", f"peer {handler.peer_host} is not allowed"
        with self._lock:
            if len(self._connections) >= self.settings.max_connections:
                return "busy", f"the server is serving its maximum of {self.settings.max_connections} connections"
            self._connections[handler.id] = handler
        return None

    def release(self, handler: WyomingHandler) -> None:
        with self._lock:
            self._connections.pop(handler.id, None)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def _timer_changed(self, kind: str, timer: Timer) -> bool:
        """TimerService listener (any thread): tell the timer's connection, if it is still here."""
        with self._lock:
            handler = self._connections.get(timer.owner) if timer.owner else None
        if handler is None or self._loop.is_closed():
            return False
        asyncio.run_coroutine_threadsafe(handler.timer_event(kind, timer), self._loop)
        return True

    # -- describe -----------------------------------------------------------------------------

    def info(self) -> Info:
        backend = self.backend
        commands = backend.commands()
        language = getattr(commands, "language", "en") or "en"
        intents = sorted(getattr(commands, "intents", {}))
        vocabulary = commands.vocabulary() if hasattr(commands, "vocabulary") else []
        asr = []
        if backend.transcribe is not None:
            model = backend.asr_model
            asr.append(AsrProgram(
                name="assistant-whisper", attribution=Attribution(name="OpenAI", url="https://github.com/openai/whisper"),
                installed=True, description="Whisper kept warm by the assistant", version=__version__,
                models=[
                    AsrModel(name=model, attribution=_ATTRIBUTION, installed=True, version=None, languages=[language],
                             description=f"Whisper {model}, free transcription"),
                    AsrModel(name=model + GUIDED_SUFFIX, attribution=_ATTRIBUTION, installed=True, version=None,
                             languages=[language],
                             description=f"Whisper {model} guided by the active commands ({len(vocabulary)} words: "
                                         + ", ".join(vocabulary[:40]) + (", ..." if len(vocabulary) > 40 else "") + ")"),
                ],
            ))
        tts = []
        if backend.speech is not None:
            tts.append(TtsProgram(
                name="assistant-voices", attribution=_ATTRIBUTION, installed=True, version=__version__,
                description="The assistant's voices (Tortoise with cached latents, Piper, espeak-ng) and reply cache",
                voices=[TtsVoice(name=v.name, attribution=_ATTRIBUTION, installed=True, version=None, description=v.description,
                                 languages=[language]) for v in backend.voices()],
                supports_synthesize_streaming=True,
            ))
        summary = f"{len(intents)} intents: " + ", ".join(intents)
        handle = [HandleProgram(
            name="assistant-intents", attribution=_ATTRIBUTION, installed=True, version=__version__,
            description="The assistant's intents and handlers", supports_home_control=True,
            models=[HandleModel(name="commands", attribution=_ATTRIBUTION, installed=True, version=None,
                                description=summary, languages=[language])],
        )]
        intent = [IntentProgram(
            name="assistant-intents", attribution=_ATTRIBUTION, installed=True, version=__version__,
            description="The assistant's intents (recognition only, no handler runs)",
            models=[IntentModel(name="commands", attribution=_ATTRIBUTION, installed=True, version=None,
                                description=summary, languages=[language])],
        )]
        return Info(asr=asr, tts=tts, handle=handle, intent=intent)
