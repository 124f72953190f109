"""Intent tests in Home Assistant's format, run against a CommandSet.

```yaml
tests:
  - sentences: ["turn on the kitchen lights", "Uh, turn on the kitchen lights."]
    intent:
      name: LightsOn
      slots: {room: kitchen}
  - sentences: ["turn the kitchen lights"]
    intent: null          # no match expected (also: `no_match: true`)
```
Only the slots a test lists are compared (like HA's tests), so fixed slots need not be repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.intents.commandset import CommandSet
from assistant.yamlpos import CommandsError
from assistant.intents.loader import plain
from assistant.yamlpos import PosDict, load_yaml, position


@dataclass(frozen=True)
class TestFailure:
    line: int
    sentence: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.sentence!r}: expected {self.expected}, got {self.got}"


@dataclass(frozen=True)
class TestCase:
    line: int
    sentence: str
    intent: str | None
    slots: dict[str, Any]


def load_tests(path: Path) -> list[TestCase]:
    document = load_yaml(path)
    if not isinstance(document, PosDict) or not isinstance(document.get("tests"), list):
        raise CommandsError(path, *position(document), "a tests file needs 'tests:' with a list of cases")
    cases: list[TestCase] = []
    for item in document["tests"]:
        if not isinstance(item, PosDict) or not isinstance(item.get("sentences"), list):
            raise CommandsError(path, *position(item, position(document["tests"])), "each test needs 'sentences:' (a list)")
        unknown = set(item) - {"sentences", "intent", "no_match"}
        if unknown:
            key = sorted(unknown, key=str)[0]
            raise CommandsError(path, *item.pos_of(key), f"unknown key {key!r} in a test (allowed: sentences, intent, no_match)")
        expected_intent: str | None
        slots: dict[str, Any] = {}
        if item.get("no_match") is True or ("intent" in item and item["intent"] is None):
            expected_intent = None
        elif isinstance(item.get("intent"), PosDict) and isinstance(item["intent"].get("name"), str):
            expected_intent = str(item["intent"]["name"])
            slots = plain(item["intent"].get("slots") or {})
        else:
            raise CommandsError(path, *position(item), "each test needs 'intent: {name: ..., slots: ...}', 'intent: null' or 'no_match: true'")
        for sentence in item["sentences"]:
            if not isinstance(sentence, str):
                raise CommandsError(path, *position(sentence, position(item["sentences"])), "each sentence must be a string")
            cases.append(TestCase(line=position(sentence, position(item))[0], sentence=str(sentence), intent=expected_intent, slots=slots))
    return cases


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)) and not isinstance(expected, bool):
        return float(expected) == float(got)
    return expected == got


def run_tests(commands: CommandSet, cases: list[TestCase]) -> list[TestFailure]:
    failures: list[TestFailure] = []
    for case in cases:
        match = commands.match(case.sentence)
        if case.intent is None:
            if match is not None:
                failures.append(TestFailure(case.line, case.sentence, "no match", f"{match.intent} {match.slots}"))
            continue
        if match is None:
            failures.append(TestFailure(case.line, case.sentence, case.intent, "no match"))
            continue
        wrong = {k: v for k, v in case.slots.items() if k not in match.slots or not _same(v, match.slots[k])}
        if match.intent != case.intent or wrong:
            failures.append(
                TestFailure(case.line, case.sentence, f"{case.intent} {case.slots}", f"{match.intent} {match.slots}")
            )
    return failures
