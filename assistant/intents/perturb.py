"""How the matcher copes with ASR slips, measured on sentences sampled from the grammar itself.

Each sampled sentence that matches exactly is perturbed the way Whisper does it, and the result
is scored against the original match: `correct` (same intent and slots), `wrong` (another intent
or other slots: a wrong action) or `none` (no match). Kinds:
- `fillers`: "Uh," in front / "um" inside, sentence case and a full stop (Whisper style);
- `dropped`: one grammar word left out (every position in turn);
- `dropped slot word`: one word of a slot value left out (a different value, or none: reported
  apart because no matcher can know "pasta sauce" was meant when it hears "sauce");
- `homophone`: one grammar word swapped for a homophone ("for" -> "four"), where there is one;
- `homophone in slot`: the same inside a slot value ("the blew book", "one hundred to").
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from assistant.intents.commandset import CommandSet
from assistant.intents.nearmiss import HOMOPHONES
from assistant.intents.normalize import word_core
from assistant.intents.sampling import sample_intents

KINDS = ("fillers", "dropped", "homophone", "dropped slot word", "homophone in slot")


@dataclass
class Score:
    counts: Counter = field(default_factory=Counter)
    wrong_examples: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def rate(self, outcome: str) -> float:
        return self.counts[outcome] / self.total if self.total else 0.0


def perturbations(text: str, rng: random.Random, slot_words: frozenset[int] = frozenset()) -> dict[str, list[str]]:
    words = text.split()
    whisper = lambda ws: (" ".join(ws)[:1].upper() + " ".join(ws)[1:]).rstrip(".?!") + "."  # noqa: E731
    result: dict[str, list[str]] = {kind: [] for kind in KINDS}
    result["fillers"].append("Uh, " + whisper(words))
    if len(words) >= 2:
        cut = rng.randrange(1, len(words))
        result["fillers"].append(whisper(words[:cut] + ["um"] + words[cut:]))
    if len(words) >= 3:
        for index in range(len(words)):
            kind = "dropped slot word" if index in slot_words else "dropped"
            result[kind].append(whisper(words[:index] + words[index + 1 :]))
    swappable = [i for i, w in enumerate(words) if word_core(w) in HOMOPHONES]
    for kind, indices in (
        ("homophone", [i for i in swappable if i not in slot_words]),
        ("homophone in slot", [i for i in swappable if i in slot_words]),
    ):
        if indices:
            index = rng.choice(indices)
            swap = sorted(HOMOPHONES[word_core(words[index])])[0]
            result[kind].append(whisper(words[:index] + [swap] + words[index + 1 :]))
    return result


def evaluate(commands: CommandSet, per_template: int = 3, seed: int = 1) -> dict[str, Score]:
    """Score every perturbation kind over sentences sampled from `commands`' own grammar."""
    rng = random.Random(seed)
    scores = {kind: Score() for kind in KINDS}
    seen: set[str] = set()
    for sample in sample_intents(commands.hassil_intents, commands.extra_slot_lists, per_template, seed):
        if sample.text in seen:
            continue
        seen.add(sample.text)
        reference = commands.match_exact(sample.text)
        if reference is None or reference.intent != sample.intent:
            continue  # ambiguous in the grammar itself: not a test of slips
        for kind, texts in perturbations(sample.text, rng, sample.slot_words).items():
            for text in texts:
                got = commands.match(text)
                if got is None:
                    outcome = "none"
                elif got.intent == reference.intent and got.slots == reference.slots:
                    outcome = "correct"
                else:
                    outcome = "wrong"
                    scores[kind].wrong_examples.append((text, f"{reference.intent} {reference.slots}", f"{got.intent} {got.slots}"))
                scores[kind].counts[outcome] += 1
    return scores


def table(scores: dict[str, Score]) -> str:
    lines = ["| perturbation | sentences | correct | wrong action | no match |", "| --- | ---: | ---: | ---: | ---: |"]
    for kind, score in scores.items():
        lines.append(
            f"| {kind} | {score.total} | {score.rate('correct'):.1%} | {score.rate('wrong'):.1%} | {score.rate('none'):.1%} |"
        )
    return "\n".join(lines)
