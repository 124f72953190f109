"""Text clean-up before synthesis: numbers, times, percentages, money and abbreviations as words.

Numbers are spelled by Unicode CLDR's rule-based number format (`unicode-rbnf`, which hassil
already brings and the intents matcher uses too): cardinals, ordinals and years ("nineteen
eighty-four"). What no speller has is the rule around the number: 7:30 is a time, 25% a
percentage, $4.50 money, "Dr." a title; those few rules live here. The self-check
(`selfcheck.py`) runs the same normaliser over Whisper's transcript, so "7:30" and "seven
thirty" compare equal. Engines differ in what they read correctly (espeak-ng reads "7:30" but
Tortoise mumbles digits), so every engine gets words.
"""

from __future__ import annotations

import re
from functools import lru_cache

from hassil.numbers import get_rbnf_engine
from unicode_rbnf import FormatPurpose

_DIGITS = "zero one two three four five six seven eight nine".split()


@lru_cache(maxsize=4096)
def _spell(number: int, purpose: FormatPurpose) -> str:
    spelled = get_rbnf_engine("en").format_number(number, purpose=purpose).text_by_ruleset
    return next(iter(spelled.values()))


def number_to_words(number: int) -> str:
    """Cardinal words for an integer: 1234 -> "one thousand two hundred thirty-four"."""
    return _spell(number, FormatPurpose.CARDINAL)


def ordinal_to_words(number: int) -> str:
    """21 -> "twenty-first", 100 -> "one hundredth"."""
    return _spell(number, FormatPurpose.ORDINAL)


def year_to_words(year: int) -> str:
    """Years the way people say them: 1984 -> "nineteen eighty-four", 2005 -> "two thousand five"."""
    return _spell(year, FormatPurpose.YEAR)


_ABBREVIATIONS = {
    "mr.": "mister", "mrs.": "missus", "ms.": "miz", "dr.": "doctor", "st.": "saint",
    "prof.": "professor", "jr.": "junior", "sr.": "senior", "vs.": "versus", "etc.": "et cetera",
    "e.g.": "for example", "i.e.": "that is", "approx.": "approximately", "no.": "number",
    "min.": "minutes", "sec.": "seconds", "hr.": "hours", "hrs.": "hours", "mins": "minutes",
    "secs": "seconds",
}
_UNITS = {
    "%": "percent", "°c": "degrees celsius", "°f": "degrees fahrenheit", "°": "degrees",
    "km": "kilometers", "kg": "kilograms", "cm": "centimeters", "mm": "millimeters",
    "m": "meters", "g": "grams", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "kb": "kilobytes", "mb": "megabytes", "gb": "gigabytes", "mph": "miles per hour",
    "km/h": "kilometers per hour",
}
_SINGULAR_UNITS = {
    "percent": "percent", "degrees celsius": "degree celsius", "degrees fahrenheit": "degree fahrenheit",
    "degrees": "degree", "kilometers": "kilometer", "kilograms": "kilogram", "centimeters": "centimeter",
    "millimeters": "millimeter", "meters": "meter", "grams": "gram", "hours": "hour", "minutes": "minute",
    "seconds": "second", "milliseconds": "millisecond", "kilobytes": "kilobyte", "megabytes": "megabyte",
    "gigabytes": "gigabyte", "miles per hour": "mile per hour", "kilometers per hour": "kilometer per hour",
}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence")}


def _decimal_to_words(text: str) -> str:
    whole, _, fraction = text.partition(".")
    words = number_to_words(int(whole or "0"))
    if fraction:
        words += " point " + " ".join(_DIGITS[int(digit)] for digit in fraction)
    return words


def _time_to_words(hours: int, minutes: int, meridiem: str | None) -> str:
    if meridiem is None and hours == 0 and minutes == 0:
        spoken = "midnight"
    elif minutes == 0:
        spoken = f"{number_to_words(hours)} o'clock" if meridiem is None else number_to_words(hours)
    elif minutes < 10:
        spoken = f"{number_to_words(hours)} oh {number_to_words(minutes)}"
    else:
        spoken = f"{number_to_words(hours)} {number_to_words(minutes)}"
    if meridiem:
        spoken += " " + " ".join(meridiem.replace(".", "").lower())
    return spoken


_TIME_RE = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?:\s*([AaPp]\.?[Mm]\.?)(?![A-Za-z]))?")
_HOUR_MERIDIEM_RE = re.compile(r"\b(1[0-2]|0?[1-9])\s*([AaPp]\.?[Mm]\.?)(?![A-Za-z])")
_MONEY_RE = re.compile(r"([$€£])\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b")
_UNIT_RE = re.compile(
    r"(?<![\w.])(-?\d[\d,]*(?:\.\d+)?)\s?(%|°[CcFf]?|km/h|mph|km|kg|cm|mm|ms|kb|mb|gb|min|m|g|h|s)(?![\w/])",
    re.IGNORECASE,
)
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_YEAR_RE = re.compile(r"(?<![\d.,])(1[1-9]\d\d|20\d\d)(?![\d.,]\d)")
_NUMBER_RE = re.compile(r"(?<![\w.])(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\w)")
_ABBREVIATION_RE = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(key) for key in sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")(?=\s|$|[,;:!?])",
    re.IGNORECASE,
)


def _money(match: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCIES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    spoken = f"{number_to_words(whole)} {one if whole == 1 else many}"
    if match.group(3):
        fraction = int(match.group(3).ljust(2, "0"))
        if fraction:
            spoken += f" {number_to_words(fraction)} {cent if fraction == 1 else cents}"
    return spoken


def _unit(match: re.Match[str]) -> str:
    value = match.group(1).replace(",", "")
    unit_key = match.group(2).lower()
    unit = _UNITS.get(unit_key) or _UNITS["°"]
    number = _decimal_to_words(value.lstrip("-"))
    if value.startswith("-"):
        number = "minus " + number
    if value.lstrip("-") == "1":
        unit = _SINGULAR_UNITS.get(unit, unit)
    return f"{number} {unit}"


def _number(match: re.Match[str]) -> str:
    sign, digits, fraction = match.groups()
    spoken = _decimal_to_words(digits.replace(",", "") + (fraction or ""))
    return ("minus " if sign else "") + spoken


def normalize(text: str) -> str:
    """Rewrite `text` so that every engine reads it the same way; words are left untouched."""
    text = text.replace("&", " and ").replace("\u2019", "'")
    text = _ABBREVIATION_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)
    text = _TIME_RE.sub(lambda m: _time_to_words(int(m.group(1)), int(m.group(2)), m.group(3)), text)
    text = _HOUR_MERIDIEM_RE.sub(lambda m: _time_to_words(int(m.group(1)), 0, m.group(2)), text)
    text = _MONEY_RE.sub(_money, text)
    text = _UNIT_RE.sub(_unit, text)
    text = _ORDINAL_RE.sub(lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _YEAR_RE.sub(lambda m: year_to_words(int(m.group(1))), text)
    text = _NUMBER_RE.sub(_number, text)
    return re.sub(r"\s+", " ", text).strip()
