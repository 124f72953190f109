"""Speaker: Speech + Player, the `speak`/`is_speaking`/`cancel` trio the listen loop needs.

`say` returns at once (the recognition worker must not wait for a reply to finish); a worker
thread streams each reply's chunks into the player, so a streamed Tortoise reply starts playing
after its first chunk. `is_speaking` is true while a reply is being rendered or played; the
loop then listens only for the stop set (barge-in), checking what it hears against `played`
(what the player is playing), or not at all with barge-in off. Each reply is rendered at live priority and holds back pre-rendering until it is fully
rendered (`assistant.scheduler`), so no background step slips in between two of its chunks.
A player that frames replies (`ReplyPlayer`: the sound device) gets each reply framed with a
jitter buffer sized from the engine's measured speed (`jitter.py`), so a reply made slower than
real time still plays without gaps. `stop` (a "stop" typed through the API or chat, or
shutdown) drops queued replies, abandons the one being rendered and cuts playback.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from assistant.playback.base import Player, ReplyPlayer
from assistant.playback.reference import PlayedLevels
from assistant.playback.jitter import JitterSettings, RateMeter, expected_seconds, prebuffer_seconds
from assistant.scheduler import SCHEDULER, Priority, work_priority
from assistant.tts.speech import Speech

log = logging.getLogger(__name__)


class Speaker:
    def __init__(self, speech: Speech, player: Player, *, voice: str | None = None, engine: str | None = None,
                 jitter: JitterSettings = JitterSettings()) -> None:
        self.speech = speech
        self.player = player
        self.jitter = jitter
        self.rates = RateMeter(jitter)
        """Each engine's real-time factor, measured on the chunks it streamed here."""
        self.voice = voice
        self.engine = engine
        self._queue: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._generation = 0
        self._rendering = 0
        self._pending: dict[int, int] = {}  # generation -> replies not yet fully handed to the player
        self._idle = threading.Event()
        self._idle.set()
        self._worker = threading.Thread(target=self._run, name="speaker", daemon=True)
        self._worker.start()

    @property
    def is_speaking(self) -> bool:
        """Rendering or playing a reply that `stop` has not cancelled. A cancelled reply whose
        current chunk is still being generated does not count: it will never be played."""
        with self._lock:
            busy = self._pending.get(self._generation, 0) > 0
        return busy or self.player.is_playing

    @property
    def played(self) -> PlayedLevels | None:
        """What the player is sending to the speaker (the listener's echo reference); None for a
        player that makes no sound in the room (a WAV file)."""
        played = getattr(self.player, "played", None)
        return played if isinstance(played, PlayedLevels) else None

    def say(self, text: str) -> None:
        with self._lock:
            self._rendering += 1
            self._pending[self._generation] = self._pending.get(self._generation, 0) + 1
            self._idle.clear()
            self._queue.put((self._generation, text))

    def stop(self) -> None:
        with self._lock:
            self._generation += 1
        self.player.stop()

    def close(self) -> None:
        """Stop speaking and end the worker thread."""
        self.stop()
        self._queue.put(None)
        self._worker.join(timeout=5)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued reply has been rendered and handed to the player."""
        return self._idle.wait(timeout)

    def _current(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation

    def _speak(self, generation: int, text: str) -> None:
        """Stream one reply into the player. A player that frames replies gets a jitter buffer
        sized from the engine's measured speed once the first chunk shows which engine speaks."""
        framed = isinstance(self.player, ReplyPlayer)
        started = time.perf_counter()
        chunks = iter(self.speech.stream(text, self.voice, self.engine, live=True))
        first = next(chunks, None)
        if first is None or not self._current(generation):
            return
        made = time.perf_counter()
        stats = getattr(self.speech, "stats", None)
        engine = getattr(stats, "last_engine", None)
        if framed:
            rtf = self.rates.get(engine) or getattr(self.speech, "speeds", {}).get(engine)
            if rtf is None:  # nothing measured yet: what the first chunk took (set-up included)
                rtf = (made - started) / max(first.duration, 1e-3)
            expected = max(expected_seconds(text, self.jitter), first.duration)
            self.player.begin_reply(prebuffer_seconds(rtf, expected, first.duration, self.jitter))  # type: ignore[attr-defined]
        compute = audio = 0.0
        try:
            self.player.play(first)
            for chunk in chunks:
                now = time.perf_counter()
                compute, audio = compute + (now - made), audio + chunk.duration
                made = now
                if not self._current(generation):
                    break
                self.player.play(chunk)
        finally:
            if framed:
                self.player.end_reply()  # type: ignore[attr-defined]
        if audio > 0:
            self.rates.observe(engine, compute, audio)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            generation, text = item
            try:
                if self._current(generation):
                    with SCHEDULER.pause_background(), work_priority(Priority.LIVE):
                        self._speak(generation, text)
            except Exception as exc:  # a failed reply must not silence the assistant for good
                log.error("could not speak %r: %s", text, exc)
            finally:
                with self._lock:
                    self._rendering -= 1
                    self._pending[generation] -= 1
                    if not self._pending[generation]:
                        del self._pending[generation]
                    if self._rendering == 0:
                        self._idle.set()
