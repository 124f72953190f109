"""The one template syntax used in replies and handler arguments.

`{name}` inserts a value, `{response.state}` walks into a mapping (or a list, by index), and
`{{` / `}}` are literal braces. Nothing else: no format specs, no conversions, no attribute access
on Python objects. `str.format` would allow `{result.__class__}` and friends on values that come
from handlers, and its errors carry no position, so the templates get their own small parser that
reports the offset of a mistake and lists the fields a template needs (so unknown fields are load
errors, not a surprise when someone speaks).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")


class TemplateError(ValueError):
    """A malformed template; `offset` is the 0-based index of the problem in the text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class MissingValue(KeyError):
    """A template names a value the match or the handler did not provide."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field

    def __str__(self) -> str:
        return f"no value for {{{self.field}}}"


@dataclass(frozen=True)
class Field:
    """One `{...}` placeholder: `path` is the dotted name split into parts."""

    path: tuple[str, ...]
    offset: int

    @property
    def name(self) -> str:
        """The top-level value the field reads (the slot or handler field name)."""
        return self.path[0]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and fields, in order."""

    source: str
    parts: tuple[str | Field, ...]

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(part for part in self.parts if isinstance(part, Field))

    @property
    def names(self) -> set[str]:
        """Top-level names this template needs."""
        return {field.name for field in self.fields}

    @property
    def is_single_field(self) -> bool:
        """True for exactly `{name}`: the value is used as it is (keeps numbers numbers in JSON)."""
        return len(self.parts) == 1 and isinstance(self.parts[0], Field)

    def lookup(self, values: Mapping[str, Any]) -> Any:
        """The raw value of a single-field template (see `is_single_field`)."""
        field = self.parts[0]
        assert isinstance(field, Field)
        return resolve(field, values)

    def render(self, values: Mapping[str, Any], encode: Callable[[str], str] | None = None) -> str:
        """The text with every field replaced; raises MissingValue for an absent value.

        `encode` is applied to each inserted value (URL-quoting for URLs), never to the literal text.
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text = format_value(resolve(part, values))
                out.append(encode(text) if encode else text)
        return "".join(out)


def parse_template(text: str) -> Template:
    """Parse `text`; raises TemplateError with the offset of the first mistake."""
    parts: list[str | Field] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "}":
            raise TemplateError("'}' without a matching '{' (write '}}' for a literal brace)", i)
        elif char == "{":
            end = text.find("}", i + 1)
            if end < 0:
                raise TemplateError("'{' is never closed (write '{{' for a literal brace)", i)
            inner = text[i + 1 : end]
            if not _FIELD.fullmatch(inner):
                raise TemplateError(f"bad placeholder {{{inner}}}: expected a name like {{room}} or {{response.state}}", i)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Field(tuple(inner.split(".")), i))
            i = end + 1
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return Template(text, tuple(parts))


def resolve(field: Field, values: Mapping[str, Any]) -> Any:
    """Walk the dotted path through mappings (by key) and lists (by index)."""
    if field.name not in values or values[field.name] is None:
        raise MissingValue(field.dotted)
    value = values[field.name]
    for key in field.path[1:]:
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, (list, tuple)) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise MissingValue(field.dotted)
        if value is None:
            raise MissingValue(field.dotted)
    return value


def format_value(value: Any) -> str:
    """How a value reads inside text: whole floats without '.0', lists as 'a, b and c'."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        items = [format_value(item) for item in value]
        if len(items) <= 1:
            return "".join(items)
        return ", ".join(items[:-1]) + " and " + items[-1]
    return str(value)
