"""A decoding guide: everything a hassil grammar can say, as a token automaton over Whisper's tokenizer.

Guided recognition asks Whisper's decoder to score only what the commands allow (see
assistant/asr/guided.py). This module says, at each decoding step, which tokens those are.

It is built in two layers, so that a large grammar never has its sentences enumerated (Home
Assistant's English intents expand to millions of sentences):

1. A word graph (an NFA) built from the same parsed hassil templates the matcher uses:
   alternatives, optionals, permutations (every order, up to 5 items), expansion rules, list
   values (their `in:` forms, shared as word tries), number ranges (digits as Whisper writes
   them, "5", "25", "3,600", "2.5", and words, "five", "twenty-five", "twenty five"), wildcards and
   skip words (at the start and the end of a sentence, as hassil's own FST and speech-to-phrase
   place them). A template's words can be glued across groups (`light[s]`): the graph is built
   over (template position, unfinished word) pairs, as assistant/intents/wordgraph.py does for
   the near-miss matcher.
2. A token automaton walked lazily over that graph. Whisper's BPE splits text into words that
   keep their leading space (" turn", " on", "'s", " 25"), so each grammar word is tokenised on
   its own with a leading space, in the spellings Whisper uses (as written, lower case,
   Capitalised, UPPER for words of up to 3 letters: "TV"); "percent" may also be "%" and a
   symbol may be glued to the word before it ("50%"). A state is the set of places the tokens
   so far can have reached (inside a word, between words, inside a wildcard); states and their
   transitions are interned and cached as decoding visits them, so a state costs its work once.
   After the last word the sentence may end, optionally after one ".", "?" or "!".

Wildcard slots (`{item}`) take any text token (the first one must start a word) and stay open
while the grammar's next words are tried beside them: the decoder's scores decide where the
slot ends. A template that can be said with wildcards alone ("{message}") would accept any
speech, so it is left out of the guide (the free transcription handles it).

The asr package sits below the intents package, so the guide takes hassil's own objects
through the small `Grammar` protocol (the intents `CommandSet` satisfies it).
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence as Seq
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from hassil.expression import Alternative, Expression, ListReference, Permutation, RuleReference, Sentence, Sequence, TextChunk
from hassil.intents import Intents, RangeFractionType, RangeSlotList, SlotList, TextSlotList, WildcardSlotList
from hassil.numbers import get_rbnf_engine
from hassil.sample import sample_expression

log = logging.getLogger(__name__)

MAX_PERMUTATION_ITEMS = 5
"""Permutations of more items keep their written order only (6 items would be 720 copies)."""
MAX_VALUE_EXPANSIONS = 200
"""Spoken forms taken from one list value that is itself a template."""
MAX_RULE_DEPTH = 32
END_PUNCTUATION = (".", "?", "!")
_EDGE_PUNCTUATION = ".,!?;:\"“”"
_UNFINISHED = re.compile(r"\S*$")

# word-graph edge kinds
_EPS, _WORD, _SLOT, _WILD = range(4)
# cursor kinds: places a token sequence can have reached
_AT, _IN_SLOT, _IN_WORD, _IN_WILD, _DONE = range(5)


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def plain_numbers(text: str) -> str:
    """Whisper's thousands separators dropped ("3,600" -> "3600"): the guide allows them for
    the decoder's sake, but a matcher may read "1,258" as 1.258."""
    return _THOUSANDS.sub("", text)


class Grammar(Protocol):
    """What the guide needs from a loaded command set (assistant.intents.CommandSet has it)."""

    @property
    def hassil_intents(self) -> Intents: ...

    @property
    def extra_slot_lists(self) -> dict[str, SlotList]: ...


class Tokenizer(Protocol):
    """The parts of whisper.tokenizer.Tokenizer the guide uses."""

    eot: int
    encoding: Any  # tiktoken Encoding: n_vocab, decode_single_token_bytes

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class Step:
    """What may come next in one automaton state.

    `tokens`: the grammar's explicit next tokens (sorted, without end-of-text); `free`: 0, or
    1 when any word-starting text token may also come (a wildcard's first token), or 2 when any
    text token may (inside a wildcard); `end`: the sentence may end here (end-of-text allowed).
    """

    tokens: np.ndarray
    free: int
    end: bool


class DecodingGuide:
    """The token automaton of one grammar. States are ints; `start` is the empty sentence.

    Thread-safety: states are created lazily and cached; building a state twice (two threads
    racing) gives equal results, so concurrent use from one decoding worker at a time is the
    intended use (the model lock serialises decoding anyway).
    """

    def __init__(self, graph: _WordGraph, tokenizer: Tokenizer, n_vocab: int, templates: int, dropped: int) -> None:
        self.tokenizer = tokenizer
        self.n_vocab = n_vocab
        self.eot = tokenizer.eot
        self.templates = templates
        """Sentence templates in the guide."""
        self.dropped_templates = dropped
        """Templates left out because wildcards alone could say them."""
        self._graph = graph
        self.text_tokens, self.word_start_tokens = _token_classes(tokenizer, n_vocab)
        self._punctuation = {tokenizer.encode(p)[0]: p for p in END_PUNCTUATION}
        self._spellings: dict[str, list[tuple[int, ...]]] = {}
        self._spellings_last: dict[str, list[tuple[int, ...]]] = {}
        self._glued: set[tuple[int, ...]] = set()  # spellings that end the sentence ("%.")
        self._positions: dict[tuple, tuple[dict[int, list[tuple]], tuple, bool]] = {}
        self._state_ids: dict[frozenset, int] = {}
        self._states: list[frozenset] = []
        self._steps: list[_Expanded | None] = []
        self._moves: dict[tuple[int, int], int | None] = {}
        self.empty = templates == 0
        """True when the grammar gave nothing to guide with (decode freely instead)."""
        self.start = self._intern(frozenset([(_AT, graph.start)])) if not self.empty else -1
        if not self.empty:
            self._expanded(self.start)  # the first step of every decode: built now, not on first use

    # -- the automaton -----------------------------------------------------------------------

    def step(self, state: int) -> Step:
        """What may follow `state`."""
        expanded = self._expanded(state)
        return expanded.step

    def advance(self, state: int, token: int) -> int | None:
        """The state after `token` (None: the grammar does not allow it; end-of-text ends, it
        has no next state)."""
        key = (state, token)
        if key in self._moves:
            return self._moves[key]
        expanded = self._expanded(state)
        cursors: set[tuple] = set(expanded.moves.get(token, ()))
        if expanded.wild_any and self.text_tokens[token]:
            cursors |= expanded.wild_any
        if expanded.wild_word and self.word_start_tokens[token]:
            cursors |= expanded.wild_word
        result = self._intern(frozenset(cursors)) if cursors else None
        self._moves[key] = result
        return result

    def is_complete(self, state: int) -> bool:
        """The tokens so far are a whole sentence of the grammar (end-of-text allowed)."""
        return self._expanded(state).step.end

    def in_wildcard(self, state: int) -> bool:
        return self._expanded(state).step.free > 0

    def accepts(self, tokens: Iterable[int]) -> bool:
        """Whether the grammar can say exactly these text tokens (then end)."""
        if self.empty:
            return False
        state: int | None = self.start
        for token in tokens:
            state = self.advance(state, token)
            if state is None:
                return False
        return self.is_complete(state)

    def accepts_text(self, text: str) -> bool:
        """Whether the guide allows `text` written as Whisper writes it (leading space added)."""
        return self.accepts(self.tokenizer.encode(" " + text.strip()))

    @property
    def states_built(self) -> int:
        """Token-automaton states created so far (they are built as decoding visits them)."""
        return len(self._states)

    @property
    def word_nodes(self) -> int:
        """Nodes of the word graph: the guide's size, which grows with the templates, not with
        the sentences they expand to."""
        return len(self._graph.edges)

    # -- internals -------------------------------------------------------------------------------

    def _intern(self, cursors: frozenset) -> int:
        found = self._state_ids.get(cursors)
        if found is None:
            found = len(self._states)
            self._state_ids[cursors] = found
            self._states.append(cursors)
            self._steps.append(None)
        return found

    def _expanded(self, state: int) -> _Expanded:
        expanded = self._steps[state]
        if expanded is None:
            expanded = self._expand(self._states[state])
            self._steps[state] = expanded
        return expanded

    def _expand(self, cursors: frozenset) -> _Expanded:
        moves: dict[int, set[tuple]] = {}
        wild_any: set[tuple] = set()
        wild_word: set[tuple] = set()
        end = False
        for cursor in cursors:
            kind = cursor[0]
            if kind in (_AT, _IN_SLOT):
                end |= self._add_position(cursor, moves, wild_word)
            elif kind == _IN_WORD:
                _, tokens, index, after = cursor
                nxt = after if index + 1 == len(tokens) else (_IN_WORD, tokens, index + 1, after)
                moves.setdefault(tokens[index], set()).add(nxt)
            elif kind == _IN_WILD:  # a wildcard with at least one token: more, or what follows it
                wild_any.add(cursor)
                end |= self._add_position((_AT, cursor[1]), moves, wild_word)
            else:  # _DONE: only end-of-text
                end = True
        free = 2 if wild_any else 1 if wild_word else 0
        step = Step(tokens=np.array(sorted(moves), dtype=np.int64), free=free, end=end)
        return _Expanded(step=step, moves={t: frozenset(c) for t, c in moves.items()},
                         wild_any=frozenset(wild_any), wild_word=frozenset(wild_word))

    def _add_position(self, cursor: tuple, moves: dict[int, set[tuple]], wild_word: set[tuple]) -> bool:
        """Merge what may follow a between-words `cursor`; return whether the sentence may end."""
        first, wilds, end = self._position(cursor)
        for token, nexts in first.items():
            moves.setdefault(token, set()).update(nexts)
        wild_word.update(wilds)
        return end

    def _position(self, cursor: tuple) -> tuple[dict[int, list[tuple]], tuple[tuple, ...], bool]:
        """For a between-words cursor: (first token -> cursors after it, the cursors of
        wildcards that may start here (their first token makes them "started"), may end)."""
        cached = self._positions.get(cursor)
        if cached is not None:
            return cached
        graph = self._graph
        words: list[tuple[str, tuple]] = []
        wild_dsts: list[int] = []
        end = False
        if cursor[0] == _AT:
            nodes = [cursor[1]]
        else:
            _, trie_id, tnode, dst = cursor
            trie = graph.tries[trie_id]
            for word, child in trie.children[tnode].items():
                words.append((word, graph.trie_cursor(trie_id, child, dst)))
            nodes = [dst] if tnode in trie.terminal else []
        for node in nodes:
            for member in graph.closure(node):
                if member == graph.end:
                    end = True
                for kind, payload, dst in graph.edges[member]:
                    if kind == _WORD:
                        words.append((payload, (_AT, dst)))
                    elif kind == _SLOT:
                        trie = graph.tries[payload]
                        for word, child in trie.children[0].items():
                            words.append((word, graph.trie_cursor(payload, child, dst)))
                    elif kind == _WILD:
                        wild_dsts.append(dst)
        first: dict[int, list[tuple]] = {}
        for word, after in words:
            spellings = self._spell(word)
            if self._spell_last(word) and self._position(after)[2]:
                # BPE glues final punctuation to a symbol: "50%." is " 50", "%."
                spellings = spellings + self._spell_last(word)
            for tokens in spellings:
                nxt = after if len(tokens) == 1 else (_IN_WORD, tokens, 1, after)
                if tokens in self._glued:
                    nxt = (_DONE,) if len(tokens) == 1 else (_IN_WORD, tokens, 1, (_DONE,))
                first.setdefault(tokens[0], []).append(nxt)
        if end:
            for token in self._punctuation:
                first.setdefault(token, []).append((_DONE,))
        result = (first, tuple((_IN_WILD, dst) for dst in dict.fromkeys(wild_dsts)), end)
        self._positions[cursor] = result
        return result

    def _spell_last(self, word: str) -> list[tuple[int, ...]]:
        """Spellings of a symbol word with the final punctuation glued to it by BPE."""
        found = self._spellings_last.get(word)
        if found is not None:
            return found
        glued = []
        for tokens in self._spell(word):
            text = self.tokenizer.encoding.decode(list(tokens))
            if text[-1:].isalnum():
                continue
            for mark in END_PUNCTUATION:
                merged = tuple(self.tokenizer.encode(text + mark))
                if merged[-1] not in self._punctuation:
                    glued.append(merged)
                    self._glued.add(merged)
        self._spellings_last[word] = glued
        return glued

    def _spell(self, word: str) -> list[tuple[int, ...]]:
        """The token sequences Whisper may write `word` as (with its leading space)."""
        found = self._spellings.get(word)
        if found is not None:
            return found
        forms = [word, word.lower(), word[:1].upper() + word[1:]]
        if len(word) <= 3 and word.isalpha():
            forms.append(word.upper())
        if word.lower() == "percent":
            forms.append("%")
        spelled: list[tuple[int, ...]] = []
        for form in dict.fromkeys(forms):
            texts = [" " + form]
            if not any(c.isalnum() for c in form):
                texts.append(form)  # a symbol glued to the word before it: "50%"
            if form == "%":
                texts = ["%"]
            for text in texts:
                tokens = tuple(self.tokenizer.encode(text))
                if tokens and tokens not in spelled:
                    spelled.append(tokens)
        self._spellings[word] = spelled
        return spelled


@dataclass(frozen=True)
class _Expanded:
    step: Step
    moves: dict[int, frozenset]
    wild_any: frozenset  # cursors that stay in a wildcard on any text token
    wild_word: frozenset  # cursors of wildcards starting on a word-start token


class _Trie:
    """Phrases (tuples of words) of one slot list, shared by every reference to the list."""

    def __init__(self, phrases: Iterable[tuple[str, ...]]) -> None:
        self.children: list[dict[str, int]] = [{}]
        self.terminal: set[int] = set()
        for phrase in phrases:
            node = 0
            for word in phrase:
                child = self.children[node].get(word)
                if child is None:
                    child = len(self.children)
                    self.children.append({})
                    self.children[node][word] = child
                node = child
            if node:
                self.terminal.add(node)


class _WordGraph:
    """Word-level NFA: edges[node] = [(kind, payload, dst)]; word payloads are strings, slot
    payloads index `tries`."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[int, Any, int]]] = []
        self.tries: list[_Trie] = []
        self.start = self.node()
        self.end = self.node()
        self._closures: dict[int, tuple[int, ...]] = {}

    def node(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def closure(self, node: int) -> tuple[int, ...]:
        """`node` and every node reachable from it through empty edges."""
        found = self._closures.get(node)
        if found is None:
            seen = {node}
            stack = [node]
            while stack:
                for kind, _, dst in self.edges[stack.pop()]:
                    if kind == _EPS and dst not in seen:
                        seen.add(dst)
                        stack.append(dst)
            found = tuple(seen)
            self._closures[node] = found
        return found

    def trie_cursor(self, trie_id: int, tnode: int, dst: int) -> tuple:
        """The cursor after a slot word: inside the phrase, or past the slot when it is done."""
        if not self.tries[trie_id].children[tnode]:
            return (_AT, dst)
        return (_IN_SLOT, trie_id, tnode, dst)

    def words(self) -> set[str]:
        found = {payload for out in self.edges for kind, payload, _ in out if kind == _WORD}
        for trie in self.tries:
            for children in trie.children:
                found.update(children)
        return found


class _Builder:
    """hassil templates -> fragment graph (text chunks, slots, empty edges) -> word graph."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.frag: list[list[tuple[int, str, Any]]] = []  # node -> [(dst, "eps"|"text"|"slot"|"wild", payload)]
        self.graph = _WordGraph()
        self._tries: dict[Any, int | None] = {}

    def node(self) -> int:
        self.frag.append([])
        return len(self.frag) - 1

    def build(self, expression: Expression, lists: Mapping[str, SlotList], rules: Mapping[str, Sentence],
              depth: int = 0) -> tuple[int, int]:
        start = self.node()
        if isinstance(expression, TextChunk):
            end = self.node()
            self.frag[start].append((end, "text", expression.text))
        elif isinstance(expression, Alternative):
            end = self.node()
            for item in expression.items:
                s, e = self.build(item, lists, rules, depth)
                self.frag[start].append((s, "eps", None))
                self.frag[e].append((end, "eps", None))
            if expression.is_optional:
                self.frag[start].append((end, "eps", None))
        elif isinstance(expression, Permutation):
            end = self.node()
            items = expression.items
            orders = itertools.permutations(items) if len(items) <= MAX_PERMUTATION_ITEMS else [items]
            for order in orders:
                s, e = self.build(Sequence(items=list(order)), lists, rules, depth)
                self.frag[start].append((s, "eps", None))
                self.frag[e].append((end, "eps", None))
        elif isinstance(expression, Sequence):
            end = start
            for item in expression.items:
                s, e = self.build(item, lists, rules, depth)
                self.frag[end].append((s, "eps", None))
                end = e
        elif isinstance(expression, RuleReference):
            end = self.node()
            rule = rules.get(expression.rule_name)
            if rule is not None and depth < MAX_RULE_DEPTH:
                s, e = self.build(rule.expression, lists, rules, depth + 1)
                self.frag[start].append((s, "eps", None))
                self.frag[e].append((end, "eps", None))
        elif isinstance(expression, ListReference):
            end = self.node()
            slot = self.slot(expression, lists, rules)
            if slot == "wild":
                self.frag[start].append((end, "wild", None))
            elif slot is not None:
                self.frag[start].append((end, "slot", slot))
        else:
            raise TypeError(f"unexpected hassil expression {type(expression).__name__}")
        return start, end

    def slot(self, ref: ListReference, lists: Mapping[str, SlotList], rules: Mapping[str, Sentence]) -> int | str | None:
        """The trie of a list's spoken forms ("wild" for a wildcard, None when it says nothing)."""
        slot_list = lists.get(ref.list_name)
        if slot_list is None and ref.is_inline_range:
            start, stop, step = ref.get_inline_range()  # type: ignore[misc]
            slot_list = RangeSlotList(name=ref.list_name, start=start, stop=stop, step=step)
        if isinstance(slot_list, WildcardSlotList):
            return "wild"
        if isinstance(slot_list, RangeSlotList):
            key: Any = ("range", slot_list.start, slot_list.stop, slot_list.step, slot_list.fraction_type,
                        slot_list.digits, slot_list.words, slot_list.words_language or self.language)
        elif isinstance(slot_list, TextSlotList):
            key = ("values", id(slot_list))
        else:
            return None
        if key not in self._tries:
            if isinstance(slot_list, RangeSlotList):
                phrases = range_phrases(slot_list, self.language)
            else:
                phrases = value_phrases(slot_list, lists, rules, self.language)
            if phrases:
                self.graph.tries.append(_Trie(phrases))
                self._tries[key] = len(self.graph.tries) - 1
            else:
                self._tries[key] = None
        return self._tries[key]

    def says_nothing_fixed(self, start: int, end: int) -> bool:
        """Whether `end` can be reached from `start` through wildcards and blanks alone."""
        seen = {start}
        stack = [start]
        while stack:
            node = stack.pop()
            if node == end:
                return True
            for dst, kind, payload in self.frag[node]:
                if dst not in seen and (kind in ("eps", "wild") or kind == "text" and not _words(payload)):
                    seen.add(dst)
                    stack.append(dst)
        return False

    def to_words(self, fstart: int, fend: int) -> None:
        """Fill the word graph: its states are (fragment node, unfinished word) pairs."""
        graph = self.graph
        ids: dict[tuple[int, str], int] = {}
        queue: list[tuple[int, str]] = []

        def state(fnode: int, buf: str) -> int:
            key = (fnode, buf)
            found = ids.get(key)
            if found is None:
                found = graph.start if key == (fstart, "") else graph.node()
                ids[key] = found
                queue.append(key)
            return found

        def chain(src: int, words: list[str], dst: int) -> None:
            if not words:
                graph.edges[src].append((_EPS, None, dst))
                return
            for index, word in enumerate(words):
                target = dst if index == len(words) - 1 else graph.node()
                graph.edges[src].append((_WORD, word, target))
                src = target

        state(fstart, "")
        while queue:
            fnode, buf = queue.pop()
            src = ids[(fnode, buf)]
            if fnode == fend:
                chain(src, _words(buf), graph.end)
            for dst, kind, payload in self.frag[fnode]:
                if kind == "eps":
                    graph.edges[src].append((_EPS, None, state(dst, buf)))
                elif kind == "text":
                    combined = buf + payload
                    rest = _UNFINISHED.search(combined).group()  # a word that may go on in the next chunk
                    head = combined[: len(combined) - len(rest)]
                    chain(src, _words(head), state(dst, rest))
                else:  # a slot or wildcard ends the unfinished word before it
                    before = src
                    if buf:
                        before = graph.node()
                        chain(src, _words(buf), before)
                    edge_kind = _WILD if kind == "wild" else _SLOT
                    graph.edges[before].append((edge_kind, payload, state(dst, "")))


def _words(text: str) -> list[str]:
    """Grammar words of a text as Whisper would write them apart (edge punctuation dropped)."""
    words = []
    for piece in text.split():
        word = piece.strip(_EDGE_PUNCTUATION)
        if word:
            words.append(word)
    return words


def range_phrases(slot_list: RangeSlotList, language: str) -> list[tuple[str, ...]]:
    """Every number of a range as Whisper may write it: digits and words."""
    numbers = list(slot_list.get_numbers())
    phrases: list[tuple[str, ...]] = []
    if slot_list.digits:
        for number in numbers:
            for text in _digit_forms(number):
                phrases.append((text,))
    if slot_list.words:
        spelled = _number_words(slot_list.words_language or language, slot_list.start, slot_list.stop,
                                slot_list.step, slot_list.fraction_type)
        phrases.extend(spelled)
    return list(dict.fromkeys(phrases))


def _digit_forms(number: float) -> list[str]:
    if float(number).is_integer():
        value = int(number)
        forms = [str(value)]
        if abs(value) >= 1000:
            forms.append(f"{value:,}")  # Whisper writes "3,600" as often as "3600"
        return forms
    return [f"{number:g}"]


@lru_cache(maxsize=64)
def _number_words(language: str, start: int, stop: int, step: int,
                  fraction_type: RangeFractionType | None) -> tuple[tuple[str, ...], ...]:
    """Spoken forms of a range's numbers (hassil's own RBNF engine, as its matcher reads them);
    hyphenated words also apart ("twenty-five", "twenty five")."""
    probe = RangeSlotList(name=None, start=start, stop=stop, step=step, fraction_type=fraction_type)
    try:
        engine = get_rbnf_engine(language)
    except (ValueError, KeyError):
        return ()
    forms: dict[tuple[str, ...], None] = {}
    for number in probe.get_numbers():
        try:
            texts = engine.format_number(number).text_by_ruleset.values()
        except (ValueError, KeyError):
            continue
        for text in texts:
            forms[tuple(_words(text))] = None
            forms[tuple(_words(text.replace("-", " ")))] = None
    return tuple(f for f in forms if f)


def value_phrases(slot_list: TextSlotList, lists: Mapping[str, SlotList], rules: Mapping[str, Sentence],
                  language: str) -> list[tuple[str, ...]]:
    """The spoken (`in:`) forms of a list's values, templates expanded (at most 200 each)."""
    phrases: dict[tuple[str, ...], None] = {}
    for value in slot_list.values:
        texts = itertools.islice(sample_expression(value.text_in, dict(lists), dict(rules), language=language),
                                 MAX_VALUE_EXPANSIONS)
        for text in texts:
            words = tuple(_words(text))
            if words:
                phrases[words] = None
    return list(phrases)


_CLASSES: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}


def _token_classes(tokenizer: Tokenizer, n_vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """(text tokens, word-start tokens) as boolean masks over the vocabulary: what a wildcard
    may say. Text tokens are the ordinary ones (below end-of-text) that are not Whisper's
    non-speech symbols; word-start tokens begin with a space and hold a letter or digit."""
    key = (tokenizer.encoding.name, n_vocab)
    found = _CLASSES.get(key)
    if found is None:
        text = np.zeros(n_vocab, dtype=bool)
        word_start = np.zeros(n_vocab, dtype=bool)
        decode = tokenizer.encoding.decode_single_token_bytes
        for token in range(min(tokenizer.eot, n_vocab)):
            raw = decode(token)
            text[token] = True
            if raw[:1] == b" " and any(chr(b).isalnum() for b in raw[1:] if b < 128):
                word_start[token] = True
        non_speech = getattr(tokenizer, "non_speech_tokens", ())
        text[list(t for t in non_speech if t < n_vocab)] = False
        word_start &= text
        found = (text, word_start)
        _CLASSES[key] = found
    return found


def build_guide(grammar: Grammar, tokenizer: Tokenizer, n_vocab: int | None = None) -> DecodingGuide:
    """The decoding guide of a loaded grammar (`n_vocab`: the model's logit count, by default
    the tokenizer's)."""
    return guide_from_intents(grammar.hassil_intents, tokenizer, grammar.extra_slot_lists, n_vocab)


def guide_from_intents(intents: Intents, tokenizer: Tokenizer, extra_lists: Mapping[str, SlotList] | None = None,
                       n_vocab: int | None = None) -> DecodingGuide:
    """The decoding guide of hassil intents (plus run-time lists such as HA's {name}/{area})."""
    started = time.perf_counter()
    language = intents.language or "en"
    builder = _Builder(language)
    fstart, fend = builder.node(), builder.node()
    body_start, body_end = builder.node(), builder.node()
    _skips(builder, intents.skip_words, fstart, body_start)
    _skips(builder, intents.skip_words, body_end, fend)
    base_lists = {**intents.slot_lists, **(extra_lists or {})}
    templates = dropped = 0
    for intent in intents.intents.values():
        for block in intent.data:
            lists = {**base_lists, **block.slot_lists}
            rules = {**intents.expansion_rules, **block.expansion_rules}
            for sentence in block.sentences:
                s, e = builder.build(sentence.expression, lists, rules)
                if builder.says_nothing_fixed(s, e):
                    dropped += 1
                    continue
                builder.frag[body_start].append((s, "eps", None))
                builder.frag[e].append((body_end, "eps", None))
                templates += 1
    builder.to_words(fstart, fend)
    guide = DecodingGuide(builder.graph, tokenizer, n_vocab or tokenizer.encoding.n_vocab, templates, dropped)
    log.debug("decoding guide: %d templates (%d wildcard-only left out), %d word nodes, %d ms",
              templates, dropped, len(builder.graph.edges), (time.perf_counter() - started) * 1000)
    return guide


def _skips(builder: _Builder, skip_words: Seq[str], src: int, dst: int) -> None:
    """At most one skip phrase ("please", "can you") between `src` and `dst`, or none."""
    builder.frag[src].append((dst, "eps", None))
    for phrase in dict.fromkeys(skip_words):
        if _words(phrase):
            middle = builder.node()
            builder.frag[src].append((middle, "text", " " + phrase + " "))
            builder.frag[middle].append((dst, "eps", None))
