"""Soak test: hours of generated audio through the assistant as `serve` assembles it, faster than real time.

    .venv/bin/python bench/soak.py [--hours 1] [--seed 7] [--max-growth-mb 32] [--engine piper]
                                   [--reload-minutes 60] [--out replies.wav]

The audio is a seeded program of the committed test speech (tests/audio: commands spoken by
Piper's joe voice, chatter that is no command, loud noise bursts) separated by 8-25 s gaps of
quiet background noise, streamed frame by frame (never held in memory) through the real
ListenLoop: webrtcvad segmenter, the real Whisper tiny.en, a copy of the shipped commands.yaml
and the real Dispatcher and handlers (lights run examples/lightctl, the shopping list and the
timers are kept in the SQLite store, timers are set, cancelled and fire).

Everything that tells time runs on the stream's clock (seconds of audio so far), not the
machine's: timers (the Dispatcher's injectable monotonic and wall clocks; they are checked at
every frame between utterances), the time of day replies say, and the hot reload every
`--reload-minutes`. Replies are spoken as the service speaks them: the Speech facade (reply
cache on, replies pre-rendered at start and after each reload) with the fast engine of its
fallback chain (Piper, espeak-ng behind it), through the Speaker into a WAV file (FileSink).

Because the audio runs ~30x faster than real time, the program waits at two points of every
gap (2 s after the previous utterance and just before the next) until the loop has finished
what it heard (`ListenLoop.wait_idle`) and the speaker is quiet: in a room the 8-25 s between
commands leave the assistant that time; without the wait the next command would start while
the last reply is still being rendered and be heard as barge-in (only "stop" counts then).

The hot reload edits the commands file (the shipped one plus a marker intent whose reply names
the reload) and goes through the service's own path: `CommandsReloader.poll()` (file change
seen, settled, validated) and `install_commands` (dispatcher, recognizer, pre-rendering of the
new reply). After each, every test command's text must still match its intent through the
recognizer's active set, and the marker must match and be answered with the new reply.

Prints RSS every few minutes of audio, the commands recognised against those spoken (aligned in
order, so a missed or invented command counts once), replies said / spoken and seconds of audio
written, timers set / cancelled / fired / announced, reloads, the errors logged; exits 1 when a
spoken command was not recognised and handled, a reply was not spoken, a timer did not fire or
was not announced, a reload or its check failed, RSS grew more than --max-growth-mb after the
warm-up, or anything raised or logged an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.audio import FRAME_SAMPLES, SAMPLE_RATE, float_to_pcm16, read_wav  # noqa: E402
from assistant.audio.clip import Audio  # noqa: E402
from assistant.playback import FileSink  # noqa: E402
from assistant.service.metrics import rss_bytes  # noqa: E402

AUDIO = ROOT / "tests" / "audio"
BACKGROUND_DBFS = -50.0
SETTLE_SECONDS = 2.0
"""Into each gap, the program waits for the assistant to finish the utterance before it."""
MARKER_INTENT = "SoakReload"
MARKER_SENTENCE = "read the hallway scene"
"""The reload marker's sentence: words the commands already use, so the vocabulary prompt
Whisper gets is the same before and after a reload, and no test command says it."""


@dataclass
class Clip:
    kind: str  # command, chatter, noise
    samples: np.ndarray
    text: str = ""
    intent: str | None = None


def load_clips(commands) -> list[Clip]:
    manifest = json.loads((AUDIO / "manifest.json").read_text())
    clips: list[Clip] = []
    for name, entry in manifest["files"].items():
        samples, rate = read_wav(AUDIO / name)
        assert rate == SAMPLE_RATE, name
        if entry["kind"] == "command":
            match = commands.match(entry["text"])
            if match is None:
                raise SystemExit(f"{name}: {entry['text']!r} matches no intent in the commands file")
            clips.append(Clip("command", samples, entry["text"], match.intent))
        elif entry["kind"] == "noise":
            clips.append(Clip("noise", samples))
        elif entry["kind"] == "long":
            for part in entry["segments"]:
                if not part["command"]:  # chatter: speech that is no command
                    start, end = int(part["start"] * SAMPLE_RATE), int(part["end"] * SAMPLE_RATE)
                    clips.append(Clip("chatter", samples[start:end], part["text"]))
    return clips


@dataclass
class SimClock:
    """Stream time: seconds of audio produced so far. Timers (monotonic and wall), the time of
    day replies say and the reload schedule all run on it."""

    start_wall: float
    seconds: float = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> float:
        return self.start_wall + self.seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall())


class Hooks:
    """What the program calls between frames (the Soak; nothing in a bare ProgramSource)."""

    def quiet(self) -> None:
        """A frame between utterances: timers that came due fire."""

    def settle(self, before_speech: bool) -> None:
        """Let the assistant finish; `before_speech`: the next utterance starts with this frame."""


@dataclass
class Sample:
    audio_minutes: float
    wall_seconds: float
    rss_mb: float
    recognised: int
    spoken: int
    timers_fired: int
    reloads: int


@dataclass
class ProgramSource:
    """A finite, seeded stream of frames: gap, event, gap, event... `realtime` is False, so the
    loop takes frames as fast as it can process them. `clock` follows the frames yielded."""

    clips: list[Clip]
    seconds: float
    seed: int
    clock: SimClock
    hooks: Hooks = field(default_factory=Hooks)
    sample_every_minutes: float = 5.0
    sampler: Callable[[int], None] | None = None
    realtime: bool = False
    state: str = "open"
    current: Clip | None = None
    """The clip being played (set at its first frame; the gap after it keeps it)."""
    expected: list[str] = field(default_factory=list)
    spoken_at: list[tuple[float, str]] = field(default_factory=list)
    """For each expected command: the stream second it starts and its text."""
    counts: dict[str, int] = field(default_factory=dict)
    produced_seconds: float = 0.0

    def frames(self) -> Iterator[bytes]:
        rng = np.random.default_rng(self.seed)
        by_kind = {kind: [c for c in self.clips if c.kind == kind] for kind in ("command", "chatter", "noise")}
        total = int(self.seconds * SAMPLE_RATE)
        produced = 0
        next_sample = 0
        pending = np.zeros(0, dtype=np.float32)
        try:
            while produced < total and self.state != "closed":
                gap = np.zeros(int(rng.uniform(8.0, 25.0) * SAMPLE_RATE), dtype=np.float32)
                kind = rng.choice(["command", "chatter", "noise"], p=[0.6, 0.2, 0.2])
                clip = by_kind[kind][rng.integers(len(by_kind[kind]))]
                block = np.concatenate([gap, clip.samples])
                block = block + (rng.standard_normal(len(block)) * 10 ** (BACKGROUND_DBFS / 20)).astype(np.float32)
                # absolute sample positions: the gap starts after what `pending` still holds
                gap_start = produced + len(pending)
                speech_start = gap_start + len(gap)
                settle_at = gap_start + int(min(SETTLE_SECONDS, len(gap) / SAMPLE_RATE / 2) * SAMPLE_RATE)
                settled = started = False
                pending = np.concatenate([pending, block])
                usable = len(pending) - len(pending) % FRAME_SAMPLES
                pcm = float_to_pcm16(pending[:usable])
                pending = pending[usable:]
                for offset in range(0, len(pcm), FRAME_SAMPLES * 2):
                    if produced >= next_sample:
                        if self.sampler is not None:
                            self.sampler(produced)
                        next_sample += int(self.sample_every_minutes * 60 * SAMPLE_RATE)
                    self.clock.seconds = produced / SAMPLE_RATE
                    if produced + FRAME_SAMPLES <= speech_start:
                        if produced >= gap_start:
                            self.hooks.quiet()
                        if not settled and produced >= settle_at:
                            settled = True
                            self.hooks.settle(False)
                    elif not started:
                        started = True
                        self.hooks.settle(True)
                        self.current = clip
                        if clip.intent:
                            self.expected.append(clip.intent)
                            self.spoken_at.append((speech_start / SAMPLE_RATE, clip.text))
                        self.counts[kind] = self.counts.get(kind, 0) + 1
                    produced += FRAME_SAMPLES
                    yield pcm[offset : offset + FRAME_SAMPLES * 2]
            # a trailing second of quiet so the last command's end of speech is seen
            for _ in range(int(1.5 * SAMPLE_RATE / FRAME_SAMPLES)):
                self.clock.seconds = produced / SAMPLE_RATE
                self.hooks.quiet()
                produced += FRAME_SAMPLES
                yield bytes(FRAME_SAMPLES * 2)
        finally:
            self.produced_seconds = produced / SAMPLE_RATE
            self.clock.seconds = self.produced_seconds
            self.state = "closed"

    def close(self) -> None:
        self.state = "closed"


def align(expected: list[str], got: list[str]) -> int:
    """Longest common subsequence: commands recognised in the order they were spoken."""
    previous = [0] * (len(got) + 1)
    for want in expected:
        current = [0]
        for j, have in enumerate(got):
            current.append(previous[j] + 1 if want == have else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def missed(expected: list[str], got: list[str]) -> list[int]:
    """Indexes of the expected commands left out of one longest alignment (few misses: the
    table is built from the ends inwards only over the band where they differ)."""
    start = 0
    while start < min(len(expected), len(got)) and expected[start] == got[start]:
        start += 1
    end_e, end_g = len(expected), len(got)
    while end_e > start and end_g > start and expected[end_e - 1] == got[end_g - 1]:
        end_e, end_g = end_e - 1, end_g - 1
    a, b = expected[start:end_e], got[start:end_g]
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    out, i, j = [], 0, 0
    while i < len(a):
        if j < len(b) and a[i] == b[j]:
            i, j = i + 1, j + 1
        elif j < len(b) and table[i][j + 1] >= table[i + 1][j]:
            j += 1
        else:
            out.append(start + i)
            i += 1
    return out


class ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class CountingSink(FileSink):
    """The FileSink, counting what it was given to play."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.chunks = 0
        self.seconds = 0.0

    def play(self, audio: Audio) -> None:
        super().play(audio)
        self.chunks += 1
        self.seconds += audio.duration


class CountingSpeech:
    """Speech as the Speaker sees it, counting each reply's stream: spoken to the end, cut
    (the speaker stopped taking chunks) or failed (raised)."""

    def __init__(self, speech: Any) -> None:
        self.speech = speech
        self.spoken = 0
        self.cut = 0
        self.failed = 0
        self._lock = threading.Lock()

    def stream(self, text: str, voice: str | None = None, engine: str | None = None, **options: Any) -> Iterator[Audio]:
        outcome = "cut"
        try:
            yield from self.speech.stream(text, voice, engine, **options)
            outcome = "spoken"
        except Exception:
            outcome = "failed"
            raise
        finally:
            with self._lock:
                setattr(self, outcome, getattr(self, outcome) + 1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.speech, name)


class TimerWatch:
    """Counts timers as the Dispatcher's TimerService reports them, and their announcements."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.started = self.cancelled = self.fired = self.announced = 0
        self.lateness: list[float] = []
        """Stream seconds between each timer's due time and its firing."""

    def on_timer(self, kind: str, timer: Any) -> None:
        if kind == "started":
            self.started += 1
        elif kind == "cancelled":
            self.cancelled += 1
        elif kind == "finished":
            self.fired += 1
            self.lateness.append(self.clock.monotonic() - timer.due)

    def announcer(self, say: Callable[[str], None]) -> Callable[[str], None]:
        def announce(text: str) -> None:
            self.announced += 1
            say(text)

        return announce


def editable_copy(commands: Path, folder: Path) -> Path:
    """A copy of the commands file that reloads may edit, in `folder` beside links to everything
    next to the original (handlers name programs and modules relative to the file: examples/)."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in commands.resolve().parent.iterdir():
        link = folder / entry.name
        if entry.name != commands.name and not link.exists():
            link.symlink_to(entry)
    copy = folder / commands.name
    copy.write_text(commands.read_text())
    return copy


def marker_block(number: int) -> str:
    return (f"\n  # added by bench/soak.py, hot reload {number}\n"
            f"  {MARKER_INTENT}:\n    sentences:\n      - {MARKER_SENTENCE}\n"
            f"    reply: \"Reload number {number} is in.\"\n")


class Reloads:
    """Every `every` stream seconds: edit the commands file, let the service's reloader see the
    change (`poll`, as its supervisor does each second), then check the active intents."""

    def __init__(self, path: Path, original: str, commands: Any, clips: list[Clip], *, every: float,
                 dispatcher: Any, recognizer: Any, speech: Any) -> None:
        from assistant.service.reload import CommandsReloader, install_commands

        self.path, self.original, self.clips, self.every = path, original, clips, every
        self.dispatcher, self.recognizer = dispatcher, recognizer

        def install(new: Any, old: Any) -> None:
            install_commands(new, old, dispatcher=dispatcher, recognizer=recognizer, speech=speech)

        self.reloader = CommandsReloader(path, commands, apply=[install])
        self.next_at = every
        self.done = 0
        self.problems: list[str] = []

    def due(self, now: float) -> bool:
        return self.every > 0 and now >= self.next_at

    def run(self, now: float) -> None:
        self.next_at += self.every
        number = self.done + 1
        self.path.write_text(self.original.rstrip("\n") + "\n" + marker_block(number))
        result = None
        for _ in range(3):  # the first look sees the change, the next one that it has settled
            result = self.reloader.poll()
            if result is not None:
                break
        if result is None or not result.ok:
            self.problems.append(f"reload {number} at {now / 60:.0f} min: {result.error if result else 'change not seen'}")
            return
        self.done += 1
        self.problems.extend(f"after reload {number}: {p}" for p in self.check(number))

    def check(self, number: int) -> list[str]:
        active = self.recognizer.commands
        problems = []
        if active is not self.reloader.current:
            problems.append("the recognizer does not have the reloaded intents")
        for clip in self.clips:
            if clip.intent is None:
                continue
            match = active.match(clip.text)
            if match is None or match.intent != clip.intent:
                problems.append(f"{clip.text!r} -> {match.intent if match else None}, not {clip.intent}")
        match = active.match(MARKER_SENTENCE)
        if match is None or match.intent != MARKER_INTENT:
            return [*problems, f"the marker {MARKER_SENTENCE!r} -> {match.intent if match else None}"]
        outcome = self.dispatcher.handle(match)
        want = f"Reload number {number} is in."
        if not outcome.ok or outcome.reply != want:
            problems.append(f"the marker was answered {outcome.reply!r}, not {want!r}")
        return problems


@dataclass
class SoakOptions:
    hours: float = 1.0
    seed: int = 7
    commands: Path = ROOT / "commands.yaml"
    sample_minutes: float = 5.0
    warmup_minutes: float = 15.0
    max_growth_mb: float = 32.0
    reload_minutes: float = 60.0
    settle_timeout: float = 120.0
    out: Path | None = None
    """The WAV the replies are written to (default: in the soak's temporary home)."""


@dataclass
class Report:
    options: SoakOptions
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    expected: list[str] = field(default_factory=list)
    recognised: list[str] = field(default_factory=list)
    spoken_at: list[tuple[float, str]] = field(default_factory=list)
    heard: list[tuple[float, str]] = field(default_factory=list)
    """Every transcript: stream second it starts, text."""
    handled: int = 0
    handler_failures: list[str] = field(default_factory=list)
    reply_events: int = 0
    spoken: int = 0
    cut: int = 0
    speech_failed: int = 0
    audio_written: float = 0.0
    chunks: int = 0
    wav: Path | None = None
    engines: dict[str, int] = field(default_factory=dict)
    rendered: int = 0
    cache_hits: int = 0
    prerendered: int = 0
    timers_set: int = 0
    timers_cancelled: int = 0
    timers_fired: int = 0
    timers_announced: int = 0
    timers_pending: int = 0
    timers_overdue: int = 0
    max_lateness: float = 0.0
    reloads: int = 0
    reload_problems: list[str] = field(default_factory=list)
    settle_timeouts: int = 0
    barge_in_ignored: int = 0
    errors: list[str] = field(default_factory=list)
    loop_errors: list[str] = field(default_factory=list)
    crashes: list[BaseException] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return align(self.expected, self.recognised)

    @property
    def said(self) -> int:
        return self.reply_events + self.timers_announced

    def misses(self) -> list[str]:
        """Each spoken command not recognised: when, what was said, what was heard then."""
        lines = []
        for index in missed(self.expected, self.recognised):
            at, text = self.spoken_at[index]
            heard = [t for start, t in self.heard if at - 1.0 <= start <= at + 10.0]
            lines.append(f"{at / 60:.1f} min: {text!r} ({self.expected[index]}) heard as {heard or 'nothing'}")
        return lines

    def rss_growth(self) -> tuple[Sample, float, list[Sample]]:
        warmup = min(self.options.warmup_minutes, self.audio_seconds / 60)
        warm = [s for s in self.samples if s.audio_minutes >= warmup] or self.samples
        return warm[0], self.samples[-1].rss_mb - warm[0].rss_mb, warm

    def failures(self) -> list[str]:
        problems = []
        missed = len(self.expected) - self.matched
        if missed:
            problems.append(f"{missed} of {len(self.expected)} spoken commands were not recognised")
        if self.handler_failures:
            problems.append(f"{len(self.handler_failures)} handlers failed: {', '.join(self.handler_failures[:5])}")
        if self.handled != len(self.recognised):
            problems.append(f"{len(self.recognised)} commands recognised but {self.handled} handlers ran")
        if self.spoken != self.said or self.cut or self.speech_failed:
            problems.append(f"{self.said} replies said, {self.spoken} spoken to the end "
                            f"({self.cut} cut, {self.speech_failed} failed)")
        if self.timers_fired != self.timers_announced:
            problems.append(f"{self.timers_fired} timers fired but {self.timers_announced} were announced")
        if self.timers_set != self.timers_cancelled + self.timers_fired + self.timers_pending:
            problems.append(f"timers do not add up: {self.timers_set} set != {self.timers_cancelled} cancelled + "
                            f"{self.timers_fired} fired + {self.timers_pending} pending")
        if self.timers_overdue:
            problems.append(f"{self.timers_overdue} timers came due and never fired")
        problems.extend(self.reload_problems)
        if self.settle_timeouts:
            problems.append(f"the assistant did not finish an utterance within {self.options.settle_timeout:.0f} s "
                            f"{self.settle_timeouts} times")
        if self.errors or self.loop_errors or self.crashes:
            problems.append(f"{len(self.errors)} errors logged, {len(self.loop_errors)} loop error events, "
                            f"{len(self.crashes)} crashes")
        if self.samples:
            _, growth, _ = self.rss_growth()
            if growth > self.options.max_growth_mb:
                problems.append(f"RSS grew {growth:.1f} MiB (> {self.options.max_growth_mb} MiB)")
        return problems


class Soak(Hooks):
    """The assistant assembled as the service does it, around a ProgramSource."""

    def __init__(self, options: SoakOptions, asr: Any, speech: Any, *, home: Path, clips: list[Clip] | None = None) -> None:
        from assistant import assemble
        from assistant.handlers import Dispatcher
        from assistant.intents import load_commands
        from assistant.store import shared_store

        self.options = options
        self.report = Report(options)
        self.errors = ErrorCounter()
        logging.getLogger().addHandler(self.errors)
        commands_path = editable_copy(Path(options.commands), home / "commands")
        self.original = commands_path.read_text()
        commands = load_commands(commands_path)
        self.clips = clips if clips is not None else load_clips(commands)
        self.clock = SimClock(time.time())
        self.speech = speech
        self.sink = CountingSink(options.out or home / "replies.wav")
        self.counted = CountingSpeech(speech)
        self.speaker = assemble.build_speaker(self.counted, self.sink)
        self.timers = TimerWatch(self.clock)
        self.dispatcher = Dispatcher(commands, announce=self.timers.announcer(self.speaker.say), cancel=self.speaker.stop,
                                     clock=self.clock.monotonic, wall=self.clock.wall, now=self.clock.now,
                                     timer_thread=False, store=shared_store())
        self.dispatcher.timers.add_listener(self.timers.on_timer)
        self.recognizer = assemble.build_recognizer(asr, commands)
        self.reloads = Reloads(commands_path, self.original, commands, self.clips, every=options.reload_minutes * 60,
                               dispatcher=self.dispatcher, recognizer=self.recognizer, speech=speech)
        self.source = ProgramSource(self.clips, options.hours * 3600, options.seed, self.clock, self,
                                    options.sample_minutes, self._sample)
        self.loop = assemble.build_loop(self.source, self.recognizer, self.dispatcher, speaker=self.speaker,
                                        on_event=self._on_event)
        self.started = time.perf_counter()
        speech.prerender(commands.static_replies())  # as the service does once its voice is warm

    # -- hooks (the capture thread, between frames) ------------------------------------------

    def quiet(self) -> None:
        self.dispatcher.timers.run_due()

    def settle(self, before_speech: bool) -> None:
        if before_speech and self.reloads.due(self.clock.seconds):
            self.reloads.run(self.clock.seconds)
        timeout = self.options.settle_timeout
        if not self.loop.wait_idle(timeout) or not self.speaker.wait(timeout):
            self.report.settle_timeouts += 1

    # -- counting ------------------------------------------------------------------------------

    def _on_event(self, event: dict) -> None:
        kind, report = event.get("event"), self.report
        if kind == "intent":
            report.recognised.append(str(event.get("intent")))
        elif kind == "transcript":
            report.heard.append((float(event.get("start", 0.0)), str(event.get("text"))))
        elif kind == "handler":
            report.handled += 1
            if not event.get("ok"):
                report.handler_failures.append(str(event.get("intent")))
        elif kind == "reply":
            report.reply_events += 1
        elif kind == "barge-in-ignored":
            report.barge_in_ignored += 1
        elif kind == "error":
            report.loop_errors.append(f"{event.get('stage')}: {event.get('message')}")

    def _sample(self, produced: int) -> None:
        self.report.samples.append(Sample(produced / SAMPLE_RATE / 60, time.perf_counter() - self.started,
                                          rss_bytes() / 2**20, len(self.report.recognised), self.counted.spoken,
                                          self.timers.fired, self.reloads.done))

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> Report:
        report = self.report
        self.started = time.perf_counter()

        def listen() -> None:
            try:
                self.loop.run()
            except BaseException as exc:  # noqa: BLE001 - reported in the table
                report.crashes.append(exc)

        thread = threading.Thread(target=listen, name="soak-loop")
        try:
            thread.start()
            thread.join()
            self.dispatcher.timers.run_due()  # the last tick, at the end of the stream
            if not self.speaker.wait(self.options.settle_timeout):
                report.settle_timeouts += 1
            report.wall_seconds = time.perf_counter() - self.started
            self._sample(int(self.source.produced_seconds * SAMPLE_RATE))
            pending = self.dispatcher.timers.pending()
            report.timers_pending = len(pending)
            report.timers_overdue = sum(1 for _, left in pending if left <= 0)
            self.speech.wait_prerendered(self.options.settle_timeout)
        finally:
            self.dispatcher.close()
            self.speaker.close()
            logging.getLogger().removeHandler(self.errors)
        report.audio_seconds = self.source.produced_seconds
        report.counts = dict(self.source.counts)
        report.expected = list(self.source.expected)
        report.spoken_at = list(self.source.spoken_at)
        report.spoken, report.cut, report.speech_failed = self.counted.spoken, self.counted.cut, self.counted.failed
        report.audio_written, report.chunks, report.wav = self.sink.seconds, self.sink.chunks, self.sink.path
        stats = self.speech.stats
        report.engines, report.rendered, report.cache_hits = dict(stats.by_engine), stats.synthesized, stats.cache_hits
        report.prerendered = stats.prerendered
        watch = self.timers
        report.timers_set, report.timers_cancelled, report.timers_fired = watch.started, watch.cancelled, watch.fired
        report.timers_announced = watch.announced
        report.max_lateness = max(watch.lateness, default=0.0)
        report.reloads, report.reload_problems = self.reloads.done, list(self.reloads.problems)
        report.errors = list(self.errors.messages)
        return report


def print_report(report: Report, heading: str) -> None:
    options = report.options
    print(f"Soak: {report.audio_seconds / 3600:.2f} h of audio in {report.wall_seconds:.0f} s "
          f"({report.audio_seconds / max(report.wall_seconds, 1e-9):.0f}x real time), {heading}, seed {options.seed}")
    print()
    print("| audio (min) | wall (s) | RSS (MiB) | commands recognised | replies spoken | timers fired | reloads |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for s in report.samples:
        print(f"| {s.audio_minutes:.0f} | {s.wall_seconds:.0f} | {s.rss_mb:.0f} | {s.recognised} | {s.spoken} | "
              f"{s.timers_fired} | {s.reloads} |")
    print()
    expected = len(report.expected)
    engines = ", ".join(f"{name} {count}" for name, count in sorted(report.engines.items())) or "none"
    print("| measure | value |")
    print("|---|---:|")
    print(f"| events: commands / chatter / noise bursts | {report.counts.get('command', 0)} / "
          f"{report.counts.get('chatter', 0)} / {report.counts.get('noise', 0)} |")
    print(f"| commands recognised in order / spoken | {report.matched} / {expected} "
          f"({100 * report.matched / max(1, expected):.0f}%) |")
    print(f"| commands handled (handler ran, ok) / failed | {report.handled - len(report.handler_failures)} / "
          f"{len(report.handler_failures)} |")
    print(f"| intents with no command spoken (false triggers) | {len(report.recognised) - report.matched} |")
    print(f"| replies said (loop replies + timer announcements) / spoken to the end | "
          f"{report.said} ({report.reply_events} + {report.timers_announced}) / {report.spoken} "
          f"(cut {report.cut}, failed {report.speech_failed}) |")
    print(f"| reply audio written to the WAV sink | {report.audio_written:.0f} s in {report.chunks} chunks |")
    print(f"| renders (engine: count) / reply-cache hits / pre-rendered | {report.rendered} ({engines}) / "
          f"{report.cache_hits} / {report.prerendered} |")
    print(f"| timers set / cancelled / fired / announced / pending at the end | {report.timers_set} / "
          f"{report.timers_cancelled} / {report.timers_fired} / {report.timers_announced} / {report.timers_pending} |")
    print(f"| latest timer firing after its due time (stream s) | {report.max_lateness:.1f} |")
    print(f"| hot reloads of commands.yaml (every {options.reload_minutes:g} min) / checks failed | "
          f"{report.reloads} / {len(report.reload_problems)} |")
    print(f"| speech ignored while a reply played (barge-in, not a stop command) | {report.barge_in_ignored} |")
    print(f"| errors logged / loop error events / crashes | {len(report.errors)} / {len(report.loop_errors)} / "
          f"{len(report.crashes)} |")
    if report.samples:
        baseline, growth, warm = report.rss_growth()
        print(f"| RSS at {baseline.audio_minutes:.0f} min (after warm-up) -> end (MiB) | {baseline.rss_mb:.0f} -> "
              f"{report.samples[-1].rss_mb:.0f} ({growth:+.1f}); range after warm-up "
              f"{min(s.rss_mb for s in warm):.0f}-{max(s.rss_mb for s in warm):.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="hours of audio to generate (default 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--commands", default=str(ROOT / "commands.yaml"), help="the commands file the soak copies and edits")
    parser.add_argument("--sample-minutes", type=float, default=5.0, help="audio minutes between RSS samples")
    parser.add_argument("--warmup-minutes", type=float, default=15.0,
                        help="audio minutes before RSS counts (allocator pools settle on the first segments)")
    parser.add_argument("--max-growth-mb", type=float, default=32.0,
                        help="fail when RSS at the end exceeds the first sample after warm-up by more than this")
    parser.add_argument("--engine", choices=["piper", "espeak"], default="piper",
                        help="the fast voice that speaks (the other one is its fallback; default piper)")
    parser.add_argument("--reload-minutes", type=float, default=60.0,
                        help="stream minutes between hot reloads of the commands file (0: none; default 60)")
    parser.add_argument("--out", type=Path, help="the WAV the replies are written to (default: a temporary file)")
    args = parser.parse_args(argv)
    options = SoakOptions(hours=args.hours, seed=args.seed, commands=Path(args.commands), sample_minutes=args.sample_minutes,
                          warmup_minutes=args.warmup_minutes, max_growth_mb=args.max_growth_mb,
                          reload_minutes=args.reload_minutes, out=args.out)

    if "ASSISTANT_HOME" not in os.environ:  # handlers, store and reply cache live here; the user's stay untouched
        home_dir = tempfile.TemporaryDirectory(prefix="assistant-soak-")
        os.environ["ASSISTANT_HOME"] = home_dir.name
    home = Path(os.environ["ASSISTANT_HOME"])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from assistant import assemble
    from assistant.tts import Speech, SpeechSettings

    load_started = time.perf_counter()
    asr = assemble.load_whisper(assemble.ModelOptions(whisper_model="tiny.en", device="cpu"))
    load_seconds = time.perf_counter() - load_started
    fallback = ("piper", "espeak") if args.engine == "piper" else ("espeak", "piper")
    speech = Speech(SpeechSettings(engine=args.engine, fallback=fallback))
    voice_started = time.perf_counter()
    speech.synthesize("Hello.")  # warm-up and speed measurement, as the service starts its voice
    rtf = speech.measure_speeds()
    voice_seconds = time.perf_counter() - voice_started
    assemble.enable_selfcheck(speech, asr)  # pre-rendered replies are checked by Whisper, in the background

    soak = Soak(options, asr, speech, home=home)
    report = soak.run()
    speeds = ", ".join(f"{name} RTF {value:.2f}" for name, value in rtf.items())
    print_report(report, f"Whisper tiny.en loaded in {load_seconds:.1f} s, voice {speech.live_engine()} "
                         f"ready in {voice_seconds:.1f} s ({speeds})")
    print(f"\nreplies written to {report.wav}" + ("" if args.out else " (deleted with the temporary home)"))
    for message in (report.errors + report.loop_errors)[:5]:
        print(f"error: {message}", file=sys.stderr)
    if report.crashes:
        print(f"the loop crashed: {report.crashes[0]!r}", file=sys.stderr)
    for line in report.misses():
        print(f"missed: {line}", file=sys.stderr)
    problems = report.failures()
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
