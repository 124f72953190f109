"""Text clean-up: what every engine is given to read."""

import pytest

from assistant.tts.textnorm import normalize, number_to_words, ordinal_to_words, year_to_words


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Timer set for 7:30.", "Timer set for seven thirty."),
        ("It is 7:05 pm", "It is seven oh five p m"),
        ("It is 12:00", "It is twelve o'clock"),
        ("Wake me at 00:00", "Wake me at midnight"),
        ("Meet at 9am", "Meet at nine a m"),
        ("Battery at 85%", "Battery at eighty-five percent"),
        ("It costs $4.50", "It costs four dollars fifty cents"),
        ("It costs $1", "It costs one dollar"),
        ("Dr. Smith & Mr. Jones", "doctor Smith and mister Jones"),
        ("on the 21st, 2nd and 3rd", "on the twenty-first, second and third"),
        ("1,234 items", "one thousand two hundred thirty-four items"),
        ("pi is 3.14", "pi is three point one four"),
        ("It is -3°C outside", "It is minus three degrees celsius outside"),
        ("1 km away", "one kilometer away"),
        ("Set for 5 min", "Set for five minutes"),
        ("born in 1984, moved in 2005, now 2024", "born in nineteen eighty-four, moved in two thousand five, now twenty twenty-four"),
        ("e.g. lights etc.", "for example lights et cetera"),
        ("The kitchen light is on.", "The kitchen light is on."),
    ],
)
def test_normalize(text: str, spoken: str) -> None:
    assert normalize(text) == spoken


def test_number_words() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(115) == "one hundred fifteen"
    assert number_to_words(2_000_001) == "two million one"
    assert number_to_words(-40) == "minus forty"
    assert ordinal_to_words(12) == "twelfth"
    assert ordinal_to_words(40) == "fortieth"
    assert ordinal_to_words(101) == "one hundred first"
    assert year_to_words(1905) == "nineteen oh-five"  # CLDR spelling; spoken the same
    assert year_to_words(1900) == "nineteen hundred"


def test_words_only_text_is_left_alone_apart_from_whitespace() -> None:
    assert normalize("  turn   on\tthe light ") == "turn on the light"
