"""A shopping list kept in a JSON file: the example of a `python:` handler.

Each function is called with the intent's slots as keyword arguments and returns either the
text to say or a dict the reply template reads as `{result.KEY}`. The list lives in the
assistant's data folder (`ASSISTANT_HOME` moves it, as in the tests).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from assistant.paths import data_dir

_lock = threading.Lock()


def _path() -> Path:
    return data_dir() / "shopping.json"


def _load() -> list[str]:
    try:
        items = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(item) for item in items] if isinstance(items, list) else []


def _save(items: list[str]) -> None:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(items, indent=2), encoding="utf-8")
    tmp.replace(path)


def _clean(item: str) -> str:
    return " ".join(str(item).strip(" .,!?").split()).lower()


def add_item(item: str) -> dict[str, object]:
    """Add `item` (once); the reply can say `{result.item}` and `{result.count}`."""
    item = _clean(item)
    if not item:
        raise ValueError("nothing to add")
    with _lock:
        items = _load()
        if item not in items:
            items.append(item)
            _save(items)
    return {"item": item, "count": len(items)}


def remove_item(item: str) -> str:
    item = _clean(item)
    with _lock:
        items = _load()
        if item not in items:
            return f"{item} is not on your shopping list."
        items.remove(item)
        _save(items)
    return f"Removed {item} from your shopping list."


def list_items() -> str:
    with _lock:
        items = _load()
    if not items:
        return "Your shopping list is empty."
    if len(items) == 1:
        return f"Your shopping list has {items[0]}."
    return f"Your shopping list has {', '.join(items[:-1])} and {items[-1]}."


def clear_list() -> str:
    with _lock:
        _save([])
    return "Your shopping list is now empty."
