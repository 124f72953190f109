"""Every load error class, with its exact FILE:LINE:COL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from assistant.intents import CommandsError, load_commands


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))


def load_error(tmp_path: Path, text: str) -> CommandsError:
    path = tmp_path / "commands.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    with pytest.raises(CommandsError) as info:
        load_commands(path)
    error = info.value
    assert str(error).startswith(f"{path}:{error.line}:{error.column}: ")
    return error


def where(error: CommandsError) -> tuple[int, int]:
    return error.line, error.column


def test_unclosed_group_points_at_the_parenthesis(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          Lights:
            sentences:
              - "turn on (the|a light"
        ''')
    # `      - "` is 9 characters: the quote is column 9, the text starts at 10, "(" at 10 + 8.
    assert where(error) == (4, 18)
    assert "unclosed group '('" in error.message


def test_stray_closing_bracket_in_plain_scalar(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          Lights:
            sentences:
              - turn on the light]
        ''')
    assert where(error) == (4, 26)
    assert "unexpected ']'" in error.message


def test_mismatched_brackets_and_empty_group(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          A:
            sentences: ["turn (on]"]
        ''')
    assert where(error) == (3, 26) and "expected ')'" in error.message
    error = load_error(tmp_path, '''
        intents:
          A:
            sentences: ["turn () on"]
        ''')
    assert where(error) == (3, 23) and "empty group" in error.message


def test_mixed_alternative_and_permutation_separators(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          A:
            sentences: ["(a|b; c)"]
        ''')
    assert where(error) == (3, 22) and "mixed" in error.message


def test_unknown_list_with_hint(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          Lights:
            sentences:
              - "turn on the {rooms} light"
        lists:
          room:
            values: [kitchen]
        ''')
    assert where(error) == (4, 22)
    assert "unknown list {rooms}" in error.message and "did you mean 'room'" in error.message


def test_unknown_rule_in_rule_body(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          A:
            sentences: ["<turn> on"]
        expansion_rules:
          turn: "(turn|switch) <teh>"
        ''')
    assert where(error) == (5, 24)
    assert "unknown expansion rule <teh>" in error.message


def test_rule_loop(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          A:
            sentences: ["<a> x"]
        expansion_rules:
          a: "<b>"
          b: "[<a>] y"
        ''')
    assert where(error) == (5, 6)  # the rule the loop was found from: a's body
    assert "in a loop: <a> -> <b> -> <a>" in error.message


def test_unknown_slot_in_reply(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          Lights:
            sentences: ["turn on the {room} light"]
            reply: "Turning on the {rom} light"
        lists:
          room: {values: [kitchen]}
        ''')
    # reply: "  starts at column 12, the text at 13, "{" at offset 15.
    assert where(error) == (4, 28)
    assert "unknown slot {rom}" in error.message and "did you mean 'room'" in error.message


def test_reply_may_use_fixed_slots_and_context_slots(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent('''
        intents:
          A:
            data:
              - sentences: ["hello"]
                slots: {who: world}
                requires_context: {area: {slot: true}}
            reply: "Hello {who} in {area}"
        '''), encoding="utf-8")
    assert load_commands(path).intents["A"].slots == {"who", "area"}


def test_duplicate_intent_names(tmp_path):
    error = load_error(tmp_path, '''
        intents:
          Lights:
            sentences: ["a b"]
          Lights:
            sentences: ["c d"]
        ''')
    assert where(error) == (4, 3) and "duplicate key 'Lights'" in error.message
    error = load_error(tmp_path, '''
        intents:
          Lights:
            sentences: ["a b"]
          lights:
            sentences: ["c d"]
        ''')
    assert where(error) == (4, 3) and "duplicate intent 'lights'" in error.message


@pytest.mark.parametrize(
    ("body", "position", "fragment"),
    [
        ('  A:\n    sentences: "turn on"\n', (3, 16), "'sentences' must be a list of strings"),
        ("  A:\n    sentences:\n      - 42\n", (4, 7), "must be a string, got number 42"),
        ("  A:\n    sentences: []\n", (3, 16), "is empty"),
        ("  A: [x]\n", (2, 6), "must be a mapping"),
        ("  A:\n    slots: {}\n", (3, 5), "needs 'sentences:'"),
    ],
)
def test_wrong_types_in_intents(tmp_path, body, position, fragment):
    error = load_error(tmp_path, "intents:\n" + body)
    assert where(error) == position
    assert fragment in error.message


def test_wrong_types_in_lists(tmp_path):
    base = 'intents:\n  A:\n    sentences: ["x {n}"]\nlists:\n'
    error = load_error(tmp_path, base + "  n:\n    range: {from: 1}\n")
    assert where(error) == (6, 12) and "needs 'to:'" in error.message
    error = load_error(tmp_path, base + "  n:\n    range: {from: 5, to: 1}\n")
    assert where(error) == (6, 13) and "greater than" in error.message
    error = load_error(tmp_path, base + "  n:\n    range: {from: 1, to: 9, step: 0}\n")
    assert where(error) == (6, 29) and "'step' must be positive" in error.message
    error = load_error(tmp_path, base + "  n:\n    range: {from: 1, to: x}\n")
    assert where(error) == (6, 26) and "'to' must be a whole number" in error.message
    error = load_error(tmp_path, base + "  n:\n    values: [on, off]\n")
    assert where(error) == (6, 13) and "quote it" in error.message
    error = load_error(tmp_path, base + "  n:\n    values:\n      - out: 1\n")
    assert where(error) == (7, 9) and "needs 'in:'" in error.message
    error = load_error(tmp_path, base + "  n: {wildcard: true, values: [a]}\n")
    assert where(error) == (5, 6) and "only one of" in error.message
    error = load_error(tmp_path, base + "  n:\n    range: {from: 1, to: 9, type: percent}\n")
    assert where(error) == (6, 35) and "did you mean 'percentage'" in error.message


def test_unknown_keys_with_hints(tmp_path):
    error = load_error(tmp_path, 'intents:\n  A:\n    sentence: ["x"]\n')
    assert where(error) == (3, 5) and "did you mean 'sentences'" in error.message
    error = load_error(tmp_path, 'intent:\n  A:\n    sentences: ["x"]\n')
    assert where(error) == (1, 1) and "did you mean 'intents'" in error.message
    error = load_error(tmp_path, 'intents:\n  A:\n    data:\n      - sentences: ["x"]\n        slot: {a: 1}\n')
    assert where(error) == (5, 9) and "did you mean 'slots'" in error.message
    error = load_error(tmp_path, 'intents:\n  A:\n    sentences: ["x {n}"]\nlists:\n  n:\n    range: {from: 1, to: 2, multiplyer: 2}\n')
    assert where(error) == (6, 29) and "did you mean 'multiplier'" in error.message


def test_handler_errors_come_from_the_handlers_parser_with_positions(tmp_path):
    error = load_error(tmp_path, 'intents:\n  A:\n    sentences: ["x y"]\n    handler:\n      runn: [echo]\n')
    assert where(error) == (5, 7) and "unknown handler type" in error.message


def test_yaml_syntax_error_and_missing_file(tmp_path):
    error = load_error(tmp_path, 'intents:\n  A: [unclosed\n')
    assert where(error) == (3, 1) and "YAML syntax error" in error.message  # the end of the file: no ']'
    with pytest.raises(CommandsError) as info:
        load_commands(tmp_path / "missing.yaml")
    assert (info.value.line, info.value.column) == (1, 1) and "cannot read" in info.value.message


# -- confirm: (asked before a risky intent's handler runs) -------------------------------------

def test_confirm_accepts_true_false_and_a_question_over_the_slots(tmp_path):
    path = tmp_path / "commands.yaml"
    path.write_text(textwrap.dedent("""
        lists:
          door: {values: [garage, front]}
        intents:
          Open:
            sentences: ["open the {door} door"]
            confirm: "Open the {door} door? You said {heard}."
          Wipe:
            sentences: ["wipe everything"]
            confirm: true
          Safe:
            sentences: ["say hello"]
            confirm: false
          Plain:
            sentences: ["good morning"]
        """).lstrip())
    commands = load_commands(path)
    assert commands.intents["Open"].confirm == "Open the {door} door? You said {heard}."
    assert commands.intents["Wipe"].confirm == "Should I {heard}?"
    assert commands.intents["Safe"].confirm is None and commands.intents["Plain"].confirm is None


@pytest.mark.parametrize("value, position, fragment", [
    ('"Open the {dor} door?"', (4, 24), "confirm of intent 'Open' uses unknown slot {dor} (did you mean 'door'?)"),
    ('"Open {door"', (4, 20), "confirm of intent 'Open': '{' is never closed"),
    ("3", (4, 5), "'confirm' of intent 'Open' must be true, false or a question"),
    ('""', (4, 14), "got an empty string"),
    ("[yes]", (4, 14), "got a list"),
])
def test_bad_confirm_is_a_load_error_with_its_position(tmp_path, value, position, fragment):
    error = load_error(tmp_path, f"""
        intents:
          Open:
            sentences: ["open the {{door}} door"]
            confirm: {value}
        lists:
          door: {{values: [garage]}}
        """)
    assert where(error) == position and fragment in str(error)


def test_confirm_may_not_use_handler_fields(tmp_path):
    # The question is asked before the handler runs: its fields do not exist yet.
    error = load_error(tmp_path, """
        intents:
          Now:
            sentences: ["what time is it"]
            handler: {builtin: time}
            confirm: "Is it {time}?"
        """)
    assert where(error) == (5, 21) and "unknown slot {time}" in str(error)


def test_barge_in_must_be_true_or_false(tmp_path):
    error = load_error(tmp_path, """
        intents:
          Hush:
            sentences: [hush]
            barge_in: "yes"
        """)
    assert where(error) == (4, 15) and "'barge_in' must be true or false" in str(error)


def test_barge_in_marks_the_intents_heard_during_a_reply(tmp_path):
    path = tmp_path / "commands.yaml"
    path.write_text(textwrap.dedent('''
        intents:
          Hush:
            sentences: [hush]
            barge_in: true
          Lights:
            data:
              - sentences: [lights on]
            barge_in: false
          Other:
            sentences: [other]
        ''').lstrip("\n"), encoding="utf-8")
    commands = load_commands(path)
    assert commands.barge_in_intents() == frozenset({"Hush"})
    assert commands.intents["Hush"].barge_in and not commands.intents["Other"].barge_in


def test_the_shipped_stop_intent_is_heard_during_a_reply():
    from asr_support import COMMANDS

    commands = load_commands(COMMANDS)
    assert "Stop" in commands.barge_in_intents()
    for said in ("stop", "cancel", "never mind", "be quiet"):
        match = commands.match(said)
        assert match is not None and match.intent in commands.barge_in_intents(), said
