"""The listen loop: source -> segmenter -> ASR -> intent matcher -> handler -> reply.

Two threads. The capture thread (the caller of `run()`) only reads frames and feeds the VAD
segmenter, which costs microseconds per 30 ms frame, so a live microphone is always drained.
Finished speech segments go through a bounded queue to one recognition worker, which asks the
`Recognizer` (assistant/asr/recognizer.py: the recognition policy and the active commands) what
was said and which command it is, runs the handler and hands the reply to `speak`. When recognition falls behind a live source
the oldest waiting segment is dropped (and logged) rather than stalling capture; a file or
stdin source is not real time, so there the capture thread simply waits for room.

Answering sooner: at the first pause in a command (`SegmenterSettings.pause_seconds`, ~0.2 s of
silence) the capture thread hands the speech so far to the worker as a speculative job. When
the Recognizer finds it a complete command that no longer command extends, the worker acts at
once and the capture thread closes the command at that pause; otherwise the command stays open
and the long window (`silence_seconds`) closes it, its recognition reusing the speculative
first pass when no speech followed the pause.

Barge-in (docs/bargein.md): while `is_speaking()` is true the loop keeps listening, but only for
the stop set. The segmenter gets `barge_in=True` (a command that starts then pauses after
`barge_in_pause_seconds` and is cut at `barge_in_max_seconds`), each frame is checked against
what the player is playing (`assistant.echo.EchoGate` over `played`: the reply's own echo is not
speech), and such a command is recognised by `Recognizer.barge_in` (only intents marked
`barge_in: true` match); a match calls `interrupt` (the reply stops) at once, then runs its
intent; anything else is ignored. With `LoopSettings.barge_in` False the segmenter gets
`muted=True` instead: the assistant hears nothing while it speaks (rooms without echo
cancellation). An exception in any stage is logged and reported as an "error" event, and the
loop goes on with the next frame or segment.

What a segment is heard as (a command, the answer to a confirmation question, or nothing
because a wake word is on and was not said) is the `Conversation`'s decision
(assistant/conversation.py); the loop tells it what it sees: the wake word (capture thread, when
a `WakeWordDetector` is given), muted frames, questions asked and replies given. While a
question waits or a wake word is on, no speculative early action is taken at a pause.

Events (`on_event`, one dict each; `--events jsonl` prints them):
  {"event": "speech", "start": s, "end": s}
  {"event": "transcript", "text": str, "start": s, "end": s, "asr_ms": float, "path": "guided"|"short"|"full",
   "confidence": float (0..1, only when a guided decode ran)}
  {"event": "intent", "intent": str, "slots": {...}, "text": str, "latency_ms": float,
   "eos_to_action_ms": float, "early": bool}
  {"event": "no-match", "text": str}
  {"event": "handler", "intent": str, "ok": bool}
  {"event": "reply", "text": str}
  {"event": "barge-in", "intent": str, "text": str, "eos_to_stop_ms": float, "at": "pause"|"close",
   "window_ms": float, "queued_ms": float, "recognise_ms": float, "pass_ms": [float, ...], "interrupt_ms": float}
  {"event": "barge-in-ignored", "text": str}
  {"event": "error", "stage": str, "message": str}
  {"event": "wake", "word": str, "at": s}                      (the wake word was heard)
  {"event": "ignored", "start": s, "end": s}                   (speech without the wake word)
  {"event": "confirm", "intent": str, "question": str}         (asked before a risky handler)
  {"event": "answer", "intent": str, "answer": "yes"|"no"|"other"|"timeout", "text": str}
`start`/`end` are stream seconds of the speech (silence excluded). `latency_ms` runs from the
moment the segmenter closed the segment (or found it complete at a pause) to the handler's
start: queueing, recognition and matching. `eos_to_action_ms` is what a person waits: from the
end of their speech (the last speech frame's arrival) to the handler's start, the silence that
closed the command included. `early`: closed at the first pause as a complete command.
A barge-in's `eos_to_stop_ms` (end of the speech -> the reply told to stop) is the sum of its
stages: `window_ms` of silence the segmenter waited for (at the short pause, or the closing
window), `queued_ms` behind other work of the worker, `recognise_ms` (Whisper's passes:
`pass_ms`, and matching) and `interrupt_ms` (the player's stop).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from assistant.asr.recognizer import CommandMatch, CommandMatcher, FirstPass, Recognition, RecognitionError, Recognizer
from assistant.echo import EchoGate, EchoSettings
from assistant.playback.reference import PlayedLevels
from assistant.scheduler import SCHEDULER
from assistant.audio import AudioSource
from assistant.audio.format import float_to_pcm16, pcm16_to_float
from assistant.conversation import ANSWERS, CANCELLED, Conversation, Pending, Route, WakeStripped, classify_answer
from assistant.wakeword import WakeWordDetector, strip_wake_phrase
from assistant.vad import SegmenterSettings, SpeechPause, SpeechSegment, VadSegmenter, segment_key

log = logging.getLogger(__name__)


class HandlerOutcome(Protocol):
    """What running a command's handler gave (an `assistant.handlers.HandlerOutcome`)."""

    intent: str
    ok: bool
    reply: str | None


class CommandRunner(Protocol):
    """Runs the handler of a matched command; never raises (an `assistant.handlers.Dispatcher`)."""

    def handle(self, match: CommandMatch) -> HandlerOutcome: ...

    def confirmation(self, match: CommandMatch) -> str | None:
        """The question to ask before running `match`; None: run it at once."""
        ...


@dataclass(frozen=True)
class LoopSettings:
    """How the loop cuts and queues speech (how a segment is recognised: `RecognizerSettings`)."""

    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)
    """Where speech starts and ends (VAD mode, silence window, minimum speech)."""
    queue_size: int = 4
    """Segments waiting for recognition before the oldest is dropped (live sources only)."""
    barge_in: bool = True
    """Listen for the stop set while a reply plays ("stop" cuts it). False: hear nothing while
    speaking, for a room where the reply comes back loud and there is no echo canceller."""
    echo: EchoSettings = field(default_factory=EchoSettings)
    """How the reply's own sound is told from a person talking over it (barge-in only)."""

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
    eos_to_action_ms: list[float] = field(default_factory=list)
    speculations: int = 0
    """Speculative recognitions run at a pause."""
    speculative_ms: list[float] = field(default_factory=list)
    """Whisper time of speculations that decided nothing (a command's own passes are in asr_ms,
    a reused speculative pass included)."""
    early: int = 0
    """Commands acted on at their first pause (no long silence window)."""
    second_passes: int = 0
    barge_ins: int = 0
    """Replies cut by a stop-set command spoken over them."""
    barge_in_ms: list[float] = field(default_factory=list)
    """End of that speech to the reply being told to stop (recognition included)."""
    barge_in_ignored: int = 0
    """Speech heard during a reply that was not in the stop set (not acted on)."""
    dropped_segments: int = 0
    ignored_segments: int = 0
    errors: int = 0


@dataclass
class _Queued:
    segment: SpeechSegment
    closed_at: float  # perf_counter when the segmenter closed it
    wake: float | None = None  # the wake word that lets it through (Conversation.wake_for)


@dataclass
class _Expiry:
    at: float  # stream seconds when a waiting question's time ran out (inf: the input ended)


@dataclass
class _Speculative:
    pause: SpeechPause
    paused_at: float  # perf_counter when the capture thread saw the pause


_END = object()


_REMEMBERED = 32  # far more commands than can be in flight (queue_size + one being recognised)


def _remember(bag: dict[int, None], key: int) -> None:
    bag[key] = None
    if len(bag) > _REMEMBERED:
        del bag[next(iter(bag))]


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
        conversation: Conversation | None = None,
        wake: WakeWordDetector | None = None,
        interrupt: Callable[[], None] | None = None,
        played: PlayedLevels | None = None,
    ) -> None:
        """`conversation` holds the confirmation, follow-up and wake-word windows (default: no
        wake word); `wake` is the detector for its wake word (required when it has one).
        `interrupt` stops the reply being spoken (barge-in); `played` is what the player is
        playing, for the echo check (None: nothing audible to check against, e.g. a WAV sink)."""
        if conversation is not None and conversation.wake_on and wake is None:
            raise ValueError(f"wake word {conversation.settings.wake_word!r} is on but no WakeWordDetector was given")
        self.source = source
        self.recognizer = recognizer
        self.dispatcher = dispatcher
        self.settings = settings
        self.speak = speak
        self.is_speaking = is_speaking
        self.on_event = on_event
        self.conversation = conversation or Conversation()
        self.wake = wake
        self._wake_commands: WakeStripped | None = None
        self.interrupt = interrupt
        self.echo_gate = EchoGate(played, settings.echo) if played is not None and settings.barge_in else None
        self.stats = LoopStats()
        self._queue: queue.Queue[_Queued | _Speculative | _Expiry | object] = queue.Queue(maxsize=settings.queue_size)
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        # worker -> capture: commands found complete at a pause, to be closed there
        self._close_requests: queue.SimpleQueue[SpeechPause] = queue.SimpleQueue()
        # Start frames (bounded, oldest out) of commands acted on at their pause (their segments
        # are not recognised again, a later pause of the same speech is not acted on again) and of segments whose "speech" event was sent; shared by the
        # capture thread and the worker under _lock.
        self._lock = threading.Lock()
        self._acted: dict[int, None] = {}
        self._announced: dict[int, None] = {}
        # worker only: the last speculative first pass, reused when the command closes on that audio
        self._speculated: tuple[tuple[int, int], FirstPass] | None = None
        # items put in the queue and not yet finished by the worker (or dropped): `wait_idle`
        self._outstanding = 0
        self._settled = threading.Condition(threading.Lock())

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

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued for or being recognised by the worker (every segment
        handed over so far has been recognised, its handler run and its reply handed to `speak`);
        False when `timeout` seconds pass first. Called between frames by a source that runs
        faster than real time (bench/soak.py, tests), it stands in for the seconds a person
        leaves between commands in a room; the loop itself never waits for it."""
        with self._settled:
            return self._settled.wait_for(lambda: self._outstanding == 0, timeout)

    def _track(self, change: int) -> None:
        with self._settled:
            self._outstanding += change
            if self._outstanding <= 0:
                self._settled.notify_all()

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
        conversation = self.conversation
        for frame in self.source.frames():
            if self._stopping.is_set():
                return
            started = time.perf_counter()
            self._close_complete(segmenter)
            muted = self._muted()
            try:
                if self.settings.barge_in:
                    echo = False
                    if self.echo_gate is not None:
                        samples, echo = self.echo_gate.process(pcm16_to_float(frame), time.monotonic())
                        if self.echo_gate.canceller is not None and self.echo_gate.canceller.converged:
                            frame = float_to_pcm16(samples)  # the reply's echo subtracted
                    out = segmenter.feed(frame, barge_in=muted, echo=echo)
                else:
                    out = segmenter.feed(frame, muted=muted)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not end listening
                self._error("vad", exc)
                continue
            finally:
                self.stats.frames += 1
                self.stats.vad_ms += (time.perf_counter() - started) * 1000
            now = segmenter.stream_seconds
            if muted:
                conversation.spoke(now)
            elif self.wake is not None:
                self._listen_for_wake(frame, now)
            if segmenter.paused is not None and (segmenter.paused.barge_in or self._may_speculate()):
                self._put(_Speculative(segmenter.paused, time.perf_counter()), realtime)
            if out is not None:
                self._enqueue(out, realtime)
            if not segmenter.in_speech and conversation.expiry_due(now):
                self._put(_Expiry(now), realtime)
        if not self._stopping.is_set():
            segment = segmenter.flush()
            if segment is not None:
                self._enqueue(segment, realtime)
            self._put(_Expiry(math.inf), realtime)  # a question left at the end of input gets no answer

    def _may_speculate(self) -> bool:
        """A head start only helps when the worker would get to it now: behind queued speech it
        would only delay that speech (and, in a full realtime queue, push it out)."""
        return self.conversation.may_speculate() and self._queue.empty()

    def _listen_for_wake(self, frame: bytes, now: float) -> None:
        assert self.wake is not None
        try:
            heard = self.wake.feed(frame)
        except Exception as exc:  # noqa: BLE001 - a failing detector must not end listening
            self._error("wake", exc)
            return
        if heard:
            self.conversation.heard_wake(now)
            self._emit({"event": "wake", "word": self.wake.settings.model, "at": round(now, 3)})

    def _close_complete(self, segmenter: VadSegmenter) -> None:
        """Close the commands the worker found complete (and acted on) at their pause."""
        while True:
            try:
                pause = self._close_requests.get_nowait()
            except queue.Empty:
                return
            segmenter.complete(pause)

    def _muted(self) -> bool:
        try:
            return bool(self.is_speaking())
        except Exception as exc:  # noqa: BLE001 - when unsure, keep listening
            self._error("is_speaking", exc)
            return False

    def _enqueue(self, segment: SpeechSegment, realtime: bool) -> None:
        start = segment_key(segment)[0]
        with self._lock:
            if start in self._acted:
                return  # acted on at its pause
            _remember(self._announced, start)
        self._emit({"event": "speech", "start": round(segment.start, 3), "end": round(segment.end, 3)})
        wake = self.conversation.wake_for(segment.start, segment.ended_at) if self.wake is not None else None
        self._put(_Queued(segment, time.perf_counter(), wake), realtime)

    def _put(self, item: _Queued | _Speculative | _Expiry, realtime: bool) -> None:
        self._track(+1)  # before it is in the queue: the worker may finish it at once
        if not realtime:
            self._queue.put(item)
            return
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                if isinstance(item, _Speculative):
                    self._track(-1)
                    return  # behind already: no head start; the long window still closes the command
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if old is _END:  # cannot happen while capturing; keep the end marker anyway
                    self._queue.put_nowait(old)
                    self._track(-1)
                    return
                self._track(-1)  # `old` leaves the queue unfinished
                if isinstance(old, _Speculative):
                    continue  # a speculation is only a head start: the command itself is still to come
                if isinstance(old, _Expiry):
                    continue  # the next segment expires the question anyway (Conversation.expire)
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
            self._track(-1)

    # -- recognition worker -----------------------------------------------------------------

    def _recognise_forever(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            try:
                if self._stopping.is_set():
                    continue
                with SCHEDULER.pause_background():  # pre-rendering waits while a command is handled
                    if isinstance(item, _Speculative):
                        self._speculate(item)
                    elif isinstance(item, _Expiry):
                        self._expire(item.at)
                    else:
                        self._recognise(item)
            except Exception as exc:  # noqa: BLE001 - one bad segment must not stop the worker
                self._error("loop", exc)
            finally:
                self._track(-1)

    def _speculate(self, item: _Speculative) -> None:
        pause = item.pause
        with self._lock:
            if pause.key[0] in self._acted:
                return  # acted on at an earlier pause: one command, one action
        if pause.barge_in:
            self._barge_in(pause.audio, pause.start, pause.end, item.paused_at, pause.paused_at - pause.end, pause)
            return
        if not self.conversation.may_speculate():
            return  # a question was asked meanwhile: the whole segment is its answer
        self.stats.speculations += 1
        try:
            result, first = self.recognizer.complete(pause.audio)
        except RecognitionError as exc:
            self._error(exc.stage, exc.__cause__ or exc)
            return
        self._speculated = (pause.key, first)
        if result is None:
            self.stats.speculative_ms.append(first.asr_ms)
            return
        with self._lock:
            _remember(self._acted, pause.key[0])
            announced = pause.key[0] in self._announced
        self._close_requests.put(pause)
        self.stats.early += 1
        speech_end_at = item.paused_at - (pause.paused_at - pause.end)
        if not announced:
            self._emit({"event": "speech", "start": round(pause.start, 3), "end": round(pause.end, 3)})
        self._act(result, pause.start, pause.end, item.paused_at, speech_end_at, early=True)

    def _recognise(self, item: _Queued) -> None:
        segment = item.segment
        key = segment_key(segment)
        with self._lock:
            if key[0] in self._acted:
                return  # acted on at its pause while this segment waited in the queue
        if segment.barge_in:
            self._barge_in(segment.audio, segment.start, segment.end, item.closed_at, segment.ended_at - segment.end, None)
            return
        spec, self._speculated = self._speculated, None
        reuse = spec[1] if spec is not None and spec[0] == key else None
        conversation = self.conversation
        self._expire(segment.start)
        route = conversation.route(segment.start, item.wake)
        if route is Route.IGNORE:
            self.stats.ignored_segments += 1
            self._emit({"event": "ignored", "start": round(segment.start, 3), "end": round(segment.end, 3)})
            return
        try:
            result = self.recognizer.recognize(segment.audio, reuse, self._matcher(route, item.wake))
        except RecognitionError as exc:
            self._error(exc.stage, exc.__cause__ or exc)
            return
        speech_end_at = item.closed_at - (segment.ended_at - segment.end)
        if route is Route.ANSWER:
            self._count(result)
            if result.text:
                self._emit({"event": "transcript", "text": result.text, "start": round(segment.start, 3),
                            "end": round(segment.end, 3), "asr_ms": round(result.asr_ms, 1), "path": result.path})
                self._answer(result.text, segment.end)
            return
        self._act(result, segment.start, segment.end, item.closed_at, speech_end_at, early=False, wake=item.wake)

    def _matcher(self, route: Route, wake: float | None) -> CommandMatcher | None:
        """What the segment is recognised against: yes/no, the commands behind the wake phrase,
        or (None) the active commands."""
        if route is Route.ANSWER:
            return ANSWERS
        if wake is None:
            return None
        commands = self.recognizer.commands
        if self._wake_commands is None or self._wake_commands.commands is not commands:
            assert self.wake is not None
            self._wake_commands = WakeStripped(commands, self.wake.phrase)
        return self._wake_commands

    def _answer(self, text: str, at: float) -> None:
        """The segment after a confirmation question: yes runs the command, anything else cancels."""
        kind = classify_answer(text)
        if kind == "none":
            return  # no words (a cough): the question keeps waiting until its time is up
        pending = self.conversation.take_answer()
        if pending is None:
            return
        self._emit({"event": "answer", "intent": pending.match.intent, "answer": kind, "text": text})
        if kind == "yes":
            self._handle(pending.match, at)
            return
        self._say(CANCELLED[kind])
        self.conversation.replied(at)

    def _expire(self, now: float) -> None:
        pending = self.conversation.expire(now)
        if pending is None:
            return
        self._emit({"event": "answer", "intent": pending.match.intent, "answer": "timeout", "text": ""})
        self._say(CANCELLED["timeout"])

    def _say(self, text: str) -> None:
        self._emit({"event": "reply", "text": text})
        if self.speak is not None:
            try:
                self.speak(text)
            except Exception as exc:  # noqa: BLE001
                self._error("speak", exc)

    def _barge_in(self, audio: np.ndarray, start: float, end: float, handed_at: float, window: float,
                  pause: SpeechPause | None) -> None:
        """Speech heard while a reply played: a stop-set command stops the reply at once and
        then runs; anything else is ignored. At a pause, a match also closes the command there.
        `handed_at`: perf_counter when the capture thread handed it over, `window` seconds of
        silence after the speech (the pause or the long window) later; the barge-in event
        breaks the time from the end of the speech to the reply's stop down into those stages."""
        speech_end_at = handed_at - window
        started = time.perf_counter()
        try:
            result = self.recognizer.barge_in(audio)
        except RecognitionError as exc:
            self._error(exc.stage, exc.__cause__ or exc)
            return
        recognised = time.perf_counter()
        if result.match is None:
            if result.text:
                self.stats.barge_in_ignored += 1
                self._emit({"event": "barge-in-ignored", "text": result.text})
            return
        if self.interrupt is not None:
            try:
                self.interrupt()
            except Exception as exc:  # noqa: BLE001 - the intent still runs
                self._error("interrupt", exc)
        stopped = time.perf_counter()
        stopped_ms = (stopped - speech_end_at) * 1000
        self.stats.barge_ins += 1
        self.stats.barge_in_ms.append(stopped_ms)
        self._emit({"event": "barge-in", "intent": result.match.intent, "text": result.text,
                    "eos_to_stop_ms": round(stopped_ms, 1), "at": "close" if pause is None else "pause",
                    "window_ms": round(window * 1000, 1), "queued_ms": round((started - handed_at) * 1000, 1),
                    "recognise_ms": round((recognised - started) * 1000, 1),
                    "pass_ms": [round(ms, 1) for ms in result.pass_ms],
                    "interrupt_ms": round((stopped - recognised) * 1000, 1)})
        if pause is not None:
            with self._lock:
                _remember(self._acted, pause.key[0])
            self._close_requests.put(pause)
        self._act(result, start, end, time.perf_counter(), speech_end_at, early=pause is not None)

    def _act(self, result: Recognition, start: float, end: float, closed_at: float, speech_end_at: float, *,
             early: bool, wake: float | None = None) -> None:
        """Report what was heard and run the command it names (or ask first, when it is risky)."""
        self._count(result)
        if not result.text:
            return
        transcript = {
            "event": "transcript", "text": result.text, "start": round(start, 3), "end": round(end, 3),
            "asr_ms": round(result.asr_ms, 1), "path": result.path,
        }
        if result.confidence is not None:
            transcript["confidence"] = round(result.confidence, 3)
        self._emit(transcript)
        if wake is not None:
            rest, _ = strip_wake_phrase(result.text, self.wake.phrase if self.wake is not None else "")
            if not rest.strip():
                return  # the wake word alone: its window stays open for the command
            self.conversation.use_wake(wake)
        match = result.match
        if match is None:
            self._emit({"event": "no-match", "text": result.text})
            return
        question = self.dispatcher.confirmation(match)
        if question is not None:
            self.conversation.ask(Pending(match, question, end))
            self._emit({"event": "confirm", "intent": match.intent, "question": question})
            self._say(question)
            return
        handler_start = time.perf_counter()
        latency_ms = (handler_start - closed_at) * 1000
        eos_ms = (handler_start - speech_end_at) * 1000
        self.stats.latency_ms.append(latency_ms)
        self.stats.eos_to_action_ms.append(eos_ms)
        self._emit({
            "event": "intent", "intent": match.intent, "slots": dict(match.slots), "text": match.text,
            "latency_ms": round(latency_ms, 1), "eos_to_action_ms": round(eos_ms, 1), "early": early,
        })
        self._handle(match, end)

    def _handle(self, match: CommandMatch, at: float) -> None:
        handler_start = time.perf_counter()
        outcome = self.dispatcher.handle(match)  # never raises (CommandRunner contract)
        self.stats.handler_ms.append((time.perf_counter() - handler_start) * 1000)
        self._emit({"event": "handler", "intent": outcome.intent, "ok": bool(outcome.ok)})
        if outcome.reply:
            self._say(outcome.reply)
        self.conversation.replied(at)

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
