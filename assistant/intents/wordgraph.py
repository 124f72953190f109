"""A sentence template as a graph of whole words, for near-miss matching.

hassil matches characters, and a template can glue text across groups (`light[s]`,
`{brightness}%`), so its expression tree is not a list of words. The near-miss matcher needs
words: it aligns the spoken words with the grammar allowing one dropped, extra or misheard word.
This module turns a parsed template (rules inlined, permutations expanded) into a DAG whose edges
are one grammar word, a slot (a list value, a number, a wildcard) or nothing, without expanding
alternatives into sentences (HA's English grammar has millions of expansions, its graph a few
hundred thousand edges).
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hassil.expression import Alternative, Expression, ListReference, Permutation, RuleReference, Sentence, Sequence, TextChunk
from hassil.intents import RangeSlotList, SlotList, TextSlotList, WildcardSlotList
from hassil.sample import sample_expression

from assistant.intents.normalize import word_core
from assistant.intents.ranges import _number_words

EPS, WORD, VALUES, NUMBER, WILD = range(5)
_MAX_PERMUTATION_ITEMS = 5
_MAX_VALUE_EXPANSIONS = 200
_WS = re.compile(r"\s+")


def tokenize(text: str, glued: frozenset[str] = frozenset()) -> list[str]:
    """Input words as the graph spells them (lower case, no edge punctuation, `%` as a word).

    `glued` holds grammar words written glued to a slot (`{hours}-hour` gives "-hour"): a spoken
    "27-hour" is split into "27" and "-hour" so the number slot can take its number.
    """
    words = []
    for token in text.replace("%", " percent ").split():
        core = word_core(token)
        cut = core.rfind("-", 1)
        if cut > 0 and core[cut:] in glued:
            words += [core[:cut], core[cut:]]
        elif core:
            words.append(core)
    return words


def word_key(word: str) -> str:
    return "percent" if word == "%" else word_core(word)


@dataclass
class SlotMatcher:
    """What a slot edge accepts: exact word sequences (list values, number words) or digits."""

    kind: int
    phrases: dict[tuple[str, ...], Any] = field(default_factory=dict)
    lengths: tuple[int, ...] = ()
    number_range: RangeSlotList | None = None

    def spans(self, words: list[str], start: int) -> list[int]:
        """Ends of the input spans starting at `start` this slot can consume."""
        ends = []
        for length in self.lengths:
            if start + length <= len(words) and tuple(words[start : start + length]) in self.phrases:
                ends.append(start + length)
        if self.number_range is not None and start < len(words):
            word = words[start].replace(",", ".")
            try:
                number = float(word)
            except ValueError:
                number = None
            if number is not None and self.number_range.start <= number <= self.number_range.stop:
                if start + 1 not in ends:
                    ends.append(start + 1)
        return ends


@dataclass
class Edge:
    dst: int
    kind: int
    key: str = ""  # normalised grammar word (WORD)
    out: str = ""  # the word as the grammar writes it (for the repaired sentence)
    slot: SlotMatcher | None = None


@dataclass
class WordGraph:
    start: int
    end: int
    edges: list[list[Edge]]
    order: list[int]
    words: frozenset[str]  # literal grammar words
    slot_words: frozenset[str]  # words of list values this template can take
    number_words: frozenset[str]  # words of spoken numbers its number slots take
    has_number: bool  # takes digits
    no_insert: frozenset[int]  # nodes right after a number: "one hundred to minutes" must not become 100
    has_wildcard: bool = False
    number_slots: tuple[SlotMatcher, ...] = ()  # what its range slots accept


def takes_number(slots: tuple[SlotMatcher, ...], word: str) -> bool:
    """Whether one of the range `slots` could take `word` as a whole number, or its number part
    ("27" of "27-hour", "sixty-nine" of "sixty-nine-minute")."""
    parts = [word]
    while "-" in word.strip("-"):
        word = word.rsplit("-", 1)[0]
        parts.append(word)
    return any(slot.spans([part], 0) for part in parts for slot in slots)


class _Builder:
    def __init__(
        self,
        slot_lists: dict[str, SlotList],
        rules: dict[str, Sentence],
        language: str,
        matchers: dict[Any, SlotMatcher | None] | None = None,
    ) -> None:
        self.slot_lists = slot_lists
        self.rules = rules
        self.language = language
        # fragment graph: node -> list of (dst, kind, payload)
        self.frag: list[list[tuple[int, str, Any]]] = []
        # Shared between templates: expanding a list of a thousand names once is enough.
        self.matchers = {} if matchers is None else matchers

    def node(self) -> int:
        self.frag.append([])
        return len(self.frag) - 1

    def build(self, expression: Expression, depth: int = 0) -> tuple[int, int]:
        start = self.node()
        if isinstance(expression, TextChunk):
            end = self.node()
            self.frag[start].append((end, "text", expression.text))
            return start, end
        if isinstance(expression, Alternative):
            end = self.node()
            for item in expression.items:
                s, e = self.build(item, depth)
                self.frag[start].append((s, "eps", None))
                self.frag[e].append((end, "eps", None))
            return start, end
        if isinstance(expression, Permutation):
            end = self.node()
            items = expression.items
            orders = itertools.permutations(items) if len(items) <= _MAX_PERMUTATION_ITEMS else [items]
            for order in orders:
                s, e = self.build(Sequence(items=list(order)), depth)
                self.frag[start].append((s, "eps", None))
                self.frag[e].append((end, "eps", None))
            return start, end
        if isinstance(expression, Sequence):
            current = start
            for item in expression.items:
                s, e = self.build(item, depth)
                self.frag[current].append((s, "eps", None))
                current = e
            return start, current
        if isinstance(expression, RuleReference):
            rule = self.rules.get(expression.rule_name)
            end = self.node()
            if rule is not None and depth < 32:
                s, e = self.build(rule.expression, depth + 1)
                self.frag[start].append((s, "eps", None))
                self.frag[e].append((end, "eps", None))
            return start, end
        if isinstance(expression, ListReference):
            end = self.node()
            matcher = self.slot_matcher(expression)
            if matcher is not None:
                self.frag[start].append((end, "slot", matcher))
            return start, end
        raise ValueError(f"unexpected expression {expression!r}")

    def slot_matcher(self, ref: ListReference) -> SlotMatcher | None:
        name = ref.list_name
        slot_list = self.slot_lists.get(name)
        cache_key = id(slot_list) if slot_list is not None else ("inline", name)
        if cache_key in self.matchers:
            return self.matchers[cache_key]
        if slot_list is None and ref.is_inline_range:
            start, stop, step = ref.get_inline_range()  # type: ignore[misc]
            slot_list = RangeSlotList(name=name, start=start, stop=stop, step=step)
        matcher: SlotMatcher | None = None
        if isinstance(slot_list, WildcardSlotList):
            matcher = SlotMatcher(kind=WILD)
        elif isinstance(slot_list, RangeSlotList):
            phrases: dict[tuple[str, ...], Any] = {}
            if slot_list.words:
                lang = slot_list.words_language or self.language
                try:
                    for text, number in _number_words(
                        lang, slot_list.start, slot_list.stop, slot_list.step, slot_list.fraction_type
                    ).items():
                        phrases[tuple(tokenize(text))] = number
                except (ValueError, KeyError):
                    pass
            matcher = SlotMatcher(
                kind=NUMBER,
                phrases=phrases,
                lengths=tuple(sorted({len(p) for p in phrases})),
                number_range=slot_list if slot_list.digits else None,
            )
        elif isinstance(slot_list, TextSlotList):
            phrases = {}
            for value in slot_list.values:
                texts = itertools.islice(
                    sample_expression(value.text_in, self.slot_lists, self.rules, language=self.language),
                    _MAX_VALUE_EXPANSIONS,
                )
                for text in texts:
                    words = tuple(tokenize(text))
                    if words:
                        phrases.setdefault(words, value.value_out)
            matcher = SlotMatcher(kind=VALUES, phrases=phrases, lengths=tuple(sorted({len(p) for p in phrases})))
        self.matchers[cache_key] = matcher
        return matcher

    def to_words(self, fstart: int, fend: int) -> WordGraph:
        """Turn the fragment graph into a word graph: states are (fragment node, unfinished word)."""
        edges: list[list[Edge]] = []
        state_ids: dict[tuple[int, str], int] = {}
        queue: deque[tuple[int, str]] = deque()

        def new_node() -> int:
            edges.append([])
            return len(edges) - 1

        def state(fnode: int, buf: str) -> int:
            key = (fnode, buf)
            if key not in state_ids:
                state_ids[key] = new_node()
                queue.append(key)
            return state_ids[key]

        def chain(src: int, words: list[str], dst: int) -> None:
            words = [w for w in words if word_key(w)]
            if not words:
                edges[src].append(Edge(dst=dst, kind=EPS))
                return
            current = src
            for index, word in enumerate(words):
                target = dst if index == len(words) - 1 else new_node()
                edges[current].append(Edge(dst=target, kind=WORD, key=word_key(word), out=word))
                current = target

        start = state(fstart, "")
        end = new_node()
        while queue:
            fnode, buf = queue.popleft()
            src = state_ids[(fnode, buf)]
            if fnode == fend:
                chain(src, [buf] if buf else [], end)
            for dst, kind, payload in self.frag[fnode]:
                if kind == "eps":
                    edges[src].append(Edge(dst=state(dst, buf), kind=EPS))
                elif kind == "text":
                    combined = buf + payload
                    pieces = _WS.split(combined)
                    if combined and not combined[-1].isspace():
                        words, rest = pieces[:-1], pieces[-1]
                    else:
                        words, rest = pieces, ""
                    chain(src, [w for w in words if w], state(dst, rest))
                else:  # slot: an unfinished word before it is a word of its own
                    if buf:
                        middle = new_node()
                        chain(src, [buf], middle)
                        src_slot = middle
                    else:
                        src_slot = src
                    edges[src_slot].append(Edge(dst=state(dst, ""), kind=payload.kind, slot=payload))
        order = _topological(edges)
        words = frozenset(edge.key for out in edges for edge in out if edge.kind == WORD)
        value_words = frozenset(
            word
            for out in edges
            for edge in out
            if edge.kind == VALUES and edge.slot is not None
            for phrase in edge.slot.phrases
            for word in phrase
        )
        number_edges = [edge for out in edges for edge in out if edge.kind == NUMBER and edge.slot is not None]
        spoken_numbers = frozenset(word for edge in number_edges for phrase in edge.slot.phrases for word in phrase)
        return WordGraph(
            start=start,
            end=end,
            edges=edges,
            order=order,
            words=words,
            slot_words=value_words,
            number_words=spoken_numbers,
            has_number=any(edge.slot.number_range is not None for edge in number_edges),
            no_insert=_eps_closure(edges, {edge.dst for edge in number_edges}),
            has_wildcard=any(edge.kind == WILD for out in edges for edge in out),
            number_slots=tuple({id(edge.slot): edge.slot for edge in number_edges}.values()),
        )


def _eps_closure(edges: list[list[Edge]], nodes: set[int]) -> frozenset[int]:
    """`nodes` and everything reachable from them through empty edges."""
    seen = set(nodes)
    stack = list(nodes)
    while stack:
        for edge in edges[stack.pop()]:
            if edge.kind == EPS and edge.dst not in seen:
                seen.add(edge.dst)
                stack.append(edge.dst)
    return frozenset(seen)


def _topological(edges: list[list[Edge]]) -> list[int]:
    indegree = [0] * len(edges)
    for out in edges:
        for edge in out:
            indegree[edge.dst] += 1
    ready = deque(i for i, d in enumerate(indegree) if d == 0)
    order = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for edge in edges[node]:
            indegree[edge.dst] -= 1
            if indegree[edge.dst] == 0:
                ready.append(edge.dst)
    return order


def build_word_graph(
    sentence: Sentence,
    slot_lists: dict[str, SlotList],
    rules: dict[str, Sentence],
    language: str,
    matchers: dict[Any, SlotMatcher | None] | None = None,
) -> WordGraph:
    builder = _Builder(slot_lists, rules, language, matchers)
    fstart, fend = builder.build(sentence.expression)
    return builder.to_words(fstart, fend)


def slot_words(slot_lists: dict[str, SlotList], language: str) -> set[str]:
    """Words of text list values (room names and the like) for the recogniser's vocabulary."""
    builder = _Builder(slot_lists, {}, language)
    words: set[str] = set()
    for name, slot_list in slot_lists.items():
        if isinstance(slot_list, TextSlotList):
            matcher = builder.slot_matcher(ListReference(list_name=name))
            if matcher is not None:
                for phrase in matcher.phrases:
                    words.update(phrase)
    return words


def continues(graph: WordGraph, words: list[str]) -> bool:
    """True when `words` can be the beginning of a longer sentence of this template.

    That is: after the words the grammar has more to say (a word, a slot), or the words end
    part-way through a list value or a number ("living" of "living room", "twenty" of "twenty
    five"), or inside a wildcard that ends the template ("remind me to {task}" may go on). A
    wildcard in the middle is taken to end where the template's next words begin, as the exact
    match that preceded this question read it; otherwise every sentence with a wildcard could
    "go on" by repeating its own tail.
    """
    n = len(words)
    reach: list[set[int]] = [set() for _ in range(n + 1)]
    reach[0].add(graph.start)
    for i in range(n + 1):
        reach[i] = set(_eps_closure(graph.edges, reach[i]))
        for node in reach[i]:
            for edge in graph.edges[node]:
                if edge.kind == WORD:
                    if i < n and edge.key == words[i]:
                        reach[i + 1].add(edge.dst)
                elif edge.kind == WILD:
                    for j in range(i + 1, n):
                        reach[j].add(edge.dst)
                    if i < n and graph.end in _eps_closure(graph.edges, {edge.dst}):
                        return True
                elif edge.slot is not None and i < n:
                    for end in edge.slot.spans(words, i):
                        reach[end].add(edge.dst)
                    rest = tuple(words[i:])
                    if any(len(phrase) > len(rest) and phrase[: len(rest)] == rest for phrase in edge.slot.phrases):
                        return True
    return any(edge.kind != EPS for node in reach[n] for edge in graph.edges[node])
