"""Checking one hassil sentence template, with the offset of every mistake.

hassil parses templates lazily (on the first match) and its parse errors carry no position; some
mistakes even surface as bare `AssertionError`s ("Text is too short" for `()`). This scanner walks
the template once at load time, reports the 0-based offset of the first problem in words a user
can act on, and lists the `{list}` and `<rule>` references so the loader can check they exist.
hassil's own parser still runs afterwards as the final authority.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hassil.expression import Sentence
from hassil.parse_expression import parse_sentence

_CLOSERS = {"(": ")", "[": "]"}
_OPEN_NAMES = {"(": "group", "[": "optional"}
_INLINE_RANGE = re.compile(r"^(\d+)\.\.(\d+)(?:,(\d+))?$")


class TemplateSyntaxError(ValueError):
    """A malformed template; `offset` is the 0-based index of the problem in the template text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Reference:
    """One `{list}` or `<rule>` in a template.

    `slot` is the slot the list fills (`{list:slot}`), `capture` marks `{list:@name}` captures,
    `inline_range` marks `{1..10:slot}` ranges that need no list definition.
    """

    kind: str  # "list" or "rule"
    name: str
    offset: int
    slot: str | None = None
    capture: bool = False
    inline_range: bool = False


@dataclass(frozen=True)
class CheckedTemplate:
    text: str
    sentence: Sentence
    references: tuple[Reference, ...]


def check_template(text: str) -> CheckedTemplate:
    """Scan and parse `text`; raises TemplateSyntaxError with the offset of the first mistake."""
    if not text.strip():
        raise TemplateSyntaxError("empty sentence template", 0)
    references = _scan(text)
    try:
        sentence = parse_sentence(text, keep_text=True)
    except Exception as exc:  # hassil raises ParseError, AssertionError or ValueError
        raise TemplateSyntaxError(f"hassil cannot parse this template: {exc or type(exc).__name__}", 0) from exc
    return CheckedTemplate(text=text, sentence=sentence, references=tuple(references))


def _scan(text: str) -> list[Reference]:
    references: list[Reference] = []
    # Each open group: (opening char, offset, separator seen in this group or "")
    stack: list[list] = []
    top_separator = ""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text):
                raise TemplateSyntaxError("template ends with a lone '\\' (escape what?)", i)
            i += 2
            continue
        if char in "{<":
            references.append(_scan_reference(text, i))
            i = text.index("}" if char == "{" else ">", i) + 1
            continue
        if char in "}>":
            opener = "{" if char == "}" else "<"
            raise TemplateSyntaxError(f"unexpected '{char}' without a matching '{opener}' (escape it as '\\{char}')", i)
        if char in _CLOSERS:
            stack.append([char, i, ""])
        elif char in ")]":
            if not stack:
                opener = "(" if char == ")" else "["
                raise TemplateSyntaxError(f"unexpected '{char}' without a matching '{opener}'", i)
            opener, start, _ = stack.pop()
            if _CLOSERS[opener] != char:
                raise TemplateSyntaxError(
                    f"'{char}' closes the {_OPEN_NAMES[opener]} '{opener}' opened at offset {start + 1}; "
                    f"expected '{_CLOSERS[opener]}'",
                    i,
                )
            if start + 1 == i:
                raise TemplateSyntaxError(f"empty {_OPEN_NAMES[opener]} '{opener}{char}'", start)
        elif char in "|;":
            seen = stack[-1][2] if stack else top_separator
            if seen and seen != char:
                raise TemplateSyntaxError(
                    f"'{char}' mixed with '{seen}' in one group: wrap the alternatives or permutation items in ( )", i
                )
            if stack:
                stack[-1][2] = char
            else:
                top_separator = char
        i += 1
    if stack:
        opener, start, _ = stack[-1]
        raise TemplateSyntaxError(f"unclosed {_OPEN_NAMES[opener]} '{opener}' (missing '{_CLOSERS[opener]}')", start)
    return references


def _scan_reference(text: str, start: int) -> Reference:
    opener = text[start]
    closer = "}" if opener == "{" else ">"
    kind = "list" if opener == "{" else "rule"
    end = start + 1
    while end < len(text) and text[end] != closer:
        if text[end] in "{}<>()[]|;":
            if text[end] in "{<(":
                raise TemplateSyntaxError(f"unclosed {kind} '{opener}' (missing '{closer}')", start)
            raise TemplateSyntaxError(f"unexpected '{text[end]}' inside {kind} '{opener}...{closer}'", end)
        end += 1
    if end >= len(text):
        raise TemplateSyntaxError(f"unclosed {kind} '{opener}' (missing '{closer}')", start)
    body = text[start + 1 : end]
    if not body.strip():
        raise TemplateSyntaxError(f"empty {kind} name '{opener}{closer}'", start)
    if kind == "rule":
        return Reference(kind="rule", name=body, offset=start)
    name, slot, capture = body, body, False
    if ":" in body:
        name, slot = body.split(":", 1)
        if slot.startswith("@"):
            capture, slot = True, slot[1:]
        if not name or not slot:
            raise TemplateSyntaxError(f"list reference '{{{body}}}' needs a name on both sides of ':'", start)
    elif body.startswith("@"):
        name = slot = body[1:]
        capture = True
    inline = _INLINE_RANGE.match(name) is not None and ":" in body
    return Reference(kind="list", name=name, offset=start, slot=slot, capture=capture, inline_range=inline)
