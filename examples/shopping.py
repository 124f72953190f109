"""A shopping list kept in the assistant's durable store: the example of a `python:` handler.

Each function is called with the intent's slots as keyword arguments and returns either the
text to say or a dict the reply template reads as `{result.KEY}`. The list lives under the key
"shopping" in the state database of the data folder (`ASSISTANT_HOME` moves it, as in the
tests); every change is one committed transaction, so a reply is only given for a change that is
on disk. When the saved list could not be read (a damaged state file is set aside, never
overwritten), the next reply says so once instead of pretending the list was empty.
"""

from __future__ import annotations

from typing import Any

from assistant.store import Outcome, shared_store

KEY = "shopping"


def _items(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _change(change: Any = None) -> Outcome:
    return shared_store().transact(KEY, change, default=[])


def _note(outcome: Outcome) -> str:
    """The sentence that says the saved list was lost (empty when nothing was)."""
    if outcome.lost is None:
        return ""
    return "I couldn't read your saved shopping list, so I set it aside and started a new one. "


def _clean(item: str) -> str:
    return " ".join(str(item).strip(" .,!?").split()).lower()


def add_item(item: str) -> dict[str, object]:
    """Add `item` (once); the reply can say `{result.item}`, `{result.count}` and `{result.note}`."""
    item = _clean(item)
    if not item:
        raise ValueError("nothing to add")
    outcome = _change(lambda value: _items(value) + ([item] if item not in _items(value) else []))
    return {"item": item, "count": len(outcome.value), "note": _note(outcome)}


def remove_item(item: str) -> str:
    item = _clean(item)
    found: list[bool] = []

    def without(value: Any) -> list[str]:
        items = _items(value)
        found.append(item in items)
        return [x for x in items if x != item]

    outcome = _change(without)
    if not found[0]:
        return _note(outcome) + f"{item} is not on your shopping list."
    return _note(outcome) + f"Removed {item} from your shopping list."


def list_items() -> str:
    outcome = _change()
    items = _items(outcome.value)
    note = _note(outcome)
    if not items:
        return note + "Your shopping list is empty."
    if len(items) == 1:
        return note + f"Your shopping list has {items[0]}."
    return note + f"Your shopping list has {', '.join(items[:-1])} and {items[-1]}."


def clear_list() -> str:
    return _note(_change(lambda value: [])) + "Your shopping list is now empty."
