"""Segmenter benchmark on the committed speech: does each setting cut the audio right, and
what does the VAD cost?  Run: .venv/bin/python bench/vad.py

Per aggressiveness and end-of-speech silence: spoken parts found in the 41 s mixed file (10
expected, in order; again with -30 dBFS white noise added), command files cut into exactly one segment (9), false segments in
silence and -30 dBFS noise, start/end error against the manifest, and the wait from end of
speech to the segment closing. Then webrtcvad + segmenter cost per second of audio.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from assistant.audio import WavFileSource, float_to_pcm16, pcm16_to_float  # noqa: E402
from assistant.audio.sources import split_frames  # noqa: E402
from assistant.vad import SegmenterSettings, VadSegmenter  # noqa: E402

AUDIO = ROOT / "tests" / "audio"


def cut(name: str, settings: SegmenterSettings, noise_dbfs: float | None = None) -> list:
    frames = WavFileSource(AUDIO / name).frames()
    if noise_dbfs is not None:  # the same file in a louder room
        clean = pcm16_to_float(b"".join(frames))
        noise = np.random.default_rng(1).standard_normal(len(clean)) * 10 ** (noise_dbfs / 20)
        frames = split_frames(float_to_pcm16(clean + noise))
    vs = VadSegmenter(settings)
    found = [seg for frame in frames if (seg := vs.feed(frame)) is not None]
    last = vs.flush()
    return found + ([last] if last else [])


def main() -> None:
    manifest = json.loads((AUDIO / "manifest.json").read_text())["files"]
    commands = [name for name, entry in manifest.items() if entry["kind"] == "command"]
    expected = manifest["long_mixed.wav"]["segments"]
    print("| mode | silence s | long file parts | same at -30 dBFS noise | one segment per command | false in silence+noise | start err ms | end err ms | speech end -> closed ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in (0, 1, 2, 3):
        for silence in (0.25, 0.7, 1.25):
            settings = SegmenterSettings(aggressiveness=mode, silence_seconds=silence)
            long = cut("long_mixed.wav", settings)
            noisy = cut("long_mixed.wav", settings, noise_dbfs=-30.0)
            noisy_cell = f"{len(noisy)}/{len(expected)}" + ("" if all(s.reason == "silence" for s in noisy) else " (max-length cuts)")
            single = sum(len(cut(name, settings)) == 1 for name in commands)
            false = len(cut("silence.wav", settings)) + len(cut("noise.wav", settings))
            if len(long) == len(expected):
                start_err = statistics.mean(abs(s.start - e["start"]) for s, e in zip(long, expected)) * 1000
                end_err = statistics.mean(abs(s.end - e["end"]) for s, e in zip(long, expected)) * 1000
                errs = f"{start_err:.0f} | {end_err:.0f}"
            else:
                errs = "- | -"
            close = statistics.median((s.ended_at - s.end) * 1000 for s in long) if long else float("nan")
            print(f"| {mode} | {silence} | {len(long)}/{len(expected)} | {noisy_cell} | {single}/{len(commands)} | {false} | {errs} | {close:.0f} |")

    frames = list(WavFileSource(AUDIO / "long_mixed.wav").frames())
    seconds = len(frames) * 0.03
    runs = []
    for _ in range(5):
        vs = VadSegmenter()
        started = time.perf_counter()
        for frame in frames:
            vs.feed(frame)
        runs.append(time.perf_counter() - started)
    best = min(runs)
    print()
    print("| audio | frames | VAD+segmenter total ms | ms per second of audio | µs per 30 ms frame |")
    print("|---|---|---|---|---|")
    print(f"| long_mixed.wav {seconds:.1f} s | {len(frames)} | {best * 1000:.1f} | {best * 1000 / seconds:.3f} | {best * 1e6 / len(frames):.1f} |")


if __name__ == "__main__":
    main()
