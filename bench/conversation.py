"""Conversation benchmark: the wake-word models' cost, misses and false accepts, and what a
yes/no answer costs to recognise.  Run: .venv/bin/python bench/conversation.py [--no-whisper]

1. Wake word, per model (pymicro-wakeword): CPU seconds per second of audio (process time of
   features + model, one core), and false accepts on
   - the committed speech and noise in tests/audio that does not contain the wake phrase
     (commands, the 41 s mixed recording with its chatter, silence, -30 dBFS white noise), and
   - bench-only chatter synthesised here with Piper (joe): sentences that are no commands,
     including near-misses of the wake phrases ("hey Travis", "a car visit", "Alexandra"),
     played back to back over -45 dBFS white noise.
   Rates per hour are from minutes of audio: a handful of false accepts more or less moves
   them a lot, so read them as an order of magnitude.
2. Wake word hits: Piper (joe) saying "<wake phrase>, <command>" for the eight committed
   commands, per model (the same voice as the tests: a synthetic voice, not a room of people).
3. Answers (with Whisper tiny.en, unless --no-whisper): recognising the committed "yes"/"no"
   against the yes/no set (what the loop does while a question waits) versus against all the
   commands; median milliseconds over 5 runs and what was heard.

Nothing here is tuned on: the models run with their authors' cutoffs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "audio"))

import numpy as np  # noqa: E402

from assistant.audio import FRAME_BYTES, float_to_pcm16, read_wav  # noqa: E402
from assistant.wakeword import WAKE_WORDS, WakeWordDetector, WakeWordSettings  # noqa: E402

AUDIO = ROOT / "tests" / "audio"

CHATTER = [
    "I think the train was late again this morning.",
    "Hey Travis, did you bring the charger?",
    "Could you pass me the salt, please?",
    "We should paint the hallway a lighter colour.",
    "Jarvis is the butler in those superhero films.",
    "Hey, Marvin, are you coming to the match on Saturday?",
    "The car visit to the garage took all afternoon.",
    "Okay, now, who wants another slice of cake?",
    "Alexandra said the meeting moved to Thursday.",
    "Hey my craft project is finally finished.",
    "The kids watched a film about a robot last night.",
    "Turn the page and read the next paragraph aloud.",
    "My grandmother grows tomatoes on the balcony.",
    "That restaurant by the river has great soup.",
    "Hey, do you know where I left my keys?",
    "Alexa is on the shelf but nobody uses it.",
    "Okay, but the numbers do not add up at all.",
    "The football season starts in two weeks.",
    "Let's take the dog for a walk after lunch.",
    "I read that the museum is free on Sundays.",
]
"""Bench-only sentences (never used by the tests): everyday talk and near-misses of the phrases."""

COMMAND_PHRASES = [
    "turn on the kitchen lights", "turn off the bedroom lights", "set a timer for five minutes", "what time is it",
    "add milk to my shopping list", "stop", "what's the date today", "cancel the timer",
]


def frames_of(audio: np.ndarray) -> list[bytes]:
    pcm = float_to_pcm16(audio)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def detections(model: str, audio: np.ndarray) -> tuple[int, float]:
    """(times the model fired, process seconds it took) on `audio`."""
    detector = WakeWordDetector(WakeWordSettings(model))
    frames = frames_of(audio)
    started = time.process_time()
    fired = sum(detector.feed(frame) for frame in frames)
    spent = time.process_time() - started
    detector.close()
    return fired, spent


def committed_without_wake_words() -> list[tuple[str, np.ndarray]]:
    manifest = json.loads((AUDIO / "manifest.json").read_text())["files"]
    return [(name, read_wav(AUDIO / name)[0]) for name, entry in manifest.items() if entry["kind"] != "wake"]


def synthesised_chatter(voice) -> np.ndarray:
    from generate import noise, silence, speak

    rng = np.random.default_rng(11)
    parts = []
    for text in CHATTER:
        parts += [speak(voice, text), silence(1.0)]
    clean = np.concatenate(parts)
    return (clean + noise(rng, len(clean), -45.0)).astype(np.float32)


def wake_phrases(voice) -> dict[str, list[np.ndarray]]:
    from generate import silence, speak

    return {model: [np.concatenate([silence(0.5), speak(voice, f"{phrase}, {command}"), silence(1.0)])
                    for command in COMMAND_PHRASES]
            for model, phrase in WAKE_WORDS.items()}


def wake_table(voice) -> None:
    committed = committed_without_wake_words()
    committed_audio = np.concatenate([audio for _, audio in committed])
    chatter = synthesised_chatter(voice)
    spoken = wake_phrases(voice)
    print(f"Committed audio without a wake phrase: {len(committed)} files, {len(committed_audio) / 16000:.0f} s; "
          f"bench chatter: {len(CHATTER)} sentences, {len(chatter) / 16000:.0f} s")
    print()
    print("| wake word | CPU ms per s of audio | false accepts, committed | false accepts, chatter | per hour (both) | hits: 'phrase, command' (Piper joe) |")
    print("|---|---|---|---|---|---|")
    for model in WAKE_WORDS:
        fa_committed, spent_a = detections(model, committed_audio)
        fa_chatter, spent_b = detections(model, chatter)
        seconds = (len(committed_audio) + len(chatter)) / 16000
        hits = sum(detections(model, clip)[0] >= 1 for clip in spoken[model])
        cpu = (spent_a + spent_b) / seconds * 1000
        per_hour = (fa_committed + fa_chatter) / seconds * 3600
        print(f"| {model} | {cpu:.1f} | {fa_committed} | {fa_chatter} | {per_hour:.0f} | {hits}/{len(COMMAND_PHRASES)} |")


def answer_table() -> None:
    from assistant.asr import WhisperASR, WhisperSettings
    from assistant.asr.recognizer import Recognizer
    from assistant.conversation import ANSWERS
    from assistant.intents import load_commands
    from assistant.vad import VadSegmenter

    asr = WhisperASR(WhisperSettings(model="tiny.en", device="cpu"))
    commands = load_commands(ROOT / "commands.yaml")
    recognizer = Recognizer(asr, commands)
    print()
    print("| answer clip | against | heard | answer | passes | median ms (5 runs) |")
    print("|---|---|---|---|---|---|")
    for name in ("yes.wav", "no.wav"):
        segmenter = VadSegmenter()
        found = [s for f in frames_of(read_wav(AUDIO / name)[0]) if (s := segmenter.feed(f))]
        segment = (found or [segmenter.flush()])[0]
        for label, matcher in (("yes/no set", ANSWERS), ("all commands", None)):
            runs = [recognizer.recognize(segment.audio, commands=matcher) for _ in range(5)]
            last = runs[-1]
            answer = ANSWERS.match(last.text)
            print(f"| {name} | {label} | {last.text!r} | {answer.intent if answer else '-'} | {last.passes} | "
                  f"{statistics.median(r.asr_ms for r in runs):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-whisper", action="store_true", help="skip the answer timings (no Whisper load)")
    args = parser.parse_args()
    from generate import load_voice

    wake_table(load_voice())
    if not args.no_whisper:
        answer_table()
    print()
    print("Timings on a shared, busy 2-core machine: noisy; compare rows, not runs.")


if __name__ == "__main__":
    main()
