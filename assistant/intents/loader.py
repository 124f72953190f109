"""Reading commands.yaml (hassil's intent-file syntax plus `reply:` and `handler:`) strictly.

hassil itself trusts its input: a typo in a key is silently ignored, a missing list or rule only
fails when someone speaks the sentence, and nothing has a position. Users edit this file by hand,
so every check runs here, at load, and the first problem is reported as `FILE:LINE:COL: message`.
The validated document is then handed to hassil (`Intents.from_dict`) as plain data, and every
sentence template is parsed right away so nothing is left for the first match to discover.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hassil.intents import Intents, SlotList, TextSlotList, TextSlotValue, WildcardSlotList
from hassil.util import is_template

from assistant.yamlpos import CommandsError
from assistant.handlers.spec import DEFAULT_CONFIRM
from assistant.intents.model import IntentSpec
from assistant.intents.template import CheckedTemplate, Reference, TemplateSyntaxError, check_template
from assistant.yamlpos import PosDict, PosList, load_yaml, position

TOP_KEYS = ("language", "intents", "lists", "expansion_rules", "skip_words", "settings", "responses")
INTENT_KEYS = ("data", "reply", "handler", "confirm", "barge_in")
DATA_KEYS = (
    "sentences",
    "slots",
    "requires_context",
    "excludes_context",
    "expansion_rules",
    "lists",
    "response",
    "metadata",
    "required_keywords",
    "inferred_domain",
    "name_domains",
    "settings",
)
SHORTHAND_KEYS = DATA_KEYS + ("reply", "handler", "confirm", "barge_in")
LIST_KINDS = ("values", "range", "wildcard")
RANGE_KEYS = ("from", "to", "step", "type", "fractions", "multiplier", "digits", "words", "words_language")
MAX_RANGE_NUMBERS = 10_000
"""Most numbers one range may hold (each is spelled out at load; 10,000 take ~0.4 s)."""
VALUE_KEYS = ("in", "out", "context", "metadata")
SETTINGS_KEYS = ("ignore_whitespace", "filter_with_regex")

ExtraList = Iterable[str | Mapping[str, Any]] | SlotList | str


@dataclass
class LoadedCommands:
    """Everything the matcher needs, built once."""

    path: Path
    language: str
    intents: dict[str, IntentSpec]
    hassil_intents: Intents
    extra_lists: dict[str, SlotList]


def load(path: str | Path, extra_lists: Mapping[str, ExtraList] | None = None) -> LoadedCommands:
    return _Loader(Path(path), extra_lists or {}).load()


def build_extra_lists(extra_lists: Mapping[str, ExtraList]) -> dict[str, SlotList]:
    """Turn lists supplied at run time into hassil slot lists.

    A value may be a ready hassil `SlotList`, the string "wildcard" (anything the speaker says), or
    an iterable of strings / `{"in", "out", "context"}` mappings (like YAML list values).
    """
    result: dict[str, SlotList] = {}
    for name, spec in extra_lists.items():
        if isinstance(spec, SlotList):
            result[name] = spec
        elif spec == "wildcard":
            result[name] = WildcardSlotList(name=name)
        elif isinstance(spec, str):
            raise ValueError(f"extra list {name!r}: a string must be 'wildcard'; give values as a list")
        else:
            values: list[TextSlotValue] = []
            for value in spec:
                if isinstance(value, str):
                    values.append(TextSlotValue.from_tuple((value, value), allow_template=False))
                else:
                    values.append(
                        TextSlotValue.from_tuple(
                            (value["in"], value.get("out", value["in"]), value.get("context") or {}), allow_template=True
                        )
                    )
            result[name] = TextSlotList(name=name, values=values)
    return result


def plain(value: Any) -> Any:
    """Strip position subclasses: hassil (and slot values handed to handlers) get plain data."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Loader:
    def __init__(self, path: Path, extra_lists: Mapping[str, ExtraList]) -> None:
        self.path = path
        self.extra_lists = build_extra_lists(extra_lists)
        self.lines: list[str] = []

    # -- error helpers -------------------------------------------------------------------------

    def error(self, pos: tuple[int, int], message: str) -> CommandsError:
        return CommandsError(self.path, pos[0], pos[1], message)

    def value_pos(self, node: PosDict, key: Any) -> tuple[int, int]:
        """Where `node[key]` is written: the value itself when it carries a position, else its key."""
        return position(node[key], node.pos_of(key))

    def text_pos(self, text: Any, offset: int) -> tuple[int, int]:
        """Line/column of character `offset` inside a YAML string.

        Exact for one-line plain and quoted scalars without escapes (where the source holds the
        text verbatim after an optional quote); otherwise the string's own start.
        """
        line, column = position(text)
        if not (0 < line <= len(self.lines)):
            return line, column
        raw = self.lines[line - 1][column - 1 :]
        shift = 1 if raw[:1] in ("'", '"') else 0
        if raw[shift : shift + offset] == str(text)[:offset]:
            return line, column + shift + offset
        return line, column

    def check_keys(self, node: PosDict, allowed: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in allowed:
                raise self.error(
                    node.pos_of(key),
                    f"unknown key {key!r} in {where}{_did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}",
                )

    def expect(self, node: PosDict, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = node[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool) and bool not in _tuple(kind)):
            raise self.error(self.value_pos(node, key), f"{key!r} must be {what}, got {_type_name(value)}")
        return value

    def expect_str_list(self, node: PosDict, key: str) -> PosList:
        value = self.expect(node, key, list, "a list of strings")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                pos = position(item, position(value))
                hint = " (quote it)" if isinstance(item, (bool, int, float)) else ""
                raise self.error(pos, f"item {index + 1} of {key!r} must be a string, got {_type_name(item)}{hint}")
        return value

    # -- the document ----------------------------------------------------------------------------

    def load(self) -> LoadedCommands:
        document = load_yaml(self.path)
        try:
            self.lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            self.lines = []
        if not isinstance(document, PosDict):
            raise self.error(position(document), f"the file must be a mapping with 'intents:', got {_type_name(document)}")
        self.check_keys(document, TOP_KEYS, "the top level")
        if "intents" not in document:
            raise self.error((1, 1), "missing 'intents:' (the commands this file defines)")

        language = "en"
        if "language" in document:
            language = self.expect(document, "language", str, "a language code such as 'en'")
        top_lists = self.check_lists(document, "lists") if "lists" in document else {}
        top_rules = self.check_rules(document) if "expansion_rules" in document else {}
        if "skip_words" in document:
            self.expect_str_list(document, "skip_words")
        if "settings" in document:
            self.check_settings(document)
        if "responses" in document:
            self.expect(document, "responses", dict, "a mapping")

        intents_node = self.expect(document, "intents", dict, "a mapping of intent names")
        if not intents_node:
            raise self.error(self.value_pos(document, "intents"), "'intents:' is empty: define at least one intent")

        data_blocks: dict[str, list[PosDict]] = {}
        seen_names: dict[str, str] = {}
        for name, intent in intents_node.items():
            if not isinstance(name, str) or not name.strip():
                hint = " (YAML reads unquoted on/off/yes/no as booleans: quote it)" if isinstance(name, bool) else ""
                raise self.error(intents_node.pos_of(name), f"intent name must be a non-empty string, got {_type_name(name)}{hint}")
            folded = name.casefold()
            if folded in seen_names:
                first = intents_node.pos_of(seen_names[folded])[0]
                raise self.error(
                    intents_node.pos_of(name),
                    f"duplicate intent {name!r}: {seen_names[folded]!r} on line {first} differs only in case",
                )
            seen_names[folded] = name
            data_blocks[name] = self.check_intent(intents_node, name)

        self.check_rule_cycles(top_rules, {})
        global_lists = {**top_lists, **{k: None for k in self.extra_lists}}
        # Check every reference now that all names are known.
        for rule_name, checked in top_rules.items():
            self.check_references(checked, global_lists, top_rules, f"rule <{rule_name}>")
        for list_name, list_templates in self.list_templates(document, "lists").items():
            for checked in list_templates:
                self.check_references(checked, global_lists, top_rules, f"list {{{list_name}}}")

        specs: dict[str, IntentSpec] = {}
        for name, blocks in data_blocks.items():
            specs[name] = self.build_spec(intents_node, name, blocks, global_lists, top_rules)

        hassil_intents = self.build_hassil(document, data_blocks)
        return LoadedCommands(
            path=self.path,
            language=str(language),
            intents=specs,
            hassil_intents=hassil_intents,
            extra_lists=self.extra_lists,
        )

    def check_settings(self, node: PosDict) -> None:
        settings = self.expect(node, "settings", dict, "a mapping")
        self.check_keys(settings, SETTINGS_KEYS, "settings")
        for key in settings:
            self.expect(settings, key, bool, "true or false")

    # -- lists and rules -----------------------------------------------------------------------

    def check_lists(self, node: PosDict, key: str) -> dict[str, PosDict]:
        lists = self.expect(node, key, dict, "a mapping of list names")
        for name, spec in lists.items():
            if not isinstance(spec, PosDict):
                raise self.error(
                    self.value_pos(lists, name),
                    f"list {name!r} must be a mapping with one of: values, range, wildcard; got {_type_name(spec)}",
                )
            self.check_keys(spec, LIST_KINDS, f"list {name!r}")
            kinds = [kind for kind in LIST_KINDS if kind in spec]
            if len(kinds) != 1:
                what = "needs one of" if not kinds else "must have only one of"
                raise self.error(position(spec), f"list {name!r} {what}: values, range, wildcard")
            if kinds[0] == "values":
                self.check_values(spec, name)
            elif kinds[0] == "range":
                self.check_range(spec, name)
            elif spec["wildcard"] is not True:
                raise self.error(self.value_pos(spec, "wildcard"), f"'wildcard' of list {name!r} must be true")
        return dict(lists)

    def check_values(self, spec: PosDict, name: str) -> None:
        values = self.expect(spec, "values", list, "a list")
        for index, value in enumerate(values):
            if isinstance(value, PosDict):
                self.check_keys(value, VALUE_KEYS, f"a value of list {name!r}")
                if "in" not in value:
                    raise self.error(position(value), f"value {index + 1} of list {name!r} needs 'in:' (the spoken text)")
                self.expect(value, "in", str, "a string")
                for key in ("context", "metadata"):
                    if key in value:
                        self.expect(value, key, dict, "a mapping")
            elif not isinstance(value, str):
                hint = " (YAML reads unquoted on/off/yes/no as booleans: quote it)" if isinstance(value, bool) else ""
                raise self.error(
                    position(value, position(values)),
                    f"value {index + 1} of list {name!r} must be a string or a mapping with 'in:', "
                    f"got {_type_name(value)}{hint}",
                )

    def check_range(self, spec: PosDict, name: str) -> None:
        rng = self.expect(spec, "range", dict, "a mapping with 'from' and 'to'")
        self.check_keys(rng, RANGE_KEYS, f"range of list {name!r}")
        for key in ("from", "to"):
            if key not in rng:
                raise self.error(position(rng), f"range of list {name!r} needs '{key}:'")
            self.expect(rng, key, int, "a whole number")
        if "step" in rng:
            step = self.expect(rng, "step", int, "a whole number")
            if step <= 0:
                raise self.error(self.value_pos(rng, "step"), f"'step' must be positive, got {step}")
        if rng["from"] > rng["to"]:
            raise self.error(self.value_pos(rng, "from"), f"range 'from' ({rng['from']}) is greater than 'to' ({rng['to']})")
        count = (rng["to"] - rng["from"]) // rng.get("step", 1) + 1
        count *= {"halves": 2, "tenths": 10}.get(rng.get("fractions"), 1)
        if count > MAX_RANGE_NUMBERS:
            # Every number of a range gets its spoken forms at load: a billion would never finish.
            raise self.error(self.value_pos(rng, "to"), f"range of list {name!r} has {count} numbers; at most "
                                                        f"{MAX_RANGE_NUMBERS} (use a larger 'step' or a wildcard)")
        if "multiplier" in rng:
            self.expect(rng, "multiplier", (int, float), "a number")
        choices = {"type": ("number", "percentage", "temperature"), "fractions": ("halves", "tenths")}
        for key, allowed in choices.items():
            if key in rng:
                value = rng[key]
                if value not in allowed:
                    raise self.error(
                        self.value_pos(rng, key),
                        f"range {key!r} must be one of {', '.join(allowed)}, got {value!r}{_did_you_mean(value, allowed)}",
                    )
        for key in ("digits", "words"):
            if key in rng:
                self.expect(rng, key, bool, "true or false")
        if rng.get("digits") is False and rng.get("words") is False:
            raise self.error(position(rng), f"range of list {name!r} has neither digits nor words")
        if "words_language" in rng:
            self.expect(rng, "words_language", str, "a language code")

    def list_templates(self, node: PosDict, key: str) -> dict[str, list[CheckedTemplate]]:
        """Parse list values that hassil treats as templates (`in: "(max|maximum)"`)."""
        result: dict[str, list[CheckedTemplate]] = {}
        for name, spec in (node.get(key) or {}).items():
            for value in spec.get("values") or []:
                text = value["in"] if isinstance(value, dict) else value
                if is_template(text):
                    result.setdefault(name, []).append(self.parse(text))
        return result

    def check_rules(self, node: PosDict) -> dict[str, CheckedTemplate]:
        rules = self.expect(node, "expansion_rules", dict, "a mapping of rule names to templates")
        result: dict[str, CheckedTemplate] = {}
        for name, body in rules.items():
            if not isinstance(body, str):
                raise self.error(self.value_pos(rules, name), f"rule <{name}> must be a template string, got {_type_name(body)}")
            result[name] = self.parse(body)
        return result

    def check_rule_cycles(self, rules: dict[str, CheckedTemplate], local: dict[str, CheckedTemplate]) -> None:
        """A rule that reaches itself would make hassil recurse forever on the first match."""
        all_rules = {**rules, **local}
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == 2 or name not in all_rules:
                return
            if state.get(name) == 1:
                cycle = " -> ".join(f"<{n}>" for n in trail[trail.index(name) :] + [name])
                checked = all_rules[name]
                raise self.error(position(checked.text), f"expansion rules refer to each other in a loop: {cycle}")
            state[name] = 1
            for ref in all_rules[name].references:
                if ref.kind == "rule":
                    visit(ref.name, trail + [name])
            state[name] = 2

        for name in all_rules:
            visit(name, [])

    def parse(self, text: Any) -> CheckedTemplate:
        try:
            return check_template(text)
        except TemplateSyntaxError as exc:
            raise self.error(self.text_pos(text, exc.offset), exc.message) from exc

    def check_references(
        self,
        checked: CheckedTemplate,
        lists: Mapping[str, Any],
        rules: Mapping[str, Any],
        where: str,
    ) -> None:
        for ref in checked.references:
            if ref.kind == "list" and not ref.inline_range and ref.name not in lists:
                raise self.error(
                    self.text_pos(checked.text, ref.offset),
                    f"unknown list {{{ref.name}}} in {where}{_did_you_mean(ref.name, lists)}",
                )
            if ref.kind == "rule" and ref.name not in rules:
                raise self.error(
                    self.text_pos(checked.text, ref.offset),
                    f"unknown expansion rule <{ref.name}> in {where}{_did_you_mean(ref.name, rules)}",
                )

    # -- intents -------------------------------------------------------------------------------

    def check_intent(self, intents_node: PosDict, name: str) -> list[PosDict]:
        intent = intents_node[name]
        if not isinstance(intent, PosDict):
            raise self.error(
                self.value_pos(intents_node, name),
                f"intent {name!r} must be a mapping with 'sentences:' or 'data:', got {_type_name(intent)}",
            )
        if "data" in intent:
            self.check_keys(intent, INTENT_KEYS, f"intent {name!r}")
            data = self.expect(intent, "data", list, "a list of blocks with 'sentences:'")
            if not data:
                raise self.error(self.value_pos(intent, "data"), f"'data:' of intent {name!r} is empty")
            blocks = []
            for block in data:
                if not isinstance(block, PosDict):
                    raise self.error(position(block, position(data)), f"each 'data:' item of intent {name!r} must be a mapping")
                self.check_keys(block, DATA_KEYS, f"a data block of intent {name!r}")
                blocks.append(block)
        else:
            self.check_keys(intent, SHORTHAND_KEYS + ("data",), f"intent {name!r}")
            blocks = [intent]
        for block in blocks:
            self.check_block(block, name)
        return blocks

    def check_block(self, block: PosDict, name: str) -> None:
        if "sentences" not in block:
            raise self.error(position(block), f"intent {name!r} needs 'sentences:' (or 'data:' blocks with them)")
        sentences = self.expect_str_list(block, "sentences")
        if not sentences:
            raise self.error(self.value_pos(block, "sentences"), f"'sentences:' of intent {name!r} is empty")
        for key in ("slots", "requires_context", "excludes_context", "metadata"):
            if key in block:
                self.expect(block, key, dict, "a mapping")
        for key in ("required_keywords", "name_domains"):
            if key in block:
                self.expect_str_list(block, key)
        for key in ("response", "inferred_domain"):
            if key in block:
                self.expect(block, key, str, "a string")
        if "settings" in block:
            self.check_settings(block)
        if "lists" in block:
            self.check_lists(block, "lists")

    def build_spec(
        self,
        intents_node: PosDict,
        name: str,
        blocks: list[PosDict],
        global_lists: Mapping[str, Any],
        top_rules: dict[str, CheckedTemplate],
    ) -> IntentSpec:
        intent = intents_node[name]
        slots: set[str] = set()
        sentences: list[str] = []
        for block in blocks:
            local_rules = self.check_rules(block) if "expansion_rules" in block else {}
            self.check_rule_cycles(top_rules, local_rules)
            rules = {**top_rules, **local_rules}
            lists = {**global_lists, **(block.get("lists") or {})}
            for rule_name, checked in local_rules.items():
                self.check_references(checked, lists, rules, f"rule <{rule_name}>")
            for list_name, list_templates in self.list_templates(block, "lists").items():
                for checked in list_templates:
                    self.check_references(checked, lists, rules, f"list {{{list_name}}}")
            for text in block["sentences"]:
                checked = self.parse(text)
                self.check_references(checked, lists, rules, f"intent {name!r}")
                sentences.append(str(text))
                slots.update(_slot_names(checked.references, rules))
            slots.update(str(key) for key in block.get("slots") or {})
            for key, value in (block.get("requires_context") or {}).items():
                if isinstance(value, dict) and value.get("slot"):
                    slots.add(value["slot"] if isinstance(value["slot"], str) else str(key))

        handler = None
        if "handler" in intent:
            handler_node = self.expect(intent, "handler", dict, "a mapping (run, python, http or builtin)")
            handler = _parse_handler()(handler_node, self.path)

        reply = None
        if "reply" in intent:
            reply = self.expect(intent, "reply", str, "a string (a template with {slot} fields)")
            allowed = set(slots) | (set(handler.reply_fields()) if handler is not None else set())
            self.check_reply(reply, allowed, name)

        confirm = self.check_confirm(intent, slots, name) if "confirm" in intent else None
        barge_in = False
        if "barge_in" in intent:
            barge_in = self.expect(intent, "barge_in", bool, "true or false (heard while a reply plays)")

        line, column = intents_node.pos_of(name)
        return IntentSpec(
            name=str(name),
            reply=str(reply) if reply is not None else None,
            handler=handler,
            confirm=confirm,
            sentences=tuple(sentences),
            slots=frozenset(slots),
            barge_in=bool(barge_in),
            line=line,
            column=column,
        )

    def check_confirm(self, intent: PosDict, slots: set[str], name: str) -> str | None:
        """`confirm: true` (ask with the default question), `false` (do not ask) or a question
        template. The question is asked before the handler runs, so it may use the intent's
        slots and `{heard}` (what was understood) but not the handler's fields."""
        value = intent["confirm"]
        if isinstance(value, bool):
            return DEFAULT_CONFIRM if value else None
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                self.value_pos(intent, "confirm"),
                f"'confirm' of intent {name!r} must be true, false or a question such as \"Open the garage door?\", "
                f"got {_type_name(value) if not isinstance(value, str) else 'an empty string'}",
            )
        self.check_reply(value, set(slots) | {"heard"}, name, what="confirm")
        return str(value)

    def check_reply(self, reply: Any, allowed: set[str], intent: str, what: str = "reply") -> None:
        from assistant.handlers.templates import TemplateError, parse_template

        try:
            template = parse_template(str(reply))
        except TemplateError as exc:
            raise self.error(self.text_pos(reply, exc.offset), f"{what} of intent {intent!r}: {exc.message}") from exc
        for template_field in template.fields:
            if template_field.name not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise self.error(
                    self.text_pos(reply, template_field.offset),
                    f"{what} of intent {intent!r} uses unknown slot {{{template_field.name}}}"
                    f"{_did_you_mean(template_field.name, allowed)}; known: {known}",
                )

    # -- handing over to hassil -------------------------------------------------------------------

    def build_hassil(self, document: PosDict, data_blocks: dict[str, list[PosDict]]) -> Intents:
        intents: dict[str, Any] = {}
        for name, blocks in data_blocks.items():
            intents[name] = {"data": [{k: plain(v) for k, v in block.items() if k in DATA_KEYS} for block in blocks]}
        doc = {key: plain(document[key]) for key in ("language", "lists", "expansion_rules", "skip_words", "settings") if key in document}
        doc.setdefault("language", "en")
        doc["intents"] = intents
        try:
            hassil_intents = Intents.from_dict(doc)
        except Exception as exc:  # validation above should make this unreachable; keep the file position anyway
            raise self.error((1, 1), f"hassil rejected the file: {exc}") from exc
        for intent in hassil_intents.intents.values():
            for block in intent.data:
                block.sentences  # parse now (cached_property): nothing is left for the first match
        return hassil_intents


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _slot_names(references: Iterable[Reference], rules: Mapping[str, CheckedTemplate], depth: int = 0) -> set[str]:
    names: set[str] = set()
    for ref in references:
        if ref.kind == "list" and ref.slot:
            names.add(ref.slot)
        elif ref.kind == "rule" and ref.name in rules and depth < 32:
            names |= _slot_names(rules[ref.name].references, rules, depth + 1)
    return names


def _parse_handler() -> Callable[[PosDict, Path], Any]:
    """The handlers package parses `handler:` (it owns what a handler may be); imported on use."""
    from assistant.handlers import parse_handler

    return parse_handler
