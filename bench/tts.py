"""Speaking benchmark: time to first audio (cached vs rendered), Piper and espeak-ng real-time
factors, the self-check's cost (tiny.en), tiny-Tortoise latents computed vs cached. Prints a Markdown table (README "### Speaking").

Run: .venv/bin/python bench/tts.py [--repeats N]
Uses a temporary ASSISTANT_HOME, so no user cache is read or written; Tortoise's real weights
are not needed (its latents are timed on tiny random-weight models built by the real classes).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPLIES = [
    "Okay.",
    "The kitchen light is on.",
    "Timer set for ten minutes.",
    "It is 7:30 in the morning.",
    "I added milk to your shopping list.",
    "Sorry, I did not catch that. Could you say it again?",
]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def first_audio(speech, text: str, engine: str) -> float:
    started = time.perf_counter()
    stream = speech.stream(text, engine=engine)
    next(stream)
    elapsed = time.perf_counter() - started
    for _ in stream:  # finish (and cache) the reply
        pass
    return elapsed


def bench_engines(repeats: int) -> list[tuple[str, str]]:
    from assistant.tts.cache import ReplyCache
    from assistant.tts.espeak import EspeakEngine
    from assistant.tts.piper import PiperEngine
    from assistant.tts.speech import Speech, SpeechSettings

    rows: list[tuple[str, str]] = []
    started = time.perf_counter()
    piper = PiperEngine()
    rows.append(("Piper model load (once per process)", f"{(time.perf_counter() - started) * 1000:.0f} ms"))
    engines = {"piper": piper, "espeak": EspeakEngine()}
    for name, engine in engines.items():
        engine.synthesize("warm up")
        rtfs, per_reply = [], []
        for _ in range(repeats):
            for text in REPLIES:
                started = time.perf_counter()
                audio = engine.synthesize(text)
                elapsed = time.perf_counter() - started
                rtfs.append(elapsed / audio.duration)
                per_reply.append(elapsed)
        rows.append((f"{name} synthesis RTF (median of {len(rtfs)} replies)", f"{statistics.median(rtfs):.3f}"))
        rows.append((f"{name} synthesis time per reply (median)", f"{median_ms(per_reply):.0f} ms"))

    speech = Speech(SpeechSettings(fallback=("piper", "espeak")), factories={n: (lambda e=e: e) for n, e in engines.items()},
                    cache=ReplyCache(Path(os.environ["ASSISTANT_HOME"]) / "replies"))
    for name in engines:
        uncached, cached = [], []
        for index in range(repeats):
            for text in REPLIES:
                unique = f"{text} ({name} {index})"  # a distinct text: a guaranteed miss
                uncached.append(first_audio(speech, unique, name))
                cached.append(first_audio(speech, unique, name))
        rows.append((f"time to first audio, {name}, rendered", f"{median_ms(uncached):.1f} ms"))
        rows.append((f"time to first audio, {name}, cached reply", f"{median_ms(cached):.2f} ms"))
    return rows


def bench_selfcheck(repeats: int) -> list[tuple[str, str]]:
    """What the self-check adds per pre-rendered reply: one tiny.en transcription (and its WER)."""
    from assistant.asr import WhisperASR, WhisperSettings
    from assistant.asr.weights import fetch_whisper
    from assistant.tts.piper import PiperEngine
    from assistant.tts.selfcheck import SelfCheck, whisper_transcriber

    fetch_whisper()
    check = SelfCheck(whisper_transcriber(WhisperASR(WhisperSettings(device="cpu"))))
    piper = PiperEngine()
    timings, errors = [], []
    for _ in range(repeats):
        for text in REPLIES:
            audio = piper.synthesize(text)
            started = time.perf_counter()
            wer, _ = check.score(text, audio)
            timings.append(time.perf_counter() - started)
            errors.append(wer)
    return [
        (f"self-check transcription per reply, tiny.en (median of {len(timings)})", f"{median_ms(timings):.0f} ms"),
        ("self-check WER of Piper replies (mean)", f"{statistics.mean(errors):.3f}"),
    ]


def bench_tortoise_latents(repeats: int) -> list[tuple[str, str]]:
    from assistant.tts.tortoise.bench import bench_latents

    return [(f"tiny Tortoise: {row['case']}", f"{float(row['ms']):.1f} ms") for row in bench_latents(repeats=repeats)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-selfcheck", action="store_true", help="leave out the Whisper self-check rows")
    parser.add_argument("--skip-tortoise", action="store_true", help="leave out the tiny-Tortoise latents rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-tts-") as home:
        os.environ["ASSISTANT_HOME"] = home
        rows = bench_engines(args.repeats)
        if not args.skip_selfcheck:
            rows += bench_selfcheck(args.repeats)
        if not args.skip_tortoise:
            rows += bench_tortoise_latents(args.repeats)
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"| {'-' * width} | ----- |")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
