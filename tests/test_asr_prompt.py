"""The vocabulary prompt: exactly what Whisper is given (HA once sent the literal word "null")."""

from __future__ import annotations

import pytest

from assistant.asr.prompt import MAX_PROMPT_TOKENS, build_prompt


def count_words(text: str) -> int:
    return len(text.split())


def test_prompt_is_the_words_in_grammar_order_then_a_full_stop():
    assert build_prompt(["turn", "on", "kitchen", "I", "what's"], count_words) == "turn on kitchen I what's."


@pytest.mark.parametrize("words", [[], [None], [""], ["  "], [None, "", 3]])
def test_no_words_means_no_prompt_not_the_string_none_or_null(words):
    assert build_prompt(words, count_words) is None


def test_missing_and_duplicate_words_are_skipped_never_spelled():
    prompt = build_prompt([None, "stop", "", "stop", " timer ", 7], count_words)
    assert prompt == "stop timer."
    assert "None" not in prompt and "null" not in prompt


def test_prompt_is_cut_at_whole_words_to_the_token_limit():
    words = [f"w{i}" for i in range(500)]
    prompt = build_prompt(words, count_words, max_tokens=10)
    assert prompt == " ".join(f"w{i}" for i in range(10)) + "."
    assert count_words(prompt) == 10
    assert MAX_PROMPT_TOKENS == 223  # Whisper keeps the last n_text_ctx // 2 - 1 prompt tokens


def test_the_shipped_commands_fit_whispers_limit_with_its_own_tokenizer():
    from whisper.tokenizer import get_tokenizer

    from assistant.intents import load_commands
    from asr_support import COMMANDS

    tokenizer = get_tokenizer(False)
    words = load_commands(COMMANDS).vocabulary()
    prompt = build_prompt(words, lambda text: len(tokenizer.encode(" " + text)))
    assert prompt is not None and prompt.startswith("a activate add ") and prompt.endswith(".")
    assert len(tokenizer.encode(" " + prompt)) <= MAX_PROMPT_TOKENS
    assert "kitchen" in prompt and "timer" in prompt
    assert "None" not in prompt and "null" not in prompt
