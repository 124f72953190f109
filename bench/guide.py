"""Decoding-guide build cost.  Run: PYTHONPATH=. .venv/bin/python bench/guide.py

Prints, for commands.yaml and Home Assistant's English intents (with the tests' stand-in
household for {name}/{area}/{floor}), the time to build the decoding guide from the loaded
command set (the target: at most 2 s for HA), its size, and the time of a first walk of a
few sentences through states not built yet (what the first decode of a new sentence pays).
No model is loaded; only Whisper's tokenizer.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import whisper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

SENTENCES = {
    "commands.yaml": ["Turn on the kitchen lights.", "Set a timer for 25 minutes.", "Add milk to my shopping list.", "Stop."],
    "HA en": ["Turn on the kitchen light.", "Set a timer for 5 minutes.", "Add eggs to my shopping list.",
              "Set the brightness of the kitchen to 50%."],
}


def main() -> None:
    from assistant.asr.guide import build_guide
    from assistant.intents import load_commands

    tokenizer = whisper.tokenizer.get_tokenizer(False, language="en", task="transcribe")
    grammars = {"commands.yaml": load_commands(ROOT / "commands.yaml")}
    try:
        from test_intents_ha import EN, HA_LISTS

        grammars["HA en"] = load_commands(EN, extra_lists=HA_LISTS)
    except ImportError:
        print("home-assistant-intents is not installed: HA row skipped", file=sys.stderr)
    build_guide(grammars["commands.yaml"], tokenizer)  # token classes of the tokenizer, once per process
    print("| grammar | templates | word-graph nodes | build ms (median of 3) | first walk of 4 sentences ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, commands in grammars.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            guide = build_guide(commands, tokenizer)
            times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assert all(guide.accepts_text(text) for text in SENTENCES[name])
        walk = (time.perf_counter() - started) * 1000
        print(f"| {name} | {guide.templates} | {guide.word_nodes} | {statistics.median(times):.0f} | {walk:.0f} |")


if __name__ == "__main__":
    main()
