"""The metrics adapter: listen-loop events and reply timing -> the service's metrics and health.

Kept apart from the service's assembly and supervision so that what is measured, and how, can
be read (and tested) in one place: the loop only emits events, the speaker only streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from assistant.scheduler import Wait
from assistant.service.health import ServiceState
from assistant.service.metrics import ServiceMetrics


class TimedSpeech:
    """Speech as the Speaker sees it: times each reply until its first chunk (the tts metric:
    how long the user waits for the voice to start)."""

    def __init__(self, speech: Any, observe: Callable[[float], None]) -> None:
        self._speech = speech
        self._observe = observe

    def stream(self, text: str, voice: str | None = None, engine: str | None = None, **options: Any) -> Iterator[Any]:
        started = time.perf_counter()
        first = True
        for chunk in self._speech.stream(text, voice, engine, **options):
            if first:
                self._observe(time.perf_counter() - started)
                first = False
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._speech, name)


class LoopMetrics:
    """Listen-loop events -> per-stage metrics, intent counters and health errors.

    The loop's recognition worker emits transcript -> intent/no-match -> handler in order from
    one thread, so the time between those events is the match and handler time; the VAD cost is
    the loop's running total (`stats()`: frames, milliseconds), observed per frame at each
    speech segment.
    """

    def __init__(self, metrics: ServiceMetrics, state: ServiceState) -> None:
        self.metrics = metrics
        self.state = state
        self._event_at = time.perf_counter()
        self._vad_mark = (0, 0.0)

    def reset_vad(self) -> None:
        """A new loop starts counting frames from zero."""
        self._vad_mark = (0, 0.0)

    def on_event(self, event: dict[str, Any], vad_totals: tuple[int, float] | None = None) -> None:
        """One loop event; `vad_totals` is the loop's (frames, VAD ms) so far, for "speech"."""
        kind = event.get("event")
        now = time.perf_counter()
        metrics = self.metrics
        if kind == "speech" and vad_totals is not None:
            frames = vad_totals[0] - self._vad_mark[0]
            if frames > 0:
                metrics.observe_stage("vad", (vad_totals[1] - self._vad_mark[1]) / frames / 1000.0)
            self._vad_mark = vad_totals
        elif kind == "transcript":
            metrics.observe_stage("asr", float(event.get("asr_ms", 0.0)) / 1000.0)
            self._event_at = now
        elif kind == "answer":
            self._event_at = now  # a confirmed command's handler is timed from its "yes"
        elif kind == "intent":
            metrics.observe_stage("match", now - self._event_at)
            metrics.intents.inc(intent=str(event.get("intent")), source="loop")
            if "eos_to_action_ms" in event:
                metrics.speech_end_to_action.observe(float(event["eos_to_action_ms"]) / 1000.0,
                                                     closed="pause" if event.get("early") else "silence")
            self._event_at = now
        elif kind == "no-match":
            metrics.observe_stage("match", now - self._event_at)
            metrics.no_match.inc(source="loop")
        elif kind == "handler":
            metrics.observe_stage("handler", now - self._event_at)
            if not event.get("ok"):
                metrics.handler_failures.inc(intent=str(event.get("intent")))
        elif kind == "error":
            stage = str(event.get("stage", "loop"))
            metrics.errors.inc(stage=stage)
            self.state.record_error(stage, str(event.get("message")))

    def on_model_wait(self, wait: Wait) -> None:
        """A model scheduler grant (`assistant.scheduler`): how long the work waited, behind what."""
        self.metrics.model_wait.observe(wait.seconds, work=wait.work, priority=wait.priority.label, behind=wait.behind)
