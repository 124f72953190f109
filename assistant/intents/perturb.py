"""How the matcher copes with ASR slips, measured on sentences sampled from the grammar itself.

Each sampled sentence that matches exactly is perturbed the way Whisper does it, and the result
is scored against the original match: `correct` (same intent and slots), `wrong` (another intent
or other slots: a wrong action) or `none` (no match). Kinds:
- `fillers`: "Uh," in front / "um" inside, sentence case and a full stop (Whisper style);
- `dropped`: one grammar word left out (every position in turn);
- `dropped slot word`: one word of a slot value left out (a different value, or none: reported
  apart because no matcher can know "pasta sauce" was meant when it hears "sauce");
- `homophone`: one grammar word swapped for a homophone ("for" -> "four"), where there is one;
- `homophone in slot`: the same inside a slot value ("the blew book", "one hundred to");
- `dropped, timers/media/covers`: the `dropped` sentences of the families where several intents
  share most of their words ("pause / cancel / increase the timer", "pause / resume / next on
  the tv", "open / close / set the blinds"), where a lost word most easily means another intent.

`evaluate` scores any matcher: the full one (`CommandSet.match`) or plain hassil
(`CommandSet.match_hassil`) as the reference that repairs nothing.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.intents.commandset import CommandSet
from assistant.intents.model import IntentMatch
from assistant.intents.nearmiss import HOMOPHONES
from assistant.intents.normalize import word_core
from assistant.intents.sampling import sample_intents

_ARTICLE = re.compile(r"^(?:the|a|an) ")

FAMILY = "dropped, timers/media/covers"
KINDS = ("clean", "fillers", "dropped", "homophone", "dropped slot word", "homophone in slot", FAMILY)
# Words that put a sentence in a multi-intent family (timers, media players, covers).
FAMILY_WORDS = frozenset(
    {"timer", "timers"}
    | {"pause", "resume", "unpause", "next", "previous", "skip", "mute", "unmute", "volume", "play", "track", "song"}
    | {"open", "close", "blinds", "blind", "curtains", "curtain", "shades", "shade", "shutters", "garage", "awning"}
    | {"window", "windows", "gate", "cover", "covers", "position"}
)

Matcher = Callable[[str, "Mapping[str, Any] | None"], "IntentMatch | None"]


@dataclass
class Score:
    """Outcomes of one perturbation kind; `grammar_wrong` counts the wrong actions where the
    perturbed text is itself a sentence of the grammar, read the same way by plain hassil with no
    wildcard involved ("is the kitchen light on" without "is" is "kitchen light on"): no matcher
    that keeps the grammar's sentences avoids those; `wildcard_wrong` the ones plain hassil reads
    the same with a wildcard taking the words as heard ("pause my sauce timer" for "pasta sauce"):
    the text names another thing, which no matcher can know; what is left are the matcher's own."""

    counts: Counter = field(default_factory=Counter)
    wrong_examples: list[tuple[str, str, str]] = field(default_factory=list)
    grammar_wrong: int = 0
    wildcard_wrong: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def rate(self, outcome: str) -> float:
        return self.counts[outcome] / self.total if self.total else 0.0


def perturbations(text: str, rng: random.Random, slot_words: frozenset[int] = frozenset()) -> dict[str, list[str]]:
    words = text.split()
    whisper = lambda ws: (" ".join(ws)[:1].upper() + " ".join(ws)[1:]).rstrip(".?!") + "."  # noqa: E731
    result: dict[str, list[str]] = {kind: [] for kind in KINDS if kind != "clean"}
    result["fillers"].append("Uh, " + whisper(words))
    if len(words) >= 2:
        cut = rng.randrange(1, len(words))
        result["fillers"].append(whisper(words[:cut] + ["um"] + words[cut:]))
    if len(words) >= 3:
        family = any(word_core(w) in FAMILY_WORDS for i, w in enumerate(words) if i not in slot_words)
        for index in range(len(words)):
            kind = "dropped slot word" if index in slot_words else "dropped"
            result[kind].append(whisper(words[:index] + words[index + 1 :]))
            if family and kind == "dropped":
                result[FAMILY].append(result[kind][-1])
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


def _folded(slots: dict[str, Any]) -> dict[str, Any]:
    """Slot text compared case-blind and without a leading article: Whisper's sentence case
    capitalises a wildcard value that starts the sentence ("The blue book in 3 minutes"), and a
    sampled value "the blue book" after an optional "[the]" loses its own "the" to it when the
    perturbation drops "my" ("off my the blue book timer"); neither changes the action."""
    return {name: _ARTICLE.sub("", value.casefold()) if isinstance(value, str) else value for name, value in slots.items()}


def evaluate(
    commands: CommandSet,
    per_template: int = 3,
    seed: int = 1,
    *,
    context: Mapping[str, Any] | None = None,
    matcher: Matcher | None = None,
    every: int = 1,
) -> dict[str, Score]:
    """Score every perturbation kind over sentences sampled from `commands`' own grammar.

    `matcher` defaults to `commands.match`; `context` is passed to it (HA's grammar asks for the
    satellite's area); `every` keeps one sampled sentence in that many (a smaller, still
    grammar-wide set for tests).
    """
    match = matcher or commands.match
    rng = random.Random(seed)
    scores = {kind: Score() for kind in KINDS}
    seen: set[str] = set()
    samples = sample_intents(commands.hassil_intents, commands.extra_slot_lists, per_template, seed)
    for number, sample in enumerate(samples):
        if number % every or sample.text in seen:
            continue
        seen.add(sample.text)
        reference = commands.match_hassil(sample.text, context)
        if reference is None or reference.intent != sample.intent:
            continue  # ambiguous in the grammar itself: not a test of slips
        kinds = {"clean": [sample.text], **perturbations(sample.text, rng, sample.slot_words)}
        for kind, texts in kinds.items():
            for text in texts:
                got = match(text, context)
                if got is None:
                    outcome = "none"
                elif _same(got, reference):
                    outcome = "correct"
                else:
                    outcome = "wrong"
                    plain = commands.hassil_reading(text, context)
                    if plain is not None and _same(got, plain[0]):
                        if plain[1]:
                            scores[kind].wildcard_wrong += 1
                        else:
                            scores[kind].grammar_wrong += 1
                    how = "" if got.exact else " (near-miss)"
                    scores[kind].wrong_examples.append(
                        (text, f"{reference.intent} {reference.slots}", f"{got.intent} {got.slots}{how}")
                    )
                scores[kind].counts[outcome] += 1
    return scores


def _same(a: IntentMatch, b: IntentMatch) -> bool:
    return a.intent == b.intent and _folded(a.slots) == _folded(b.slots)


def table(scores: dict[str, Score]) -> str:
    lines = [
        "| perturbation | sentences | correct | wrong action | of which grammar sentences "
        "| of which a wildcard as heard | no match |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, score in scores.items():
        share = lambda count: count / score.total if score.total else 0.0  # noqa: E731
        lines.append(
            f"| {kind} | {score.total} | {score.rate('correct'):.1%} | {score.rate('wrong'):.1%} | "
            f"{share(score.grammar_wrong):.1%} | {share(score.wildcard_wrong):.1%} | {score.rate('none'):.1%} |"
        )
    return "\n".join(lines)


def compare(columns: dict[str, dict[str, Score]]) -> str:
    """One row per perturbation: correct / wrong action / no match for each named matcher."""
    names = list(columns)
    header = "| perturbation | sentences | " + " | ".join(f"{n}: correct | {n}: wrong | {n}: none" for n in names) + " |"
    lines = [header, "| --- | ---: |" + " ---: | ---: | ---: |" * len(names)]
    for kind in KINDS:
        cells = []
        for name in names:
            score = columns[name][kind]
            cells += [f"{score.rate('correct'):.1%}", f"{score.rate('wrong'):.1%}", f"{score.rate('none'):.1%}"]
        lines.append(f"| {kind} | {columns[names[0]][kind].total} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
