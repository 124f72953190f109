"""Satellite mode: a small machine's microphone, VAD and speaker, the central assistant's models.

`assistant satellite --server tcp://HOST:10300` hears each spoken command with the same VAD
segmenter as the listen loop, sends the segment to the central `assistant serve --wyoming` and
plays the reply it gets back. No Whisper, no Tortoise, no torch on this side: numpy, soxr,
webrtcvad, PortAudio and the `wyoming` package (its RSS is reported in docs/wyoming.md).

One exchange per command, on one long-lived connection: `transcribe` with context
`{"assistant": {"handle": true, "speak": true}}`, the segment as audio-start/chunk/stop, and the
server answers transcript -> handled | not-handled -> the reply as audio-start/chunk/stop. The
usual Wyoming pipeline (asr, then handle, then tts) would be three round trips and would send
the transcript and the reply text back and forth; one exchange on the satellite's own
connection also means a reply can only ever reach the satellite that asked. The same connection
brings the timers this satellite set (timer-started/cancelled/finished) and, when one finishes,
its announcement as audio, so a timer set in the kitchen rings in the kitchen.

The microphone is muted (its frames fed to the segmenter as silence) while a reply is arriving
or playing, so the satellite never sends its own voice back. When the server goes away the
satellite reconnects with exponential backoff; commands heard from a live microphone meanwhile
are dropped (a command that runs a minute late is worse than none), a file's wait for the
server.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted

from assistant.audio import SAMPLE_RATE, decode_pcm, float_to_pcm16
from assistant.audio.clip import Audio
from assistant.vad import SegmenterSettings, SpeechSegment, VadSegmenter

log = logging.getLogger(__name__)

_END = object()


@dataclass(frozen=True)
class SatelliteSettings:
    """How the satellite talks to the central assistant."""

    server: str = "tcp://127.0.0.1:10300"
    """The central `assistant serve --wyoming` (tcp://HOST:PORT or unix:///PATH)."""
    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)
    """End-of-speech detection, as in the listen loop."""
    guided: bool = True
    """Ask for recognition guided by the server's commands (what a satellite says is meant to
    be a command); False: free transcription."""
    chunk_samples: int = 1024
    """Samples per audio-chunk sent (64 ms at 16 kHz)."""
    connect_timeout_seconds: float = 5.0
    """Give up one connection attempt after this long."""
    reply_timeout_seconds: float = 60.0
    """Give up on an exchange (and reconnect) when the server has not finished it by then."""
    backoff_min_seconds: float = 0.5
    """First wait before reconnecting; doubled after each failure..."""
    backoff_max_seconds: float = 10.0
    """...up to this."""
    queue_size: int = 4
    """Commands waiting to be sent; from a live microphone the oldest is dropped beyond this."""

    def __post_init__(self) -> None:
        if not 0 < self.backoff_min_seconds <= self.backoff_max_seconds:
            raise ValueError("backoff_min_seconds must be positive and at most backoff_max_seconds")
        if self.queue_size < 1 or self.chunk_samples < 1:
            raise ValueError("queue_size and chunk_samples must be at least 1")


@dataclass
class Exchange:
    """One command sent and what came back."""

    start: float
    """Stream seconds where the speech began."""
    transcript: str | None = None
    handled: bool | None = None
    reply: str | None = None
    reply_seconds: float = 0.0
    error: str | None = None
    expects_audio: bool = False
    seconds: float = 0.0
    """From the end of the segment being sent to the end of the reply."""


def backoff_delays(minimum: float, maximum: float) -> Any:
    """0.5, 1, 2, 4, ... capped (reconnect waits)."""
    delay = minimum
    while True:
        yield delay
        delay = min(maximum, delay * 2)


class Satellite:
    """Runs until the source ends (a file) or `stop()` (a microphone); `run()` returns the number
    of exchanges that failed."""

    def __init__(self, source: Any, player: Any, settings: SatelliteSettings = SatelliteSettings(), *,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.source = source
        self.player = player
        self.settings = settings
        self.on_event = on_event or (lambda event: log.info("%s", event))
        self.exchanges: list[Exchange] = []
        self.connected = False
        self.connections = 0
        """Successful connections so far (more than one: it reconnected)."""
        self._segments: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self._stopping = threading.Event()
        self._replying = threading.Event()
        self._current: Exchange | None = None
        self._done: asyncio.Event | None = None
        self._reply_rate: int | None = None
        self._reply_started = 0.0
        self._getter: asyncio.Task | None = None

    # -- capture (a thread) --------------------------------------------------------------------

    def _muted(self) -> bool:
        return self._replying.is_set() or bool(getattr(self.player, "is_playing", False))

    def _capture(self) -> None:
        segmenter = VadSegmenter(self.settings.segmenter)
        realtime = bool(getattr(self.source, "realtime", False))
        try:
            for frame in self.source.frames():
                if self._stopping.is_set():
                    return
                segment = segmenter.feed(frame, muted=self._muted())
                if segment is not None:
                    self._enqueue(segment, realtime)
            if not self._stopping.is_set():
                segment = segmenter.flush()
                if segment is not None:
                    self._enqueue(segment, realtime)
        except Exception as exc:  # noqa: BLE001 - reported; the satellite ends with the input
            log.exception("capture failed")
            self.on_event({"event": "error", "stage": "capture", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            self._segments.put(_END)

    def _enqueue(self, segment: SpeechSegment, realtime: bool) -> None:
        self.on_event({"event": "speech", "start": round(segment.start, 3), "end": round(segment.end, 3)})
        if not realtime:
            self._segments.put(segment)  # a file waits for the server
            return
        if not self.connected:
            log.warning("not connected to %s: dropped the command at %.2f s", self.settings.server, segment.start)
            return
        while True:
            try:
                self._segments.put_nowait(segment)
                return
            except queue.Full:
                try:
                    old = self._segments.get_nowait()
                except queue.Empty:
                    continue
                log.warning("the server is falling behind: dropped the command at %.2f s", old.start)

    # -- network (the event loop) --------------------------------------------------------------

    def run(self) -> int:
        capture = threading.Thread(target=self._capture, name="satellite-capture", daemon=True)
        capture.start()
        try:
            asyncio.run(self._network())
        finally:
            self.stop()
            capture.join(5)
        return sum(1 for exchange in self.exchanges if exchange.error)

    def stop(self) -> None:
        self._stopping.set()
        try:
            self.source.close()
        except Exception as exc:  # noqa: BLE001 - stopping must not fail
            log.warning("closing the audio source failed: %s", exc)

    async def _next_segment(self) -> Any:
        return await asyncio.to_thread(self._segments.get)

    async def _network(self) -> None:
        delays = backoff_delays(self.settings.backoff_min_seconds, self.settings.backoff_max_seconds)
        pending: Any = None  # a segment taken from the queue but not yet answered
        while not self._stopping.is_set():
            client = AsyncClient.from_uri(self.settings.server, connect_timeout=self.settings.connect_timeout_seconds)
            try:
                await client.connect()
            except (OSError, asyncio.TimeoutError) as exc:
                delay = next(delays)
                log.warning("cannot reach %s (%s); retrying in %.1f s", self.settings.server, exc, delay)
                self.on_event({"event": "disconnected", "retry_seconds": delay})
                await asyncio.sleep(delay)
                continue
            delays = backoff_delays(self.settings.backoff_min_seconds, self.settings.backoff_max_seconds)
            self.connected = True
            self.connections += 1
            self.on_event({"event": "connected", "server": self.settings.server})
            reader = asyncio.create_task(self._read(client))
            try:
                pending = await self._serve(client, reader, pending)
                if pending is _END:
                    return
            finally:
                self.connected = False
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                try:
                    await client.disconnect()
                except (ConnectionError, OSError) as exc:  # the server already dropped us: reconnect all the same
                    log.info("closing the old connection: %s", exc)
                self._replying.clear()
            if pending is not None and getattr(self.source, "realtime", False):
                pending = None  # a live command is not replayed after a reconnect

    async def _serve(self, client: AsyncClient, reader: asyncio.Task, pending: Any) -> Any:
        """Send commands until the input ends (returns _END) or the connection breaks (returns
        the command in flight, if any)."""
        while True:
            segment = pending
            if segment is None:
                # One waiting getter at a time, kept across reconnections, so commands stay in order.
                if self._getter is None:
                    self._getter = asyncio.create_task(self._next_segment())
                await asyncio.wait({self._getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not self._getter.done():
                    return None  # the server went away while we waited
                segment, self._getter = self._getter.result(), None
            if segment is _END:
                await self._drain_replies(reader)
                return _END
            pending = segment
            if not await self._exchange(client, reader, segment):
                return pending if reader.done() else None
            pending = None

    async def _drain_replies(self, reader: asyncio.Task) -> None:
        """End of input: let an announcement that is arriving finish playing."""
        while self._replying.is_set() and not reader.done():
            await asyncio.sleep(0.05)

    async def _exchange(self, client: AsyncClient, reader: asyncio.Task, segment: SpeechSegment) -> bool:
        """Send one command and wait for its whole answer; False when the connection failed."""
        exchange = Exchange(start=round(segment.start, 3))
        self._current, self._done = exchange, asyncio.Event()
        pcm = float_to_pcm16(segment.audio)
        step = self.settings.chunk_samples * 2
        options = {"handle": True, "speak": True, "guided": self.settings.guided}
        try:
            await client.write_event(Transcribe(language="en", context={"assistant": options}).event())
            await client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
            for offset in range(0, len(pcm), step):
                await client.write_event(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=pcm[offset : offset + step]).event())
            await client.write_event(AudioStop().event())
        except (ConnectionError, OSError) as exc:
            exchange.error = f"sending failed: {exc}"
            self._finish(exchange)
            return False
        sent = time.perf_counter()
        done = asyncio.create_task(self._done.wait())
        await asyncio.wait({done, reader}, timeout=self.settings.reply_timeout_seconds, return_when=asyncio.FIRST_COMPLETED)
        ok = done.done()
        done.cancel()
        exchange.seconds = round(time.perf_counter() - sent, 3)
        if not ok:
            exchange.error = exchange.error or ("the connection closed mid-exchange" if reader.done()
                                                else f"no answer within {self.settings.reply_timeout_seconds:g} s")
        self._finish(exchange)
        return ok

    def _finish(self, exchange: Exchange) -> None:
        self._current, self._done = None, None
        self.exchanges.append(exchange)
        self.on_event({"event": "exchange", "start": exchange.start, "transcript": exchange.transcript,
                       "handled": exchange.handled, "reply": exchange.reply, "reply_seconds": round(exchange.reply_seconds, 3),
                       "seconds": exchange.seconds, "error": exchange.error})

    async def _read(self, client: AsyncClient) -> None:
        """Every event from the server, for as long as the connection lasts."""
        while True:
            event = await client.read_event()
            if event is None:
                log.warning("the server closed the connection")
                return
            self._on_server_event(event)

    def _on_server_event(self, event: Event) -> None:
        exchange, kind = self._current, event.type
        if Transcript.is_type(kind) and exchange is not None:
            exchange.transcript = Transcript.from_event(event).text
        elif (Handled.is_type(kind) or NotHandled.is_type(kind)) and exchange is not None:
            answer = Handled.from_event(event) if Handled.is_type(kind) else NotHandled.from_event(event)
            exchange.handled = Handled.is_type(kind)
            exchange.reply = answer.text
            exchange.expects_audio = bool((answer.context or {}).get("audio"))
            if not exchange.expects_audio:
                self._complete()
        elif AudioStart.is_type(kind):
            self._reply_rate = AudioStart.from_event(event).rate
            self._reply_started = time.perf_counter()
            self._replying.set()
        elif AudioChunk.is_type(kind):
            chunk = AudioChunk.from_event(event)
            samples = decode_pcm(chunk.audio, chunk.width, chunk.channels, "reply audio")
            if exchange is not None:
                exchange.reply_seconds += len(samples) / chunk.rate
            if len(samples):
                self.player.play(Audio(samples, chunk.rate))
        elif AudioStop.is_type(kind):
            self._replying.clear()
            if exchange is not None and exchange.expects_audio:
                self._complete()
        elif TimerStarted.is_type(kind):
            started = TimerStarted.from_event(event)
            self.on_event({"event": "timer-started", "id": started.id, "seconds": started.total_seconds})
        elif TimerCancelled.is_type(kind):
            self.on_event({"event": "timer-cancelled", "id": TimerCancelled.from_event(event).id})
        elif TimerFinished.is_type(kind):
            self.on_event({"event": "timer-finished", "id": TimerFinished.from_event(event).id})
        elif Error.is_type(kind):
            error = Error.from_event(event)
            log.warning("server error: %s (%s)", error.text, error.code)
            if exchange is not None:
                exchange.error = f"{error.code}: {error.text}"
                self._replying.clear()
                self._complete()

    def _complete(self) -> None:
        if self._done is not None:
            self._done.set()
