"""Listening benchmark on the committed speech.  Run: .venv/bin/python bench/listen.py

What each stage of the listen loop costs with the real tiny.en weights on this machine: the
VAD per second of audio; Whisper per spoken command (median, p95) for openai-whisper's own
`transcribe()` (the ~420 ms baseline), our full-window decoding, the short-context pass alone,
and the loop's two passes (short context + vocabulary prompt, accepted when exactly a command,
else the full window), with how many commands came out with the right intent and slots;
intent matching; end of speech -> handler start through the whole loop; peak RSS.
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


def spoken_commands(commands) -> list[tuple[str, object, tuple]]:
    """(said, segment, expected (intent, slots)) for every command segment of the committed speech."""
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
                out.append((text, segment, (match.intent, match.slots)))
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
    parser.add_argument("--rounds", type=int, default=1, help="passes over the commands per configuration")
    args = parser.parse_args(argv)
    os.environ.setdefault("ASSISTANT_HOME", tempfile.mkdtemp(prefix="assistant-bench-"))

    import torch
    import whisper

    from assistant.asr import WhisperASR, WhisperSettings
    from assistant.asr.weights import fetch_whisper
    from assistant.handlers import Dispatcher
    from assistant.intents import load_commands
    from assistant.asr.recognizer import Recognizer
    from assistant.loop import ListenLoop

    commands = load_commands(ROOT / "commands.yaml")
    checkpoint = fetch_whisper()
    clips = spoken_commands(commands)
    vad_ms_per_s, vad_seconds = vad_cost()

    asr = WhisperASR(WhisperSettings(model=str(checkpoint), device="cpu"))
    probe = Recognizer(asr, commands)
    prompt = probe.prompt
    baseline_model = whisper.load_model(str(checkpoint), device="cpu")

    def baseline(segment) -> tuple[str, float]:
        started = time.perf_counter()
        text = baseline_model.transcribe(segment.audio, language="en", fp16=False, temperature=0.0,
                                         condition_on_previous_text=False, without_timestamps=True)["text"]
        return text.strip(), (time.perf_counter() - started) * 1000

    def one_pass(short: bool, use_prompt: bool):
        def run(segment) -> tuple[str, float]:
            result = asr.transcribe(segment.audio, prompt=prompt if use_prompt else None, short_context=short)
            return result.text, result.duration_ms
        return run

    second_passes = 0

    def two_passes(segment) -> tuple[str, float]:
        nonlocal second_passes
        result = probe.recognize(segment.audio)
        second_passes += result.passes - 1
        return result.text, result.asr_ms

    configs = [
        ("openai-whisper `transcribe()` (baseline)", baseline),
        ("ours, full 30 s window (the second pass)", one_pass(False, False)),
        ("ours, short context + vocabulary prompt alone", one_pass(True, True)),
        ("**listen loop: short pass, full window when not exactly a command**", two_passes),
    ]
    baseline(clips[0][1])  # warm the baseline like the resident model was warmed
    # Interleaved (each clip through every configuration in turn), so that other work on this
    # shared machine slows all configurations alike instead of whichever ran at that moment.
    times: dict[str, list[float]] = {label: [] for label, _ in configs}
    right: dict[str, int] = {label: 0 for label, _ in configs}
    match_ms: list[float] = []
    for round_index in range(args.rounds):
        for _, segment, expected in clips:
            for label, run in configs:
                text, ms = run(segment)
                times[label].append(ms)
                if round_index == 0:
                    started = time.perf_counter()
                    match = commands.match(text) if text else None
                    match_ms.append((time.perf_counter() - started) * 1000)
                    right[label] += (match.intent, match.slots) == expected if match else 0
    rows = [(label, statistics.median(times[label]), percentile(times[label], 95), right[label]) for label, _ in configs]

    latencies: list[float] = []
    asr_in_loop: list[float] = []
    for name in sorted(p.name for p in AUDIO.glob("*.wav") if p.name not in ("long_mixed.wav", "silence.wav", "noise.wav")):
        from assistant.audio import WavFileSource

        dispatcher = Dispatcher(commands, announce=lambda text: None)
        loop = ListenLoop(WavFileSource(AUDIO / name), Recognizer(asr, commands), dispatcher, speak=lambda text: None,
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
    print(f"The two-pass loop decoded {second_passes} of {len(clips) * args.rounds} commands a second time.")
    print()
    print("| stage | value |")
    print("|---|---:|")
    print(f"| VAD + segmenter per second of audio ({vad_seconds:.0f} s file) | {vad_ms_per_s:.3f} ms |")
    print(f"| intent match per transcript (median / p95) | {statistics.median(match_ms):.2f} / {percentile(match_ms, 95):.2f} ms |")
    print(f"| end of speech -> handler start, whole loop, default settings (median / p95, {len(latencies)} commands) "
          f"| {statistics.median(latencies):.0f} / {percentile(latencies, 95):.0f} ms |")
    print(f"| of which Whisper (median) | {statistics.median(asr_in_loop):.0f} ms |")
    print("| silence that confirms the end of speech (excluded above) | 720 ms |")
    print(f"| peak RSS (tiny.en loaded twice: ours and the baseline's) | {peak_rss_mb:.0f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
