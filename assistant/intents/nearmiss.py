"""Cautious matching of sentences that miss the grammar by one word.

Whisper drops a word ("milk to my shopping list"), adds one, or mishears one ("Set your timer
for 5 minutes", "four" for "for"). After exact matching fails, the spoken words are aligned with
every template's word graph (see `wordgraph`) by a weighted edit distance: slot values must
appear exactly (a slot is never invented or guessed), grammar words may be missing, replaced or
surrounded by one extra word. An extra word is one that means nothing to the grammar: a word any
template says or any list value holds is evidence of another reading, never noise ("stop timer
for" lost a number after "for": it is not "stop timer"; "add light bulbs to my list" is not
"bulbs"), unless it only repeats the word before it ("for for"). The result is accepted only when

- the best alignment costs at most one edit,
- it matched at least two grammar words or slots exactly, not counting light words like "the"
  (a one-word command is never guessed), and
- no other intent comes close (a runner-up less than half an edit behind means "unsure").

A wrong action is worse than no action, so every doubt ends in no match. The accepted alignment
is turned back into a sentence of the grammar ("repaired"), which hassil then matches exactly,
so slots come out the same way as for any exact match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from assistant.intents.wordgraph import EPS, NUMBER, VALUES, WILD, WORD, SlotMatcher, WordGraph, takes_number

INF = float("inf")
MAX_COST = 1.0
MARGIN = 0.5
MIN_MATCHED = 2
# A wildcard word costs a hair, so on a tie the alignment that matches grammar words wins
# ("pasta sauce | to my shopping list", not "pasta sauce my | to shopping list").
WILDCARD_WORD = 0.01

# Words whose absence or presence rarely changes what is meant.
LIGHT_WORDS = frozenset({"the", "a", "an", "my", "your", "me", "is", "are", "to", "of", "please", "in", "at", "for"})
# Light words whose presence as an extra word means nothing. Other light words cost a full
# extra word when added: "53 seconds to timer" is not "53 second timer" (it lost "add"). Not
# "my": it names something that exists, so "my 16 minute timer" lost its verb (pause, resume,
# cancel) and is no new "16 minute timer" (HA's grammar: 13 of 17 wrong repairs on one dropped
# word were that); "your" stays, Whisper hears "Set your timer" for "Set a timer".
FILLER_WORDS = frozenset({"the", "a", "an", "your", "please"})
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


def deletion_cost(grammar: str, wildcard: bool = False) -> float:
    """A light word missing costs half, except in a template with a wildcard: there the literal
    words are all the evidence, and a lost "in" turns "in 5 minutes call mom" into a timer name."""
    return 0.5 if grammar in LIGHT_WORDS and not wildcard else 1.0


def insertion_cost(spoken: str, protected: frozenset[str] = frozenset()) -> float:
    """Cost of an extra spoken word. `protected` holds the words that mean something: list
    values ("living room kitchen light on" means another command), number words (a stray
    "hundred" changes a number) and the grammar's own words (a leftover "named" or "for" says a
    slot was lost, "light" of "light bulbs" is part of the item), so none of them is noise."""
    if spoken in NEGATIONS or spoken in protected or spoken[:1].isdigit():
        return INF
    return 0.5 if spoken in FILLER_WORDS else 1.0


@dataclass(frozen=True)
class Alignment:
    """The cheapest way through one template: its cost, exact word matches and repaired text.

    `absorbed` are the words a wildcard took."""

    cost: float
    matched: int
    repaired: str
    absorbed: tuple[str, ...] = ()


@dataclass(frozen=True)
class WildcardRule:
    """What the wildcards of one intent's templates may take.

    `keywords` (the grammar's words, and the list values this intent's templates take) only at
    an extra word's price when the evidence is counted; never a number one of `numbers` (the
    intent's range slots) could take: "pause the 16 timer" is not a timer named "16"."""

    keywords: frozenset[str] = frozenset()
    numbers: tuple[SlotMatcher, ...] = ()


def align(
    graph: WordGraph,
    words: list[str],
    *,
    rule: WildcardRule = WildcardRule(),
    strict: bool = False,
    limit: float = MAX_COST,
    meaningful: frozenset[str] = frozenset(),
) -> Alignment | None:
    """Cheapest alignment of `words` with `graph` costing at most `limit`, or None.

    A wildcard takes any words for (almost) nothing, except what `rule` forbids, and, when
    `strict`, a keyword, which costs what an extra word costs: evidence for a template is
    counted outside its wildcards only. `meaningful` are the words of the whole grammar and its
    lists that are never an extra word (see `insertion_cost`), except as a repeat of the word
    before."""
    n = len(words)
    protected = graph.slot_words | graph.number_words | meaningful
    bound = limit + 0.2  # pruning bound: room for wildcard hairs
    rows: dict[int, list[float]] = {graph.start: [0.0] + [INF] * n}
    back: dict[int, list[tuple | None]] = {graph.start: [None] * (n + 1)}
    wild_price: list[float] | None = None
    for node in graph.order:
        row = rows.get(node)
        if row is None:
            continue
        bp = back[node]
        for j in range(1, n + 1 if node not in graph.no_insert else 1):  # an extra spoken word here
            if row[j - 1] < INF:
                repeated = j >= 2 and words[j - 1] == words[j - 2]  # "for for": a stutter, not a word
                cost = row[j - 1] + insertion_cost(words[j - 1], graph.number_words if repeated else protected)
                if cost < row[j]:
                    row[j] = cost
                    bp[j] = (node, j - 1, "ins", "")
        if min(row) > bound:
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
                skip = deletion_cost(key, graph.has_wildcard)
                for j in range(n + 1):
                    base = row[j]
                    if base > bound:
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
                if wild_price is None:
                    keywords = rule.keywords if strict else frozenset()
                    wild_price = [
                        INF
                        if takes_number(rule.numbers, w)
                        else WILDCARD_WORD + (insertion_cost(w) if w in keywords else 0.0)
                        for w in words
                    ]
                # cost of words[i:j+1] = row[i] + price[i] + ... + price[j], found in one pass
                best, best_j, paid = INF, -1, 0.0
                for j in range(n):
                    if row[j] - paid < best:
                        best, best_j = row[j] - paid, j
                    if wild_price[j] == INF:
                        best, best_j = INF, -1  # no span crosses a number the template's slots take
                        continue
                    paid += wild_price[j]
                    if words[j] in LIGHT_WORDS or best == INF:
                        continue  # "eggs in | the shopping list": a wildcard does not end on "in"
                    cost = best + paid
                    if cost < drow[j + 1]:
                        drow[j + 1] = cost
                        dbp[j + 1] = (node, best_j, "wild", " ".join(words[best_j : j + 1]))
            else:  # VALUES or NUMBER: exact spans only
                assert kind in (VALUES, NUMBER) and edge.slot is not None
                for j in range(n):
                    if row[j] > bound:
                        continue
                    for end in edge.slot.spans(words, j):
                        if row[j] < drow[end]:
                            drow[end] = row[j]
                            dbp[end] = (node, j, "slot", " ".join(words[j:end]))
    final = rows.get(graph.end)
    if final is None or final[n] > bound:
        return None
    alignment = _trace(back, graph.end, n, final[n], words)
    return alignment if alignment.cost <= limit else None


def _trace(back: dict[int, list[tuple | None]], node: int, j: int, cost: float, words: list[str]) -> Alignment:
    out: list[str] = []
    matched = 0
    absorbed: list[str] = []
    step = back[node][j]
    while step is not None:
        prev, prev_j, op, text = step
        if op in ("match", "sub", "del", "slot", "wild") and text:
            out.append(text)
        if op == "slot" or (op == "match" and text.casefold() not in LIGHT_WORDS):
            matched += 1
        if op == "wild":
            absorbed[:0] = words[prev_j:j]
        node, j = prev, prev_j
        step = back[node][j]
    repaired = " ".join(reversed(out)).replace(" %", "%")  # "{level}%" in a template is glued
    repaired = repaired.replace(" -", "-")  # and so is "{hours}-hour"
    return Alignment(
        cost=round(cost - len(absorbed) * WILDCARD_WORD, 6), matched=matched, repaired=repaired, absorbed=tuple(absorbed)
    )


@dataclass(frozen=True)
class NearMiss:
    """The winning intent and its repaired sentences (several when templates tie).

    `intent` is None when templates came close but no intent clearly won (unsure)."""

    intent: str | None
    repaired: tuple[str, ...] = ()
    cost: float = INF
    rivals: tuple[str, ...] = ()  # other readings of the same intent less than MARGIN behind


def best_near_miss(
    words: list[str],
    graphs: Iterable[tuple[str, WordGraph]],
    rules: Mapping[str, WildcardRule] | None = None,
    meaningful: frozenset[str] = frozenset(),
) -> NearMiss | None:
    """The intent that clearly wins for `words`, with the repaired sentence; None when no
    template comes close, `NearMiss(None)` when some do but none clearly wins.

    A template with a wildcard is aligned twice: with the wildcard free to take anything (how
    close its intent comes: every intent that close counts against the winner's margin, even one
    only a wildcard reaches) and strictly, with keywords in the wildcard costing as extra words
    (the evidence an intent may win on). `meaningful` is passed to `align`."""
    rules = rules or {}
    strict: dict[str, list[Alignment]] = {}
    reach: dict[str, float] = {}
    for intent, graph in graphs:
        rule = rules.get(intent, WildcardRule())
        loose = align(graph, words, rule=rule, limit=MAX_COST + MARGIN, meaningful=meaningful)
        if loose is None:
            continue
        reach[intent] = min(reach.get(intent, INF), loose.cost)
        alignment: Alignment | None = loose
        if any(w in rule.keywords for w in loose.absorbed):
            alignment = align(graph, words, rule=rule, strict=True, meaningful=meaningful)
        if alignment is not None and alignment.cost <= MAX_COST:
            strict.setdefault(intent, []).append(alignment)
    if not strict:
        return None
    best_cost, best_intent = min((min(a.cost for a in alignments), intent) for intent, alignments in strict.items())
    if any(cost - best_cost < MARGIN for intent, cost in reach.items() if intent != best_intent):
        return NearMiss(None)
    winners = [a for a in strict[best_intent] if a.cost == best_cost]
    if min(a.matched for a in winners) < max(MIN_MATCHED, 2 * best_cost):
        return NearMiss(None)
    repaired = tuple(dict.fromkeys(a.repaired for a in winners))
    rivals = sorted({a.repaired for a in strict[best_intent] if a.cost - best_cost < MARGIN} - set(repaired))
    return NearMiss(intent=best_intent, repaired=repaired, cost=best_cost, rivals=tuple(rivals))
