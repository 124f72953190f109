"""Undoing what speech recognition does to a sentence before it is matched.

Whisper writes sentence case, end punctuation, digits ("5"), "40%" and hesitation fillers
("Uh, turn on the lights."). hassil already ignores case and punctuation and reads digits for
number ranges; this module removes fillers and offers the spellings hassil cannot bridge by
itself ("%" against a grammar that says "percent", "5" against a grammar that spells "five").
Each rewrite is only a candidate, tried in order until hassil matches one.
"""

from __future__ import annotations

import re
from functools import lru_cache

from hassil.numbers import get_rbnf_engine

# Hesitations, dropped anywhere in the sentence (unless the grammar itself uses the word).
FILLERS = frozenset({"uh", "uhh", "uhm", "um", "umm", "er", "erm", "ah", "ahh", "eh", "hmm", "hm", "mm", "mmm", "mhm"})
# Discourse openers, dropped only at the start of the sentence.
OPENERS = frozenset({"so", "okay", "ok", "well", "oh", "alright", "hey"})

_EDGE_PUNCTUATION = ".,!?;:…—–\"'“”‘’()"
_PERCENT = re.compile(r"(\d)\s*%")
_INTEGER = re.compile(r"(?<![\w.,])(\d{1,9})(?![\w]|[.,]\d)")


def word_core(token: str) -> str:
    """A token as the grammar would spell it: lower case, without surrounding punctuation."""
    return token.strip(_EDGE_PUNCTUATION).casefold()


def strip_fillers(text: str, vocabulary: frozenset[str]) -> str:
    """Drop hesitation fillers anywhere and discourse openers at the start.

    Words the grammar itself uses are kept: a command may really say "hey" or "okay".
    """
    tokens = text.split()
    kept = [t for t in tokens if not (word_core(t) in FILLERS and word_core(t) not in vocabulary)]
    while kept and word_core(kept[0]) in OPENERS and word_core(kept[0]) not in vocabulary:
        kept = kept[1:]
    if not kept:
        return text
    # "Uh, turn on the lights" leaves no stray punctuation at the new start.
    kept[0] = kept[0].lstrip(_EDGE_PUNCTUATION) or kept[0]
    return " ".join(kept)


def percent_as_word(text: str) -> str:
    """`40%` -> `40 percent` (for grammars that spell the word)."""
    return _PERCENT.sub(r"\1 percent", text)


def digits_as_words(text: str, language: str) -> str:
    """`5 minutes` -> `five minutes` (for grammars with literal number words instead of ranges)."""
    return _INTEGER.sub(lambda m: number_words(int(m.group(1)), language) or m.group(1), text)


@lru_cache(maxsize=4096)
def number_words(number: int | float, language: str) -> str | None:
    try:
        spelled = get_rbnf_engine(language).format_number(number).text_by_ruleset
    except (ValueError, KeyError):
        return None
    return spelled.get("spellout-cardinal") or next(iter(spelled.values()), None)


def candidates(text: str, vocabulary: frozenset[str], language: str) -> list[str]:
    """Spellings to try in order; duplicates removed.

    Fillers go first, before even the text as written: they are never grammar words (those are
    kept), and left in they would end up inside a wildcard slot ("add eggs um to my list").
    """
    cleaned = strip_fillers(text, vocabulary)
    percent = percent_as_word(cleaned)
    spelled = digits_as_words(percent, language)
    result: list[str] = []
    for variant in (cleaned, text, percent, spelled):
        if variant not in result:
            result.append(variant)
    return result
