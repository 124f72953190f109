"""Listening benchmark on the committed speech.  Run: .venv/bin/python bench/listen.py

What each stage of the listen loop costs with the real tiny.en weights on this machine: the
VAD per second of audio; Whisper per spoken command (median, p95) for openai-whisper's own
`transcribe()` (the ~420 ms baseline) and for our decoding with and without short-context
encoding and the vocabulary prompt, with how many commands came out with the right intent and
slots; intent matching; end of speech -> handler start through the whole loop; peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

AUDIO = ROOT / "tests" / "audio"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def cut(name: str) -> list:
    from assistant.audio import WavFileSource
    from assistant.vad import VadSegmenter

    segmenter = VadSegmenter()
    found = [s for frame in WavFileSource(AUDIO / name).frames() if (s := segmenter.feed(frame))]
    last = segmenter.flush()
    return found + ([last] if last else [])


def spoken_commands(commands) -> list[tuple[str, np.ndarray, tuple]]:
    """(said, audio, expected (intent, slots)) for every command segment of the committed speech."""
    manifest = json.loads((AUDIO / "manifest.json").read_text())["files"]
    out = []
    for name, info in manifest.items():
        if info["kind"] == "command":
            said = [info["text"]]
        elif info["kind"] == "long":
            said = [part["text"] for part in info["segments"]]
        else:
            continue
        for text, segment in zip(said, cut(name)):
            match = commands.match(text)
            if match is not None:
                out.append((text, segment.audio, (match.intent, match.slots)))
    return out


def vad_cost() -> tuple[float, float]:
    from assistant.audio import WavFileSource
    from assistant.vad import VadSegmenter

    frames = list(WavFileSource(AUDIO / "long_mixed.wav").frames())
    seconds = len(frames) * 0.03
    best = float("inf")
    for _ in range(3):
        segmenter = VadSegmenter()
        started = time.perf_counter()
        for frame in frames:
            segmenter.feed(frame)
        best = min(best, time.perf_counter() - started)
    return best * 1000 / seconds, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the commands per configuration")
    args = parser.parse_args(argv)
    os.environ.setdefault("ASSISTANT_HOME", tempfile.mkdtemp(prefix="assistant-bench-"))

    import torch
    import whisper

    from assistant.asr import WhisperASR, WhisperSettings
    from assistant.asr.weights import fetch_whisper
    from assistant.handlers import Dispatcher
    from assistant.intents import load_commands
    from assistant.loop import ListenLoop

    commands = load_commands(ROOT / "commands.yaml")
    checkpoint = fetch_whisper()
    clips = spoken_commands(commands)
    vad_ms_per_s, vad_seconds = vad_cost()

    short = WhisperASR(WhisperSettings(model=str(checkpoint), device="cpu"))
    full = WhisperASR(WhisperSettings(model=str(checkpoint), device="cpu", short_context=False))
    prompt = short.vocabulary_prompt(commands.vocabulary())
    baseline_model = whisper.load_model(str(checkpoint), device="cpu")

    def baseline(audio: np.ndarray) -> tuple[str, float]:
        started = time.perf_counter()
        text = baseline_model.transcribe(audio, language="en", fp16=False, temperature=0.0,
                                         condition_on_previous_text=False, without_timestamps=True)["text"]
        return text.strip(), (time.perf_counter() - started) * 1000

    def ours(asr, use_prompt: bool):
        def run(audio: np.ndarray) -> tuple[str, float]:
            result = asr.transcribe(audio, prompt=prompt if use_prompt else None)
            return result.text, result.duration_ms
        return run

    configs = [
        ("openai-whisper `transcribe()` (baseline)", baseline),
        ("full 30 s window", ours(full, False)),
        ("full 30 s window + vocabulary prompt", ours(full, True)),
        ("short context", ours(short, False)),
        ("**short context + vocabulary prompt (default)**", ours(short, True)),
    ]
    baseline(clips[0][1])  # warm the baseline like the resident models were warmed
    rows = []
    match_ms: list[float] = []
    for label, run in configs:
        times: list[float] = []
        right = 0
        for round_index in range(args.rounds):
            for _, audio, expected in clips:
                text, ms = run(audio)
                times.append(ms)
                if round_index == 0:
                    started = time.perf_counter()
                    match = commands.match(text) if text else None
                    match_ms.append((time.perf_counter() - started) * 1000)
                    right += (match.intent, match.slots) == expected if match else 0
        rows.append((label, statistics.median(times), percentile(times, 95), right))

    latencies: list[float] = []
    asr_in_loop: list[float] = []
    for name in sorted(p.name for p in AUDIO.glob("*.wav") if p.name not in ("long_mixed.wav", "silence.wav", "noise.wav")):
        from assistant.audio import WavFileSource

        dispatcher = Dispatcher(commands, announce=lambda text: None)
        loop = ListenLoop(WavFileSource(AUDIO / name), short, commands, dispatcher, speak=lambda text: None,
                          on_event=lambda event: None)
        loop.run()
        dispatcher.close()
        latencies += loop.stats.latency_ms
        asr_in_loop += loop.stats.asr_ms
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    base = rows[0][1]
    print(f"Listening: {len(clips)} spoken commands (Piper voice, 0.4-1.5 s of speech each, cut by the VAD), "
          f"Whisper tiny.en on CPU ({torch.get_num_threads()} threads), {args.rounds} rounds")
    print()
    print("| Whisper decoding | median ms per command | p95 ms | vs baseline | right intent + slots |")
    print("|---|---:|---:|---:|---:|")
    for label, median, p95, right in rows:
        print(f"| {label} | {median:.0f} | {p95:.0f} | {median / base:.2f}x | {right}/{len(clips)} |")
    print()
    print("| stage | value |")
    print("|---|---:|")
    print(f"| VAD + segmenter per second of audio ({vad_seconds:.0f} s file) | {vad_ms_per_s:.3f} ms |")
    print(f"| intent match per transcript (median / p95) | {statistics.median(match_ms):.2f} / {percentile(match_ms, 95):.2f} ms |")
    print(f"| end of speech -> handler start, whole loop, default settings (median / p95, {len(latencies)} commands) "
          f"| {statistics.median(latencies):.0f} / {percentile(latencies, 95):.0f} ms |")
    print(f"| of which Whisper (median) | {statistics.median(asr_in_loop):.0f} ms |")
    print("| silence that confirms the end of speech (excluded above) | 720 ms |")
    print(f"| peak RSS (three copies of tiny.en loaded) | {peak_rss_mb:.0f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
