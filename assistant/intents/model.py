"""The plain data the loader produces and the matcher returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IntentSpec:
    """One intent of commands.yaml as the rest of the assistant sees it.

    `slots` names every slot a sentence of this intent can fill (list slots, fixed `slots:` values,
    context slots), which is what a reply template may use besides the handler's own fields.
    `handler` is an `assistant.handlers.HandlerSpec` (or None for reply-only intents).
    """

    name: str
    reply: str | None = None
    handler: Any = None
    confirm: str | None = None
    """The question (a reply template over the slots, plus `{heard}`) asked before the handler
    runs; None: the intent runs at once."""
    sentences: tuple[str, ...] = ()
    slots: frozenset[str] = frozenset()
    barge_in: bool = False
    """Heard while a reply plays (`barge_in: true`): saying it stops the reply, then runs it."""
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class IntentMatch:
    """A recognised sentence: `exact` is False when the near-miss stage repaired the text."""

    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    exact: bool = True
