"""Random example sentences from a grammar (seeded, so test sets are reproducible).

hassil's sampler enumerates every expansion, which is millions for HA's English grammar; tests
and benchmarks need a few varied sentences per template instead, so this walks a template once
choosing one branch at random at every alternative, optional, permutation and list.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from hassil.expression import Alternative, Expression, ListReference, Permutation, RuleReference, Sentence, Sequence, TextChunk
from hassil.intents import IntentData, Intents, RangeSlotList, SlotList, TextSlotList, WildcardSlotList
from hassil.util import check_excluded_context, check_required_context

from assistant.intents.normalize import number_words

WILDCARD_FILLERS = ("milk", "the blue book", "eggs", "call mom", "pasta sauce")


_OPEN, _CLOSE = "\x01", "\x02"


@dataclass(frozen=True)
class Sample:
    """A sampled sentence; `slot_words` are the indices of its words that came from a slot."""

    intent: str
    text: str
    template: str
    slot_words: frozenset[int] = frozenset()


def _unmark(marked: str) -> tuple[str, frozenset[int]]:
    """Drop the slot markers (keeping glued text glued) and note which words were slot words."""
    chars: list[str] = []
    in_slot: list[bool] = []
    depth = 0
    for char in marked:
        if char == _OPEN:
            depth += 1
        elif char == _CLOSE:
            depth -= 1
        else:
            chars.append(char)
            in_slot.append(depth > 0)
    words: list[str] = []
    slot_indices: set[int] = set()
    current: list[str] = []
    current_slot = False
    for char, slot in zip(chars + [" "], in_slot + [False]):
        if char.isspace():
            if current:
                if current_slot:
                    slot_indices.add(len(words))
                words.append("".join(current))
                current, current_slot = [], False
        else:
            current.append(char)
            current_slot = current_slot or slot
    return " ".join(words), frozenset(slot_indices)


def _walk(
    expression: Expression,
    slot_lists: Mapping[str, SlotList],
    rules: Mapping[str, Sentence],
    rng: random.Random,
    language: str,
    depth: int,
    fillers: tuple[str, ...] = WILDCARD_FILLERS,
) -> str:
    if isinstance(expression, TextChunk):
        return expression.original_text
    if isinstance(expression, Alternative):
        return _walk(rng.choice(expression.items), slot_lists, rules, rng, language, depth, fillers)
    if isinstance(expression, Permutation):
        items = list(expression.items)
        rng.shuffle(items)
        return "".join(_walk(item, slot_lists, rules, rng, language, depth, fillers) for item in items)
    if isinstance(expression, Sequence):
        return "".join(_walk(item, slot_lists, rules, rng, language, depth, fillers) for item in expression.items)
    if isinstance(expression, RuleReference):
        return _walk(rules[expression.rule_name].expression, slot_lists, rules, rng, language, depth + 1, fillers)
    if isinstance(expression, ListReference):
        slot_list = slot_lists.get(expression.list_name)
        if slot_list is None and expression.is_inline_range:
            start, stop, step = expression.get_inline_range()  # type: ignore[misc]
            slot_list = RangeSlotList(name=expression.list_name, start=start, stop=stop, step=step)
        if isinstance(slot_list, TextSlotList):
            value = rng.choice(slot_list.values)
            return _OPEN + _walk(value.text_in, slot_lists, rules, rng, language, depth + 1, fillers) + _CLOSE
        if isinstance(slot_list, RangeSlotList):
            number = rng.choice(list(slot_list.get_numbers()))
            spelled = number_words(number, slot_list.words_language or language) if slot_list.words else None
            if spelled and (not slot_list.digits or rng.random() < 0.5):
                return _OPEN + spelled + _CLOSE
            return _OPEN + str(number) + _CLOSE
        if isinstance(slot_list, WildcardSlotList):
            return _OPEN + rng.choice(fillers) + _CLOSE
        raise KeyError(f"no list {expression.list_name!r} to sample from")
    raise ValueError(f"unexpected expression {expression!r}")


def _fitting_values(lists: dict[str, SlotList], block: IntentData) -> dict[str, SlotList]:
    """Only list values whose context the block accepts (as hassil filters them when matching)."""
    if not block.requires_context and not block.excludes_context:
        return lists
    result = dict(lists)
    for name, slot_list in lists.items():
        if isinstance(slot_list, TextSlotList) and any(value.context for value in slot_list.values):
            values = [
                value
                for value in slot_list.values
                if check_required_context(block.requires_context, value.context, allow_missing_keys=True)
                and check_excluded_context(block.excludes_context, value.context)
            ]
            if values:
                result[name] = TextSlotList(name=name, values=values)
    return result


def sample_intents(
    intents: Intents,
    extra_lists: Mapping[str, SlotList] | None = None,
    per_template: int = 2,
    seed: int = 0,
    wildcard_fillers: tuple[str, ...] = WILDCARD_FILLERS,
) -> Iterator[Sample]:
    """`per_template` random sentences for every template of every intent.

    `wildcard_fillers` are the words a wildcard slot gets; a benchmark passes its own so that
    its sentences stay apart from the tests' (never tune on what you measure).
    """
    if not wildcard_fillers:
        raise ValueError("wildcard_fillers must hold at least one filler")
    rng = random.Random(seed)
    base_lists = {**intents.slot_lists, **(extra_lists or {})}
    for intent in intents.intents.values():
        for block in intent.data:
            lists = _fitting_values({**base_lists, **block.slot_lists}, block)
            rules = {**intents.expansion_rules, **block.expansion_rules}
            for sentence in block.sentences:
                for _ in range(per_template):
                    text, slot_indices = _unmark(_walk(sentence.expression, lists, rules, rng, intents.language, 0, wildcard_fillers))
                    yield Sample(intent=intent.name, text=text, template=sentence.text or "", slot_words=slot_indices)
