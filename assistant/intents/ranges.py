"""Correct values for number-range slots.

hassil 3.12.1 caches the number-word trie of a range under (from, to, step, fractions) only, and
the trie stores values already multiplied. After a range with `multiplier: -1` matches a number
word, every other range with the same bounds reads that word as negative (HA's own en.json has
`volume_step_down` next to `volume`, both 0..100). The cache is global to the process, so no
load order avoids it. Instead, each range slot's value is recomputed here from the words that
were matched, against this range's own multiplier. Integral values come back as `int` so "5" and
"five" give the same slot (hassil returns 5.0 for digits and 5 for words).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from hassil.expression import Expression, Group, ListReference, RuleReference, Sentence
from hassil.intents import RangeSlotList, SlotList
from hassil.numbers import get_rbnf_engine
from hassil.parse_expression import parse_sentence
from hassil.recognize import is_match

_DIGITS = re.compile(r"-?\d+(?:[.,]\d+)?")


def range_slots(
    sentence: Sentence, slot_lists: Mapping[str, SlotList], rules: Mapping[str, Sentence]
) -> dict[str, list[RangeSlotList]]:
    """Slot name -> the range lists that can fill it in this sentence (through rules too)."""
    found: dict[str, list[RangeSlotList]] = {}

    def walk(expression: Expression, depth: int) -> None:
        if isinstance(expression, ListReference):
            slot_list = slot_lists.get(expression.list_name)
            if slot_list is None and expression.is_inline_range:
                start, stop, step = expression.get_inline_range()  # type: ignore[misc]
                slot_list = RangeSlotList(name=expression.list_name, start=start, stop=stop, step=step)
            if isinstance(slot_list, RangeSlotList) and not expression.is_capture:
                bucket = found.setdefault(expression.slot_name, [])
                if slot_list not in bucket:
                    bucket.append(slot_list)
        elif isinstance(expression, Group):
            for item in expression.items:
                walk(item, depth)
        elif isinstance(expression, RuleReference) and depth < 32:
            rule = rules.get(expression.rule_name)
            if rule is not None:
                walk(rule.expression, depth + 1)

    walk(sentence.expression, 0)
    return found


@lru_cache(maxsize=256)
def _number_words(language: str, start: int, stop: int, step: int, fraction_type: Any) -> dict[str, float]:
    """Spoken form -> number (without multiplier) for every number of a range."""
    probe = RangeSlotList(name=None, start=start, stop=stop, step=step, fraction_type=fraction_type)
    engine = get_rbnf_engine(language)
    words: dict[str, float] = {}
    for number in probe.get_numbers():
        for text in engine.format_number(number).text_by_ruleset.values():
            for form in (text, text.replace("-", " ").replace("_", " ")):
                words.setdefault(form.casefold(), number)
    return words


def base_number(slot_list: RangeSlotList, text: str, language: str) -> float | None:
    """The number `text` says for this range (digits or words), before any multiplier."""
    text = text.strip()
    if _DIGITS.fullmatch(text):
        return float(text.replace(",", "."))
    lang = slot_list.words_language or language
    try:
        words = _number_words(lang, slot_list.start, slot_list.stop, slot_list.step, slot_list.fraction_type)
    except (ValueError, KeyError):
        return None
    return words.get(" ".join(text.casefold().split()))


def tidy_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def range_value(candidates: list[RangeSlotList], text: str, hassil_value: Any, language: str) -> Any:
    """The right value for a range slot matched as `text`.

    When several ranges could have filled the slot, the one whose numbers contain the base
    number decides; if that is still ambiguous between different multipliers, hassil's value
    stands (it is right unless the cache bug bit).
    """
    results = []
    for slot_list in candidates:
        base = base_number(slot_list, text, language)
        if base is None or base not in set(slot_list.get_numbers()) and not (slot_list.start <= base <= slot_list.stop):
            continue
        value = base * slot_list.multiplier if slot_list.multiplier is not None else base
        results.append(tidy_number(value))
    if results and all(r == results[0] for r in results):
        return results[0]
    return tidy_number(hassil_value)


def warm_number_words(slot_lists: list[RangeSlotList], language: str) -> None:
    """Make hassil build its number-word tries now, not on the first spoken number.

    hassil builds a range's trie lazily: the first "ten seconds" against a 1..3600 range takes
    ~180 ms. A match through hassil's public `is_match` at load fills its cache; it is built
    without multiplier, so the cache holds plain numbers (our values are recomputed anyway).
    """
    seen: set[tuple] = set()
    probe = parse_sentence("{n}")
    for slot_list in slot_lists:
        if not slot_list.words:
            continue
        lang = slot_list.words_language or language
        key = (lang, slot_list.start, slot_list.stop, slot_list.step, slot_list.fraction_type)
        if key in seen:
            continue
        seen.add(key)
        plain_range = RangeSlotList(
            name="n", start=slot_list.start, stop=slot_list.stop, step=slot_list.step, fraction_type=slot_list.fraction_type
        )
        try:
            words = next(iter(_number_words(*key)), None)
        except (ValueError, KeyError):
            continue
        if words is not None:
            is_match(words, probe, slot_lists={"n": plain_range}, language=lang)
