"""One example sentence per intent, for the "what can I say" built-in.

Each intent's first sentence template is said the plain way: the first choice of every
alternative, optional words kept inside the sentence but dropped at its end ("repeat that",
not "repeat that please"), rules expanded, a `{list}` replaced by its first value (a number
range by 5 when it can, a wildcard by its slot name). Lists and rules come from the commands
file itself (`commands.path`), read again with plain YAML.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import yaml
from hassil.expression import Alternative, Expression, ListReference, Permutation, RuleReference, Sequence, TextChunk
from hassil.parse_expression import parse_sentence

log = logging.getLogger(__name__)
_MAX_DEPTH = 20


def intent_examples(commands: Any) -> list[str]:
    """The first sentence of each intent, as it could be said, in file order."""
    document = _document(commands)
    top_lists = document.get("lists") or {}
    top_rules = document.get("expansion_rules") or {}
    intents_node = document.get("intents") or {}
    examples: list[str] = []
    for name, spec in commands.intents.items():
        node = intents_node.get(name)
        blocks = (node.get("data") if isinstance(node, dict) and "data" in node else [node]) or []
        block = blocks[0] if blocks and isinstance(blocks[0], dict) else {}
        sayer = _Sayer({**top_lists, **(block.get("lists") or {})}, {**top_rules, **(block.get("expansion_rules") or {})})
        for template in spec.sentences:
            try:
                text = sayer.say_sentence(template)
            except Exception:  # noqa: BLE001 - an odd template must not silence the help
                log.debug("cannot make an example of %r", template, exc_info=True)
                continue
            if text:
                examples.append(text)
                break
    return examples


def _document(commands: Any) -> Mapping[str, Any]:
    try:
        with open(commands.path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError, TypeError, AttributeError):
        return {}
    return document if isinstance(document, dict) else {}


class _Sayer:
    def __init__(self, lists: Mapping[str, Any], rules: Mapping[str, Any]) -> None:
        self.lists = lists
        self.rules = rules

    def say_sentence(self, template: str) -> str:
        expression = parse_sentence(template).expression
        items = list(expression.items) if isinstance(expression, Sequence) and not isinstance(expression, (Alternative, Permutation)) else [expression]
        while items and self._droppable_tail(items):
            items.pop()  # trailing optional words ("please", "now") only make an example longer
        return " ".join("".join(self.say(item, 0) for item in items).split())

    @staticmethod
    def _droppable_tail(items: list[Expression]) -> bool:
        last = items[-1]
        if isinstance(last, TextChunk):
            return not last.text.strip()
        if not (isinstance(last, Alternative) and last.is_optional):
            return False
        before = items[-2] if len(items) > 1 else None
        # "minute[s]" is one word: keep its ending.
        return not (isinstance(before, TextChunk) and before.text and not before.text[-1].isspace())

    def say(self, expression: Expression, depth: int) -> str:
        if depth > _MAX_DEPTH:
            return " "
        if isinstance(expression, TextChunk):
            return expression.text
        if isinstance(expression, ListReference):
            return f" {self.list_value(expression, depth)} "
        if isinstance(expression, RuleReference):
            body = self.rules.get(expression.rule_name)
            return f" {self.say(parse_sentence(body).expression, depth + 1)} " if isinstance(body, str) else " "
        if isinstance(expression, Alternative):
            choices = [item for item in expression.items if "".join(self.say(item, depth + 1).split())]
            return self.say(choices[0], depth + 1) if choices else " "
        if isinstance(expression, Permutation):
            return " ".join(self.say(item, depth + 1) for item in expression.items)
        if isinstance(expression, Sequence):
            return "".join(self.say(item, depth + 1) for item in expression.items)
        return " "

    def list_value(self, ref: ListReference, depth: int) -> str:
        spec = self.lists.get(ref.list_name)
        fallback = ref.slot_name.replace("_", " ")
        if not isinstance(spec, dict):
            return fallback
        if isinstance(spec.get("range"), dict):
            low, high = spec["range"].get("from", 0), spec["range"].get("to", 0)
            return str(5 if low <= 5 <= high else low)
        values = spec.get("values")
        if isinstance(values, list) and values:
            first = values[0]
            text = first.get("in") if isinstance(first, dict) else first
            if isinstance(text, str):
                return " ".join(self.say(parse_sentence(text).expression, depth + 1).split()) or fallback
        return fallback
