"""Soak test: hours of generated audio through the real listen loop, faster than real time.

    .venv/bin/python bench/soak.py [--hours 1] [--seed 7] [--max-growth-mb 64]

The audio is a seeded program of the committed test speech (tests/audio: commands spoken by
Piper's joe voice, chatter that is no command, loud noise bursts) separated by 8-25 s gaps of
quiet background noise, streamed frame by frame (never held in memory) through the real
ListenLoop: webrtcvad segmenter, the real Whisper tiny.en, the shipped commands.yaml and the real
Dispatcher and handlers (lights run examples/lightctl, the shopping list writes its file, timers
are set and cancelled). Replies are counted, not synthesised: TTS has its own benchmark.

Prints RSS every few minutes of audio, the commands recognised against those spoken (aligned in
order, so a missed or invented command counts once), the errors logged, and exits 1 when RSS
grew more than --max-growth-mb after the warm-up or anything raised.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.audio import FRAME_SAMPLES, SAMPLE_RATE, float_to_pcm16, read_wav  # noqa: E402
from assistant.service.metrics import rss_bytes  # noqa: E402

AUDIO = ROOT / "tests" / "audio"
BACKGROUND_DBFS = -50.0


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
class Sample:
    audio_minutes: float
    wall_seconds: float
    rss_mb: float
    recognised: int


@dataclass
class ProgramSource:
    """A finite, seeded stream of frames: gap, event, gap, event... `realtime` is False, so the
    loop takes frames as fast as it can process them."""

    clips: list[Clip]
    seconds: float
    seed: int
    sample_every_minutes: float = 5.0
    realtime: bool = False
    state: str = "open"
    expected: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    recognised: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

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
                if clip.intent:
                    self.expected.append(clip.intent)
                self.counts[kind] = self.counts.get(kind, 0) + 1
                pending = np.concatenate([pending, block])
                usable = len(pending) - len(pending) % FRAME_SAMPLES
                pcm = float_to_pcm16(pending[:usable])
                pending = pending[usable:]
                for offset in range(0, len(pcm), FRAME_SAMPLES * 2):
                    if produced >= next_sample:
                        self._sample(produced)
                        next_sample += int(self.sample_every_minutes * 60 * SAMPLE_RATE)
                    produced += FRAME_SAMPLES
                    yield pcm[offset : offset + FRAME_SAMPLES * 2]
            # a trailing second of quiet so the last command's end of speech is seen
            for _ in range(int(1.5 * SAMPLE_RATE / FRAME_SAMPLES)):
                produced += FRAME_SAMPLES
                yield bytes(FRAME_SAMPLES * 2)
        finally:
            self.produced_seconds = produced / SAMPLE_RATE
            self.state = "closed"

    def _sample(self, produced: int) -> None:
        self.samples.append(Sample(produced / SAMPLE_RATE / 60, time.perf_counter() - self.started,
                                   rss_bytes() / 2**20, len(self.recognised)))

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


class ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="hours of audio to generate (default 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--commands", default=str(ROOT / "commands.yaml"))
    parser.add_argument("--sample-minutes", type=float, default=5.0, help="audio minutes between RSS samples")
    parser.add_argument("--warmup-minutes", type=float, default=15.0,
                        help="audio minutes before RSS counts (allocator pools settle on the first segments)")
    parser.add_argument("--max-growth-mb", type=float, default=32.0,
                        help="fail when RSS at the end exceeds the first sample after warm-up by more than this")
    args = parser.parse_args(argv)

    if "ASSISTANT_HOME" not in os.environ:  # handlers write their files here; the user's stay untouched
        home = tempfile.TemporaryDirectory(prefix="assistant-soak-")
        os.environ["ASSISTANT_HOME"] = home.name
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)

    from assistant.asr import WhisperASR, WhisperSettings
    from assistant.handlers import Dispatcher
    from assistant.intents import load_commands
    from assistant.asr.recognizer import Recognizer
    from assistant.loop import ListenLoop

    commands = load_commands(args.commands)
    clips = load_clips(commands)
    replies: list[str] = []
    source = ProgramSource(clips, args.hours * 3600, args.seed, args.sample_minutes)
    dispatcher = Dispatcher(commands, announce=replies.append)
    load_started = time.perf_counter()
    asr = WhisperASR(WhisperSettings(model="tiny.en", device="cpu"))
    load_seconds = time.perf_counter() - load_started
    loop_errors: list[str] = []

    def on_event(event: dict) -> None:
        kind = event.get("event")
        if kind == "intent":
            source.recognised.append(str(event.get("intent")))
        elif kind == "error":
            loop_errors.append(f"{event.get('stage')}: {event.get('message')}")

    loop = ListenLoop(source, Recognizer(asr, commands), dispatcher, speak=replies.append, on_event=on_event)
    source.started = time.perf_counter()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:  # noqa: BLE001 - reported in the table
            crashed.append(exc)

    thread = threading.Thread(target=run, name="soak-loop")
    thread.start()
    thread.join()
    wall = time.perf_counter() - source.started
    source._sample(int(source.produced_seconds * SAMPLE_RATE))
    dispatcher.close()

    audio_seconds = source.produced_seconds
    matched = align(source.expected, source.recognised)
    extra = len(source.recognised) - matched
    warm = [s for s in source.samples if s.audio_minutes >= min(args.warmup_minutes, audio_seconds / 60)] or source.samples
    baseline = warm[0]
    growth = source.samples[-1].rss_mb - baseline.rss_mb

    print(f"Soak: {audio_seconds / 3600:.2f} h of audio in {wall:.0f} s ({audio_seconds / wall:.0f}x real time), "
          f"Whisper tiny.en loaded in {load_seconds:.1f} s, seed {args.seed}")
    print()
    print("| audio (min) | wall (s) | RSS (MiB) | commands recognised |")
    print("|---:|---:|---:|---:|")
    for s in source.samples:
        print(f"| {s.audio_minutes:.0f} | {s.wall_seconds:.0f} | {s.rss_mb:.0f} | {s.recognised} |")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| events: commands / chatter / noise bursts | {source.counts.get('command', 0)} / {source.counts.get('chatter', 0)} / {source.counts.get('noise', 0)} |")
    print(f"| commands recognised in order / spoken | {matched} / {len(source.expected)} ({100 * matched / max(1, len(source.expected)):.0f}%) |")
    print(f"| intents with no command spoken (false triggers) | {extra} |")
    print(f"| replies | {len(replies)} |")
    print(f"| errors logged / loop error events / crashes | {len(errors.messages)} / {len(loop_errors)} / {len(crashed)} |")
    print(f"| RSS at {baseline.audio_minutes:.0f} min (after warm-up) -> end (MiB) | {baseline.rss_mb:.0f} -> "
          f"{source.samples[-1].rss_mb:.0f} ({growth:+.1f}); range after warm-up {min(s.rss_mb for s in warm):.0f}-{max(s.rss_mb for s in warm):.0f} |")
    for message in (errors.messages + loop_errors)[:5]:
        print(f"error: {message}", file=sys.stderr)
    if crashed:
        print(f"the loop crashed: {crashed[0]!r}", file=sys.stderr)
    ok = not crashed and growth <= args.max_growth_mb
    if growth > args.max_growth_mb:
        print(f"RSS grew {growth:.1f} MiB (> {args.max_growth_mb} MiB)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
