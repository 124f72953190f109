"""The listen loop: source -> segmenter -> ASR -> intent matcher -> handler -> reply.

Two threads. The capture thread (the caller of `run()`) only reads frames and feeds the VAD
segmenter, which costs microseconds per 30 ms frame, so a live microphone is always drained.
Finished speech segments go through a bounded queue to one recognition worker, which asks the
`Recognizer` (assistant/asr/recognizer.py: the recognition policy and the active commands) what
was said and which command it is, runs the handler and hands the reply to `speak`. When recognition falls behind a live source
the oldest waiting segment is dropped (and logged) rather than stalling capture; a file or
stdin source is not real time, so there the capture thread simply waits for room.

While `is_speaking()` is true the segmenter gets `muted=True`: the assistant never hears its
own replies, and so nothing said during a reply (not even "stop") is heard. An exception in any stage is logged and reported as an "error" event, and the loop
goes on with the next frame or segment.

Events (`on_event`, one dict each; `--events jsonl` prints them):
  {"event": "speech", "start": s, "end": s}
  {"event": "transcript", "text": str, "start": s, "end": s, "asr_ms": float, "path": "short"|"full"}
  {"event": "intent", "intent": str, "slots": {...}, "text": str, "latency_ms": float}
  {"event": "no-match", "text": str}
  {"event": "handler", "intent": str, "ok": bool}
  {"event": "reply", "text": str}
  {"event": "error", "stage": str, "message": str}
`start`/`end` are stream seconds of the speech (silence excluded). `latency_ms` runs from the
moment the segmenter closed the segment to the handler's start: the silence window that
confirms the end of speech is excluded, queueing, recognition and matching are included.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from assistant.asr.recognizer import CommandMatch, Recognition, RecognitionError, Recognizer
from assistant.scheduler import SCHEDULER
from assistant.audio import AudioSource
from assistant.vad import SegmenterSettings, SpeechSegment, VadSegmenter

log = logging.getLogger(__name__)


class HandlerOutcome(Protocol):
    """What running a command's handler gave (an `assistant.handlers.HandlerOutcome`)."""

    intent: str
    ok: bool
    reply: str | None


class CommandRunner(Protocol):
    """Runs the handler of a matched command; never raises (an `assistant.handlers.Dispatcher`)."""

    def handle(self, match: CommandMatch) -> HandlerOutcome: ...


@dataclass(frozen=True)
class LoopSettings:
    """How the loop cuts and queues speech (how a segment is recognised: `RecognizerSettings`)."""

    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)
    """Where speech starts and ends (VAD mode, silence window, minimum speech)."""
    queue_size: int = 4
    """Segments waiting for recognition before the oldest is dropped (live sources only)."""

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {self.queue_size!r}")


@dataclass
class LoopStats:
    """Per-stage timings in milliseconds, one entry per frame batch / segment (for bench and metrics)."""

    frames: int = 0
    vad_ms: float = 0.0
    asr_ms: list[float] = field(default_factory=list)
    match_ms: list[float] = field(default_factory=list)
    handler_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    second_passes: int = 0
    dropped_segments: int = 0
    errors: int = 0


@dataclass
class _Queued:
    segment: SpeechSegment
    closed_at: float  # perf_counter when the segmenter closed it


_END = object()


def _print_event(event: dict) -> None:
    log.info("%s", event)


class ListenLoop:
    """Capture, queueing and the recognition worker; what a segment means is the Recognizer's."""

    def __init__(
        self,
        source: AudioSource,
        recognizer: Recognizer,
        dispatcher: CommandRunner,
        *,
        settings: LoopSettings = LoopSettings(),
        speak: Callable[[str], None] | None = None,
        is_speaking: Callable[[], bool] = lambda: False,
        on_event: Callable[[dict], None] = _print_event,
    ) -> None:
        self.source = source
        self.recognizer = recognizer
        self.dispatcher = dispatcher
        self.settings = settings
        self.speak = speak
        self.is_speaking = is_speaking
        self.on_event = on_event
        self.stats = LoopStats()
        self._queue: queue.Queue[_Queued | object] = queue.Queue(maxsize=settings.queue_size)
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None

    # -- public -----------------------------------------------------------------------------

    def run(self) -> None:
        """Listen until the source ends or `stop()` is called; every queued segment is finished
        before returning at the end of input (a file's last command is not lost)."""
        self._stopping.clear()
        self._worker = threading.Thread(target=self._recognise_forever, name="listen-asr", daemon=True)
        self._worker.start()
        try:
            self._capture()
        finally:
            self._queue.put(_END)
            self._worker.join()
            self._worker = None

    def stop(self) -> None:
        """End `run()` soon: capture stops, queued segments are abandoned."""
        self._stopping.set()
        try:
            self.source.close()
        except Exception as exc:  # noqa: BLE001 - stopping must not fail
            log.warning("closing the audio source failed: %s", exc)
        self._drain_queue()

    # -- capture thread ---------------------------------------------------------------------

    def _capture(self) -> None:
        segmenter = VadSegmenter(self.settings.segmenter)
        realtime = bool(getattr(self.source, "realtime", False))
        for frame in self.source.frames():
            if self._stopping.is_set():
                return
            started = time.perf_counter()
            try:
                segment = segmenter.feed(frame, muted=self._muted())
            except Exception as exc:  # noqa: BLE001 - a bad frame must not end listening
                self._error("vad", exc)
                continue
            finally:
                self.stats.frames += 1
                self.stats.vad_ms += (time.perf_counter() - started) * 1000
            if segment is not None:
                self._enqueue(segment, realtime)
        if not self._stopping.is_set():
            segment = segmenter.flush()
            if segment is not None:
                self._enqueue(segment, realtime)

    def _muted(self) -> bool:
        try:
            return bool(self.is_speaking())
        except Exception as exc:  # noqa: BLE001 - when unsure, keep listening
            self._error("is_speaking", exc)
            return False

    def _enqueue(self, segment: SpeechSegment, realtime: bool) -> None:
        self._emit({"event": "speech", "start": round(segment.start, 3), "end": round(segment.end, 3)})
        item = _Queued(segment, time.perf_counter())
        if not realtime:
            self._queue.put(item)
            return
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if old is _END:  # cannot happen while capturing; keep the end marker anyway
                    self._queue.put_nowait(old)
                    return
                self.stats.dropped_segments += 1
                log.warning(
                    "recognition is falling behind: dropped the speech at %.2f-%.2f s (queue of %d full)",
                    old.segment.start, old.segment.end, self.settings.queue_size,
                )

    def _drain_queue(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _END:
                self._queue.put_nowait(item)
                return

    # -- recognition worker -----------------------------------------------------------------

    def _recognise_forever(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._stopping.is_set():
                continue
            try:
                with SCHEDULER.pause_background():  # pre-rendering waits while a command is handled
                    self._recognise(item)
            except Exception as exc:  # noqa: BLE001 - one bad segment must not stop the worker
                self._error("loop", exc)

    def _recognise(self, item: _Queued) -> None:
        segment = item.segment
        try:
            result = self.recognizer.recognize(segment.audio)
        except RecognitionError as exc:
            self._error(exc.stage, exc.__cause__ or exc)
            return
        self._count(result)
        if not result.text:
            return
        self._emit({
            "event": "transcript", "text": result.text, "start": round(segment.start, 3), "end": round(segment.end, 3),
            "asr_ms": round(result.asr_ms, 1), "path": result.path,
        })
        match = result.match
        if match is None:
            self._emit({"event": "no-match", "text": result.text})
            return
        handler_start = time.perf_counter()
        latency_ms = (handler_start - item.closed_at) * 1000
        self.stats.latency_ms.append(latency_ms)
        self._emit({
            "event": "intent", "intent": match.intent, "slots": dict(match.slots), "text": match.text,
            "latency_ms": round(latency_ms, 1),
        })
        outcome = self.dispatcher.handle(match)  # never raises (CommandRunner contract)
        self.stats.handler_ms.append((time.perf_counter() - handler_start) * 1000)
        self._emit({"event": "handler", "intent": outcome.intent, "ok": bool(outcome.ok)})
        if outcome.reply:
            self._emit({"event": "reply", "text": outcome.reply})
            if self.speak is not None:
                try:
                    self.speak(outcome.reply)
                except Exception as exc:  # noqa: BLE001
                    self._error("speak", exc)

    def _count(self, result: Recognition) -> None:
        self.stats.asr_ms.append(result.asr_ms)
        self.stats.match_ms.append(result.match_ms)
        self.stats.second_passes += result.passes - 1

    # -- helpers ----------------------------------------------------------------------------

    def _emit(self, event: dict) -> None:
        try:
            self.on_event(event)
        except Exception as exc:  # noqa: BLE001 - a broken consumer must not stop listening
            log.error("event consumer failed on %s: %s", event.get("event"), exc)

    def _error(self, stage: str, exc: BaseException) -> None:
        self.stats.errors += 1
        log.error("%s failed: %s: %s", stage, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        self._emit({"event": "error", "stage": stage, "message": f"{type(exc).__name__}: {exc}"})
