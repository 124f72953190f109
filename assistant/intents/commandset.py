"""A loaded commands file, ready to match transcripts.

Matching runs in stages, each only when the one before found nothing:
1. the text as written, through hassil (`recognize_ranked`, its best result), so every sentence of the grammar
   matches exactly as hassil would match it;
2. spellings that undo speech recognition habits (fillers removed, "%" as "percent", digits as
   words; see `normalize`), still through hassil;
3. the cautious near-miss stage (see `nearmiss`), whose repaired sentence goes through hassil
   again, so slots always come from hassil.
Range slot values are then corrected for hassil's number-word cache bug (see `ranges`).
Everything that can be computed ahead (word graphs, vocabulary, range slot tables, hassil's
number-word tries) is, at load.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hassil.expression import Sentence
from hassil.intents import Intents, RangeSlotList, SlotList
from hassil.recognize import RecognizeResult, recognize_ranked

from assistant.intents.loader import ExtraList, LoadedCommands, load
from assistant.intents.model import IntentMatch, IntentSpec
from assistant.intents.nearmiss import (
    FILLER_WORDS,
    HOMOPHONES,
    LIGHT_WORDS,
    MIN_MATCHED,
    NearMiss,
    WildcardRule,
    best_near_miss,
)
from assistant.intents.normalize import candidates, percent_as_word, strip_fillers
from assistant.intents.ranges import range_slots, range_value, tidy_number, warm_number_words
from assistant.intents.wordgraph import WORD, WordGraph, build_word_graph, continues, slot_words, takes_number, tokenize

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
# Voice commands are short; a transcript longer than this is not "a command with one slip".
MAX_NEAR_MISS_WORDS = 24


def load_commands(path: str | Path, *, extra_lists: Mapping[str, ExtraList] | None = None) -> CommandSet:
    """Load and validate a commands file; raises CommandsError (`FILE:LINE:COL: message`).

    `extra_lists` supplies lists the file uses but does not define, the way Home Assistant
    supplies `{name}`, `{area}` and `{floor}` at run time: a list of strings or `{"in", "out",
    "context"}` mappings, a hassil `SlotList`, or "wildcard".
    """
    return CommandSet(load(path, extra_lists))


class CommandSet:
    """Intents of one commands file with their matcher; immutable once built."""

    def __init__(self, loaded: LoadedCommands) -> None:
        self.path: Path = loaded.path
        self.language: str = loaded.language
        self.intents: dict[str, IntentSpec] = loaded.intents
        self._hassil = loaded.hassil_intents
        self._extra_lists = loaded.extra_lists or None
        self._range_slots: dict[int, dict[str, list[RangeSlotList]]] = {}
        self._graphs: list[tuple[str, WordGraph]] = []
        self._graph_index: dict[str, list[int]] = {}
        self._number_graphs: list[int] = []
        words: set[str] = set()
        matchers: dict[Any, Any] = {}
        all_lists: dict[str, SlotList] = {**self._hassil.slot_lists, **(loaded.extra_lists or {})}
        for intent in self._hassil.intents.values():
            for block in intent.data:
                slot_lists = {**all_lists, **block.slot_lists}
                rules: dict[str, Sentence] = {**self._hassil.expansion_rules, **block.expansion_rules}
                for sentence in block.sentences:
                    table = range_slots(sentence, slot_lists, rules)
                    if table:
                        self._range_slots[id(sentence)] = table
                    graph = build_word_graph(sentence, slot_lists, rules, self.language, matchers)
                    for word in (graph.words | graph.slot_words | graph.number_words) - LIGHT_WORDS:
                        self._graph_index.setdefault(word, []).append(len(self._graphs))
                    if graph.has_number:
                        self._number_graphs.append(len(self._graphs))
                    self._graphs.append((intent.name, graph))
                    words |= graph.words
                if block.slot_lists:
                    words |= slot_words(block.slot_lists, self.language)
        words |= slot_words(all_lists, self.language)
        warm_number_words(
            [r for table in self._range_slots.values() for ranges in table.values() for r in ranges], self.language
        )
        self._vocabulary_set = frozenset(w for w in words if w)
        grammar_words = frozenset(w for _, graph in self._graphs for w in graph.words)
        self._wildcard_rules = _wildcard_rules(self._graphs, grammar_words)
        # Words a repair may not drop as extra: any template's words and any list value's.
        self._meaningful = self._vocabulary_set - FILLER_WORDS
        # "-hour" of `{hours}-hour`: spoken "27-hour" is split to reach the number slot.
        self._glued = frozenset(w for w in grammar_words if w.startswith("-") and len(w) > 1)
        # The grammar's own spelling where it has one ("I", not "i"): Whisper copies the prompt.
        spelling: dict[str, str] = {}
        for _, graph in self._graphs:
            for out in graph.edges:
                for edge in out:
                    if edge.kind == WORD and edge.key not in spelling:
                        spelling[edge.key] = edge.out.strip(".,!?;:\"")
        self._vocabulary = sorted((spelling.get(w) or w for w in self._vocabulary_set), key=str.casefold)
        barge_in = self.barge_in_intents()
        barge_words = {w for name, graph in self._graphs if name in barge_in for w in graph.words | graph.slot_words if w}
        self._barge_in_vocabulary = sorted((spelling.get(w) or w for w in barge_words), key=str.casefold)

    # -- the contract --------------------------------------------------------------------------

    def match(self, text: str, context: Mapping[str, Any] | None = None) -> IntentMatch | None:
        """The intent `text` asks for: exact (incl. normalised spellings) first, then near-miss.

        An exact match whose wildcard took words of the grammar ("play the blue book living
        room": a search for "the blue book living room"?) is only kept when the near-miss stage
        finds no other reading of those words; when it finds one clear reading that is taken
        ("... in the living room"), when it is unsure, nothing is."""
        exact = self._exact(text, context)
        if exact is not None and not self._doubtful(exact):
            return self._to_match(exact, text, exact=True)
        near = self._near(text, context)
        if exact is not None and near is None:
            return self._to_match(exact, text, exact=True)  # no other reading: the wildcard stands
        if near is None or near.intent is None:
            return None
        return self._repaired(near, text, context)

    def can_continue(self, text: str) -> bool:
        """Whether a longer sentence of the grammar begins with `text` ("turn off the kitchen"
        can go on, "turn off the kitchen lights" cannot): the listen loop closes a command at
        its first pause only when it cannot. Fillers are dropped first, as for matching."""
        words = tokenize(percent_as_word(strip_fillers(text, self._vocabulary_set)))
        return any(continues(graph, words) for _, graph in self._graphs)

    def barge_in_intents(self) -> frozenset[str]:
        """Intents marked `barge_in: true`: the only ones heard while a reply plays."""
        return frozenset(name for name, spec in self.intents.items() if spec.barge_in)

    def vocabulary(self) -> list[str]:
        """Distinct words of the grammar and its list values (for Whisper's prompt)."""
        return list(self._vocabulary)

    def barge_in_vocabulary(self) -> list[str]:
        """Distinct words of the barge-in intents' sentences: Whisper's prompt while a reply
        plays, when only they can match (the whole grammar's words made tiny.en hear "stop"
        over a reply as "start")."""
        return list(self._barge_in_vocabulary)

    def static_replies(self) -> list[str]:
        """Replies that need no slot or handler value (can be rendered to speech ahead)."""
        from assistant.handlers.templates import parse_template

        replies: list[str] = []
        for spec in self.intents.values():
            if spec.reply is None:
                continue
            template = parse_template(spec.reply)
            if not template.fields:
                text = template.render({})
                if text not in replies:
                    replies.append(text)
        return replies

    @property
    def hassil_intents(self) -> Intents:
        """The hassil grammar (for samplers and benchmarks; do not modify)."""
        return self._hassil

    @property
    def extra_slot_lists(self) -> dict[str, SlotList]:
        return dict(self._extra_lists or {})

    # -- stages --------------------------------------------------------------------------------

    def match_exact(self, text: str, context: Mapping[str, Any] | None = None) -> IntentMatch | None:
        """Stages 1 and 2: hassil on the text as written, then on ASR-normalised spellings."""
        result = self._exact(text, context)
        return None if result is None else self._to_match(result, text, exact=True)

    def match_hassil(self, text: str, context: Mapping[str, Any] | None = None) -> IntentMatch | None:
        """Plain hassil (`recognize_best`) on the text as written: the reference that repairs nothing."""
        reading = self.hassil_reading(text, context)
        return None if reading is None else reading[0]

    def hassil_reading(self, text: str, context: Mapping[str, Any] | None = None) -> tuple[IntentMatch, bool] | None:
        """Plain hassil's match of `text` and whether a wildcard slot took part in it (benchmarks
        tell the grammar's own ambiguities from wrong repairs with it)."""
        results = self._ranked(text, context)
        if not results:
            return None
        wildcard = any(entity.is_wildcard for entity in results[0].entities_list)
        return self._to_match(results[0], text, exact=True), wildcard

    def match_near(self, text: str, context: Mapping[str, Any] | None = None) -> IntentMatch | None:
        """Stage 3: one dropped, extra or misheard word, accepted only when one intent clearly wins."""
        near = self._near(text, context)
        return None if near is None or near.intent is None else self._repaired(near, text, context)

    def _exact(self, text: str, context: Mapping[str, Any] | None) -> RecognizeResult | None:
        for variant in candidates(text, self._vocabulary_set, self.language):
            result = self._recognize(variant, context)
            if result is not None:
                return result
        return None

    def _near(self, text: str, context: Mapping[str, Any] | None) -> NearMiss | None:
        # Digits stay digits here: number slots read them, and spelling "119" as three words
        # would give the aligner room to trade one of them for a grammar word.
        words = tokenize(percent_as_word(strip_fillers(text, self._vocabulary_set)), self._glued)
        if not MIN_MATCHED <= len(words) <= MAX_NEAR_MISS_WORDS:
            return None  # too short to tell, or not a command (a long dictation is never repaired)
        return best_near_miss(words, self._candidate_graphs(words), self._wildcard_rules, self._meaningful)

    def _repaired(self, near: NearMiss, text: str, context: Mapping[str, Any] | None) -> IntentMatch | None:
        """The near-miss winner's repaired sentences through hassil: slots come from hassil."""
        found: IntentMatch | None = None
        for repaired in near.repaired:
            result = self._recognize(repaired, context)
            if result is None or result.intent.name != near.intent:
                return None
            match = self._to_match(result, text, exact=False)
            if found is not None and found.slots != match.slots:
                return None  # two readings of the same intent disagree on a slot: unsure
            found = match
        for rival in near.rivals:  # a close second reading ("timer for call mom": a name or a command?)
            result = self._recognize(rival, context)
            if found is not None and result is not None and result.intent.name == near.intent:
                if self._to_match(result, text, exact=False).slots != found.slots:
                    return None
        return found

    # -- helpers -------------------------------------------------------------------------------

    def _candidate_graphs(self, words: list[str]) -> list[tuple[str, WordGraph]]:
        """Templates that know at least two of the spoken words (grammar words, list values or
        numbers; light words like "the" not counted). An alignment is only accepted with two
        such exact matches, so the others need not be aligned at all."""
        hits: Counter[int] = Counter()
        for word in words:
            if word in LIGHT_WORDS:
                continue
            known = set(self._graph_index.get(word, ()))
            for homophone in HOMOPHONES.get(word, ()):  # "who is hour milk" knows "our"
                known.update(self._graph_index.get(homophone, ()))
            hits.update(known)
            if _NUMBER.fullmatch(word):
                hits.update(self._number_graphs)
        return [self._graphs[i] for i in sorted(i for i, count in hits.items() if count >= MIN_MATCHED)]

    def _ranked(self, text: str, context: Mapping[str, Any] | None) -> list[RecognizeResult]:
        return recognize_ranked(
            text,
            self._hassil,
            slot_lists=self._extra_lists,
            intent_context=dict(context) if context else None,
            language=self.language,
        )

    def _recognize(self, text: str, context: Mapping[str, Any] | None) -> RecognizeResult | None:
        """hassil's best result, passing over results that put a number into a wildcard where a
        range slot of the same intent could take it ("remove 5 minutes from the 10 timer" is not
        a timer named "10")."""
        for result in self._ranked(text, context):
            numbers = self._wildcard_rules.get(result.intent.name, WildcardRule()).numbers
            if not any(takes_number(numbers, word) for word in self._wildcard_words(result)):
                return result
        return None

    def _doubtful(self, result: RecognizeResult) -> bool:
        """Whether a wildcard of the match took a grammar word or one of the intent's list values."""
        keywords = self._wildcard_rules.get(result.intent.name, WildcardRule()).keywords
        return any(word in keywords for word in self._wildcard_words(result))

    @staticmethod
    def _wildcard_words(result: RecognizeResult) -> list[str]:
        return [
            word
            for entity in result.entities_list
            if entity.is_wildcard
            for word in tokenize(str(entity.text or entity.value))
        ]

    def _to_match(self, result: RecognizeResult, text: str, *, exact: bool) -> IntentMatch:
        table = self._range_slots.get(id(result.intent_sentence), {})
        slots: dict[str, Any] = {}
        for entity in result.entities_list:
            value = entity.value
            if entity.name in table and not entity.is_wildcard and entity.text:
                value = range_value(table[entity.name], entity.text, value, self.language)
            elif isinstance(value, float):
                value = tidy_number(value)
            slots[entity.name] = value
        for capture in result.captures_list:
            slots.setdefault(capture.name, capture.text.strip())
        return IntentMatch(intent=result.intent.name, slots=slots, text=text, exact=exact)


def _wildcard_rules(graphs: list[tuple[str, WordGraph]], grammar_words: frozenset[str]) -> dict[str, WildcardRule]:
    """Per intent: the words its wildcards take only as doubtful evidence (the grammar's own
    words and the list values the intent's templates take, light words aside, and their
    homophones: "remove eggs of from my list" holds "off", not an item "eggs of") and the range
    slots whose numbers they never take."""
    values: dict[str, set[str]] = {}
    numbers: dict[str, dict[int, Any]] = {}
    for intent, graph in graphs:
        values.setdefault(intent, set()).update(graph.slot_words)
        numbers.setdefault(intent, {}).update((id(slot), slot) for slot in graph.number_slots)

    def doubtful(words: set[str]) -> frozenset[str]:
        keywords = words - LIGHT_WORDS
        return frozenset(keywords | {h for w in keywords for h in HOMOPHONES.get(w, ())})

    return {
        intent: WildcardRule(
            keywords=doubtful(grammar_words | values[intent]),
            numbers=tuple(numbers[intent].values()),
        )
        for intent in values
    }
