"""YAML loading that remembers where every value came from.

PyYAML's plain loaders drop source positions, yet every error in commands.yaml must name
file:line:column. This loader builds ordinary dicts, lists and strings (so the rest of the code
handles plain Python data) whose subclasses carry 1-based `line`/`column` of the value, and for
mappings also the position of each key. It also rejects duplicate keys, which plain YAML loading
silently resolves to the last one (two intents with one name would otherwise vanish quietly).

Every problem is a `CommandsError`, reported as `FILE:LINE:COL: message` (1-based), the format
editors and compilers use. Both the intents loader and the handlers' own parsers report through
it, so it lives here, below both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


@dataclass
class CommandsError(Exception):
    path: Path | str
    line: int
    column: int
    message: str

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class PosDict(dict):
    """A mapping with its own position and the position of each key."""

    line: int = 0
    column: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_pos: dict[Any, tuple[int, int]] = {}

    def pos_of(self, key: Any) -> tuple[int, int]:
        """Position of `key` if present, else of the mapping itself."""
        return self.key_pos.get(key, (self.line, self.column))


class PosList(list):
    line: int = 0
    column: int = 0


class PosStr(str):
    line: int = 0
    column: int = 0


def position(value: Any, default: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """The 1-based (line, column) a loaded value came from, or `default` for ints/bools/None."""
    line = getattr(value, "line", 0)
    return (line, getattr(value, "column", 0)) if line else default


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _PosLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _PosLoader, node: MappingNode) -> PosDict:
    loader.flatten_mapping(node)
    result = PosDict()
    result.line, result.column = _mark(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result.key_pos:
            first_line, _ = result.key_pos[key]
            line, column = _mark(key_node)
            raise CommandsError(loader.name, line, column, f"duplicate key {key!r} (first defined on line {first_line})")
        result.key_pos[key] = _mark(key_node)
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def _construct_sequence(loader: _PosLoader, node: SequenceNode) -> PosList:
    result = PosList(loader.construct_object(child, deep=True) for child in node.value)
    result.line, result.column = _mark(node)
    return result


def _construct_str(loader: _PosLoader, node: ScalarNode) -> PosStr:
    result = PosStr(loader.construct_scalar(node))
    result.line, result.column = _mark(node)
    return result


_PosLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_PosLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_PosLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)


def load_yaml(path: Path) -> Any:
    """Parse `path`; YAML syntax errors become CommandsError with the parser's position."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandsError(path, 1, 1, f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CommandsError(path, 1, 1, f"not UTF-8 text: {exc.reason}") from exc
    try:
        # The reader checks the characters as the loader is built: a control character fails here.
        loader = _PosLoader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(path, text, exc) from exc
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise CommandsError(path, line, column, f"YAML syntax error: {exc.problem or exc.context}") from exc
    except yaml.reader.ReaderError as exc:  # met later in a long file (the reader works in blocks)
        raise _reader_error(path, text, exc) from exc
    finally:
        loader.dispose()


def _reader_error(path: Path, text: str, exc: yaml.reader.ReaderError) -> CommandsError:
    """PyYAML reports a forbidden character by its offset only: turn it into a line and column."""
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    return CommandsError(path, line, column, f"character U+{exc.character:04X} is not allowed in YAML "
                                             "(write it as an escape inside a double-quoted string)")
