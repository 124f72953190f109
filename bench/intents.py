"""Intent matching benchmark: latency on the shipped commands and on HA's English intents, and
how the matcher copes with ASR slips (perturbation table).

Run: .venv/bin/python bench/intents.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.intents import CommandSet, load_commands  # noqa: E402
from assistant.intents.perturb import compare, evaluate, perturbations, table  # noqa: E402
from assistant.intents.sampling import sample_intents  # noqa: E402

# HA supplies these lists at run time from the entities it knows; a small household stands in.
HA_LISTS = {
    "name": [
        {"in": "kitchen light", "context": {"domain": "light"}},
        {"in": "desk lamp", "context": {"domain": "light"}},
        {"in": "front door", "context": {"domain": "lock"}},
        {"in": "garage door", "context": {"domain": "cover"}},
        {"in": "tv", "context": {"domain": "media_player"}},
        {"in": "ceiling fan", "context": {"domain": "fan"}},
        {"in": "thermostat", "context": {"domain": "climate"}},
    ],
    "area": ["kitchen", "living room", "bedroom"],
    "floor": ["first floor", "upstairs"],
}


def ha_english_path() -> Path:
    import home_assistant_intents

    return Path(home_assistant_intents.__file__).parent / "data" / "en.json"


def timed_load(path: Path, **kwargs) -> tuple[CommandSet, float]:
    start = time.perf_counter()
    commands = load_commands(path, **kwargs)
    return commands, time.perf_counter() - start


def latencies(commands: CommandSet, sentences: list[str], context=None) -> list[float]:
    result = []
    for sentence in sentences:
        start = time.perf_counter()
        commands.match(sentence, context)
        result.append((time.perf_counter() - start) * 1000)
    return result


def row(name: str, values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return f"| {name} | {len(values)} | {statistics.median(values):.2f} | {p95:.2f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sentences")
    args = parser.parse_args(argv)
    per_template = 1 if args.quick else 3

    shipped, shipped_load = timed_load(ROOT / "commands.yaml")
    ha, ha_load = timed_load(ha_english_path(), extra_lists=HA_LISTS)
    fixture, _ = timed_load(ROOT / "tests" / "fixtures" / "intents_grammar.yaml")

    shipped_samples = [s.text for s in sample_intents(shipped.hassil_intents, shipped.extra_slot_lists, per_template, seed=7)]
    whisper = ["Uh, " + s[:1].upper() + s[1:] + "." for s in shipped_samples]
    import random

    rng = random.Random(7)
    dropped = [t for s in sample_intents(shipped.hassil_intents, None, 1, seed=7) for t in perturbations(s.text, rng, s.slot_words)["dropped"][:2]]
    ha_samples = [s.text for s in sample_intents(ha.hassil_intents, ha.extra_slot_lists, 1, seed=7)]
    context = {"area": {"value": "kitchen"}}

    latencies(shipped, shipped_samples[:20])  # warm-up (regex caches, number words)
    latencies(ha, ha_samples[:20], context)
    print(f"load: shipped commands.yaml {shipped_load * 1000:.0f} ms, HA English intents {ha_load * 1000:.0f} ms\n")
    print("| sentences | n | median ms | p95 ms |")
    print("| --- | ---: | ---: | ---: |")
    print(row("shipped, grammar sentences", latencies(shipped, shipped_samples)))
    print(row("shipped, Whisper style (Uh, Case.)", latencies(shipped, whisper)))
    print(row("shipped, one word dropped (near-miss)", latencies(shipped, dropped)))
    print(row("HA English, grammar sentences", latencies(ha, ha_samples, context)))
    print(row("HA English, off-grammar (shipped sentences)", latencies(ha, shipped_samples[:150], context)))
    exact = near = 0
    for sample in sample_intents(ha.hassil_intents, ha.extra_slot_lists, 1, seed=7):
        match = shipped.match(sample.text)
        exact += bool(match and match.exact)
        near += bool(match and not match.exact)
    print(
        f"\noff-grammar: {len(ha_samples)} HA English sample sentences against the shipped commands: "
        f"{exact} exact matches, {near} near-miss matches"
    )
    # Seed 7 and this household: the tests use other seeds and another household.
    every = 5 if args.quick else 1
    for name, commands, ctx, per in (
        ("shipped commands.yaml", shipped, None, 4),
        ("test fixture grammar", fixture, None, 4),
        ("HA English intents", ha, context, 1),
    ):
        ours = evaluate(commands, per_template=per, seed=7, context=ctx, every=every)
        plain = evaluate(commands, per_template=per, seed=7, context=ctx, every=every, matcher=commands.match_hassil)
        print(f"\nperturbations, {name}:\n")
        print(table(ours))
        print()
        print(compare({"ours": ours, "plain hassil": plain}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
