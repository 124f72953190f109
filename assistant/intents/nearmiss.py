"""Cautious matching of sentences that miss the grammar by one word.

Whisper drops a word ("milk to my shopping list"), adds one, or mishears one ("Set your timer
for 5 minutes", "four" for "for"). After exact matching fails, the spoken words are aligned with
every template's word graph (see `wordgraph`) by a weighted edit distance: slot values must
appear exactly (a slot is never invented or guessed), grammar words may be missing, replaced or
surrounded by one extra word. The result is accepted only when

- the best alignment costs at most one edit,
- it matched at least two grammar words or slots exactly, not counting light words like "the"
  (a one-word command is never guessed), and
- no other intent comes close (a runner-up less than half an edit behind means "unsure").

A wrong action is worse than no action, so every doubt ends in no match. The accepted alignment
is turned back into a sentence of the grammar ("repaired"), which hassil then matches exactly,
so slots come out the same way as for any exact match.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from assistant.intents.wordgraph import EPS, NUMBER, VALUES, WILD, WORD, WordGraph

INF = float("inf")
MAX_COST = 1.0
MARGIN = 0.5
MIN_MATCHED = 2
# A wildcard word costs a hair, so on a tie the alignment that matches grammar words wins
# ("pasta sauce | to my shopping list", not "pasta sauce my | to shopping list").
WILDCARD_WORD = 0.01
_LIMIT = MAX_COST + 0.2  # pruning bound: MAX_COST plus room for wildcard hairs

# Words whose absence or presence rarely changes what is meant.
LIGHT_WORDS = frozenset({"the", "a", "an", "my", "your", "me", "is", "are", "to", "of", "please", "in", "at", "for"})
# Words that reverse a command: never skipped as "extra".
NEGATIONS = frozenset({"not", "don't", "dont", "never", "no", "nothing", "without", "isn't", "aren't", "doesn't", "didn't"})

_HOMOPHONE_GROUPS = (
    ("to", "two", "too"),
    ("for", "four", "fore"),
    ("right", "write", "rite"),
    ("their", "there", "they're"),
    ("ate", "eight"),
    ("one", "won"),
    ("no", "know"),
    ("hour", "our"),
    ("weather", "whether"),
    ("by", "buy", "bye"),
    ("see", "sea"),
    ("new", "knew"),
    ("here", "hear"),
    ("wait", "weight"),
    ("red", "read"),
    ("blue", "blew"),
    ("whole", "hole"),
    ("meet", "meat"),
    ("week", "weak"),
    ("son", "sun"),
    ("mail", "male"),
    ("way", "weigh"),
    ("its", "it's"),
    ("your", "you're"),
    ("whose", "who's"),
    ("piece", "peace"),
    ("flower", "flour"),
    ("some", "sum"),
    ("tale", "tail"),
    ("would", "wood"),
    ("sale", "sail"),
    ("steal", "steel"),
    ("break", "brake"),
    ("night", "knight"),
    ("not", "knot"),
    ("i", "eye"),
    ("off", "of"),
    ("light", "lite"),
    ("lights", "lites"),
    ("timer", "timber"),
)
HOMOPHONES: dict[str, frozenset[str]] = {}
for _group in _HOMOPHONE_GROUPS:
    for _word in _group:
        HOMOPHONES[_word] = HOMOPHONES.get(_word, frozenset()) | frozenset(_group) - {_word}


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def substitution_cost(spoken: str, grammar: str) -> float:
    if spoken == grammar:
        return 0.0
    if spoken in HOMOPHONES.get(grammar, ()):
        return 0.5
    if min(len(spoken), len(grammar)) >= 4 and _edit_distance(spoken, grammar) <= 1 + (len(grammar) >= 8):
        return 0.5  # "light"/"lights", "timer"/"timers", spelling slips
    if min(len(spoken), len(grammar)) == 3 and _edit_distance(spoken, grammar) == 1:
        return 0.75  # "and"/"add": a misheard short word beats dropping it and inserting another
    # Unrelated words are not "misheard": only a drop plus an extra word explains them.
    return INF


def deletion_cost(grammar: str) -> float:
    return 0.5 if grammar in LIGHT_WORDS else 1.0


def insertion_cost(spoken: str, protected: frozenset[str] = frozenset()) -> float:
    """Cost of an extra spoken word. `protected` holds the template's list values and number
    words: a value out of place ("living room kitchen light on") means another command, and a
    stray number word ("hundred thirty-six") would change a number, so neither is noise."""
    if spoken in NEGATIONS or spoken in protected or spoken[:1].isdigit():
        return INF
    return 0.5 if spoken in LIGHT_WORDS else 1.0


@dataclass(frozen=True)
class Alignment:
    """The cheapest way through one template: its cost, exact word matches and repaired text."""

    cost: float
    matched: int
    repaired: str


def align(graph: WordGraph, words: list[str]) -> Alignment | None:
    """Cheapest alignment of `words` with `graph` costing at most MAX_COST, or None."""
    n = len(words)
    protected = graph.slot_words | graph.number_words
    rows: dict[int, list[float]] = {graph.start: [0.0] + [INF] * n}
    back: dict[int, list[tuple | None]] = {graph.start: [None] * (n + 1)}
    for node in graph.order:
        row = rows.get(node)
        if row is None:
            continue
        bp = back[node]
        for j in range(1, n + 1 if node not in graph.no_insert else 1):  # an extra spoken word here
            if row[j - 1] < INF:
                cost = row[j - 1] + insertion_cost(words[j - 1], protected)
                if cost < row[j]:
                    row[j] = cost
                    bp[j] = (node, j - 1, "ins", "")
        if min(row) > _LIMIT:
            continue
        for edge in graph.edges[node]:
            dst = edge.dst
            drow = rows.get(dst)
            if drow is None:
                drow = rows[dst] = [INF] * (n + 1)
                back[dst] = [None] * (n + 1)
            dbp = back[dst]
            kind = edge.kind
            if kind == EPS:
                for j in range(n + 1):
                    if row[j] < drow[j]:
                        drow[j] = row[j]
                        dbp[j] = (node, j, "eps", "")
            elif kind == WORD:
                key = edge.key
                skip = deletion_cost(key)
                for j in range(n + 1):
                    base = row[j]
                    if base > _LIMIT:
                        continue
                    if base + skip < drow[j]:
                        drow[j] = base + skip
                        dbp[j] = (node, j, "del", edge.out)
                    if j < n:
                        cost = base + substitution_cost(words[j], key)
                        if cost < drow[j + 1]:
                            drow[j + 1] = cost
                            dbp[j + 1] = (node, j, "match" if words[j] == key else "sub", edge.out)
            elif kind == WILD:
                best, best_j = INF, -1
                for j in range(n):
                    if row[j] - j * WILDCARD_WORD < best:
                        best, best_j = row[j] - j * WILDCARD_WORD, j
                    if words[j] in LIGHT_WORDS:
                        continue  # "eggs in | the shopping list": a wildcard does not end on "in"
                    cost = best + (j + 1) * WILDCARD_WORD
                    if cost < drow[j + 1]:
                        drow[j + 1] = cost
                        dbp[j + 1] = (node, best_j, "wild", " ".join(words[best_j : j + 1]))
            else:  # VALUES or NUMBER: exact spans only
                assert kind in (VALUES, NUMBER) and edge.slot is not None
                for j in range(n):
                    if row[j] > _LIMIT:
                        continue
                    for end in edge.slot.spans(words, j):
                        if row[j] < drow[end]:
                            drow[end] = row[j]
                            dbp[end] = (node, j, "slot", " ".join(words[j:end]))
    final = rows.get(graph.end)
    if final is None or final[n] > _LIMIT:
        return None
    alignment = _trace(back, graph.end, n, final[n])
    return alignment if alignment.cost <= MAX_COST else None


def _trace(back: dict[int, list[tuple | None]], node: int, j: int, cost: float) -> Alignment:
    out: list[str] = []
    matched = 0
    wildcard_words = 0
    step = back[node][j]
    while step is not None:
        prev, prev_j, op, text = step
        if op in ("match", "sub", "del", "slot", "wild") and text:
            out.append(text)
        if op == "slot" or (op == "match" and text.casefold() not in LIGHT_WORDS):
            matched += 1
        if op == "wild":
            wildcard_words += j - prev_j
        node, j = prev, prev_j
        step = back[node][j]
    repaired = " ".join(reversed(out)).replace(" %", "%")  # "{level}%" in a template is glued
    return Alignment(cost=round(cost - wildcard_words * WILDCARD_WORD, 6), matched=matched, repaired=repaired)


@dataclass(frozen=True)
class NearMiss:
    """The winning intent and its repaired sentences (several when templates tie)."""

    intent: str
    repaired: tuple[str, ...]
    cost: float


def best_near_miss(words: list[str], graphs: Iterable[tuple[str, WordGraph]]) -> NearMiss | None:
    """The intent that clearly wins for `words`, with the repaired sentence; None when unsure."""
    per_intent: dict[str, list[Alignment]] = {}
    for intent, graph in graphs:
        alignment = align(graph, words)
        if alignment is not None:
            per_intent.setdefault(intent, []).append(alignment)
    if not per_intent:
        return None
    ranked = sorted((min(a.cost for a in alignments), intent) for intent, alignments in per_intent.items())
    best_cost, best_intent = ranked[0]
    if len(ranked) > 1 and ranked[1][0] - best_cost < MARGIN:
        return None
    winners = [a for a in per_intent[best_intent] if a.cost == best_cost]
    if min(a.matched for a in winners) < max(MIN_MATCHED, 2 * best_cost):
        return None
    repaired = tuple(dict.fromkeys(a.repaired for a in winners))
    return NearMiss(intent=best_intent, repaired=repaired, cost=best_cost)
