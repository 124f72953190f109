"""Prometheus metrics in the text exposition format, written here rather than with
`prometheus-client`: we need two counters, a histogram and a gauge; the format is a few lines
of text (https://prometheus.io/docs/instrumenting/exposition_formats/), and doing it ourselves
keeps the registry per Service (tests build many) instead of a process-global default registry.
Thread-safe: the listen loop, the API and the reloader update it concurrently.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence

STAGES = ("vad", "asr", "match", "handler", "tts")
"""Pipeline stages timed by `assistant_stage_seconds`."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Waits for the model slot: mostly ~0, else up to one step of the work holding it."""

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[name]) for name in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelValues, float] = {} if labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.labelnames, key)} {_number(value)}" for key, value in items]


class Gauge(_Metric):
    """A value read when scraped (uptime, memory), from a callback."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self._read = read

    def lines(self) -> list[str]:
        return [f"{self.name} {_number(float(self._read()))}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[index] += 1
            counts[-1] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, **labels: str) -> int:
        with self._lock:
            counts = self._counts.get(self._key(labels))
            return counts[-1] if counts else 0

    def lines(self) -> list[str]:
        out: list[str] = []
        with self._lock:
            items = sorted((key, list(counts), self._sums[key]) for key, counts in self._counts.items())
        for key, counts, total in items:
            for bound, count in zip((*self.buckets, math.inf), counts):
                le = f'le="{_number(bound)}"'
                out.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {count}")
            out.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(total)}")
            out.append(f"{self.name}_count{_labels(self.labelnames, key)} {counts[-1]}")
        return out


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        if any(existing.name == metric.name for existing in self._metrics):
            raise ValueError(f"metric {metric.name} is already registered")
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics:
            lines += metric.header()
            lines += metric.lines()  # type: ignore[attr-defined]
        return "\n".join(lines) + "\n"


class ServiceMetrics:
    """The assistant's metrics, one set per Service."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, uptime: Callable[[], float], rss_bytes: Callable[[], float]) -> None:
        self.registry = Registry()
        add = self.registry.add
        self.stage_seconds: Histogram = add(Histogram(  # type: ignore[assignment]
            "assistant_stage_seconds", "Latency of each pipeline stage (vad, asr, match, handler, tts).", ("stage",)))
        self.speech_end_to_action: Histogram = add(Histogram(  # type: ignore[assignment]
            "assistant_speech_end_to_action_seconds",
            "What a person waits: end of speech to the handler's start, the closing silence included; "
            "closed=pause (a complete command, at its first pause) or silence (the long window).", ("closed",)))
        self.intents: Counter = add(Counter(  # type: ignore[assignment]
            "assistant_intents_total", "Recognised intents, by intent and source (loop or api).", ("intent", "source")))
        self.no_match: Counter = add(Counter(  # type: ignore[assignment]
            "assistant_no_match_total", "Transcripts that matched no intent.", ("source",)))
        self.handler_failures: Counter = add(Counter(  # type: ignore[assignment]
            "assistant_handler_failures_total", "Handlers that failed (error reply given).", ("intent",)))
        self.reloads: Counter = add(Counter(  # type: ignore[assignment]
            "assistant_reloads_total", "Reloads of the commands file, by result (ok or error).", ("result",)))
        self.errors: Counter = add(Counter(  # type: ignore[assignment]
            "assistant_errors_total", "Errors caught and survived, by stage.", ("stage",)))
        self.api_requests: Counter = add(Counter(  # type: ignore[assignment]
            "assistant_api_requests_total", "HTTP API requests by endpoint and status code.", ("endpoint", "status")))
        self.model_wait: Histogram = add(Histogram(  # type: ignore[assignment]
            "assistant_model_wait_seconds",
            "Time model work waited for the model slot, by work (asr, tts), priority (command, live, api, "
            "background) and what held the slot when it asked (asr, tts, paused, none).",
            ("work", "priority", "behind"), WAIT_BUCKETS))
        add(Gauge("assistant_uptime_seconds", "Seconds since the service started.", uptime))
        add(Gauge("assistant_resident_memory_bytes", "Resident set size of the process.", rss_bytes))

    def observe_stage(self, stage: str, seconds: float) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}: use {', '.join(STAGES)}")
        self.stage_seconds.observe(seconds, stage=stage)

    def render(self) -> str:
        return self.registry.render()


def rss_bytes() -> float:
    """Current resident memory from /proc (Linux); 0 where unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return float(pages * os.sysconf("SC_PAGE_SIZE"))


def parse_text(text: str) -> dict[str, float]:
    """Sample lines of an exposition back into {"name{labels}": value} (for tests and soak)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples
