"""Conversation state: who may speak to the assistant now, and what a segment is heard as.

A pure state object beside the listen loop, driven by what the loop sees and the stream time
(seconds of audio heard, the clock the VAD segmenter counts): no threads, no wall clock, no
audio, so every rule below is tested with plain numbers (tests/test_conversation.py), and a
file is processed exactly as the same audio from a microphone would be.

States:
- idle: with no wake word (the default) every speech segment is a command; with a wake word a
  segment is ignored unless one of the windows below is open.
- wake window: the wake word was heard; the segment that contains it (the phrase may start the
  command: "hey jarvis, what time is it") or one that starts within `wake_seconds` after it is
  a command. The first segment with more than the wake phrase uses the wake word up.
- awaiting confirmation: an intent marked `confirm:` was heard; its question was asked and the
  next segment is an answer, recognised against yes/no only. "yes" runs the handler once;
  "no", anything else, or no answer within `confirm_seconds` cancels it and says so.
- follow-up window: after a reply, a segment that starts within `follow_up_seconds` is a
  command without the wake word.

Windows count from the end of the assistant's own speech: while it talks the microphone is
muted (`spoke`), and the user cannot answer before the question has been heard.

The object is shared by the loop's capture thread (wake word, muting, expiry) and its
recognition worker (routes, questions, answers), so every method takes its lock.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

from assistant.wakeword import WAKE_WORDS, strip_wake_phrase


@dataclass(frozen=True)
class ConversationSettings:
    """Confirmation, follow-up and wake-word windows (seconds of audio)."""

    confirm_seconds: float = 8.0
    """How long a confirmation question waits for yes/no, from the end of the question."""
    follow_up_seconds: float = 5.0
    """After a reply, how long a command may start without the wake word (only matters with a
    wake word; 0: never)."""
    wake_word: str | None = None
    """None: no wake word, every speech segment is a command (VAD-first). Else one of
    hey_jarvis, okay_nabu, hey_mycroft, alexa."""
    wake_seconds: float = 5.0
    """After the wake word, how long the command may take to start."""

    def __post_init__(self) -> None:
        if not self.confirm_seconds > 0:
            raise ValueError(f"confirm_seconds must be positive, got {self.confirm_seconds!r}")
        for name in ("follow_up_seconds", "wake_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.wake_word is not None and self.wake_word not in WAKE_WORDS:
            raise ValueError(f"unknown wake word {self.wake_word!r}; choose one of: {', '.join(WAKE_WORDS)}")


class Route(Enum):
    """What a speech segment is heard as."""

    COMMAND = "command"
    """Recognise it against the commands."""
    ANSWER = "answer"
    """Recognise it against yes/no: a question is waiting."""
    IGNORE = "ignore"
    """Do not recognise it: a wake word is on and none of its windows is open."""


@dataclass(frozen=True)
class Pending:
    """A command waiting for its confirmation."""

    match: Any
    """The matched command (an IntentMatch), run as it is on "yes"."""
    question: str
    """What was asked."""
    asked_at: float
    """Stream seconds when it was asked (the end of the command's speech)."""


# -- answers ---------------------------------------------------------------------------------

YES = ("yes", "yeah", "yep", "do it", "yes please", "sure", "go ahead", "okay", "ok")
NO = ("no", "nope", "cancel", "no thanks", "don't", "do not", "stop", "never mind")

CANCELLED = {
    "no": "Okay, I won't.",
    "other": "I didn't hear a yes, so I cancelled that.",
    "timeout": "No answer, so I cancelled that.",
}
"""What is said when a confirmation ends without a yes, by reason."""

_ANSWER_WORDS = re.compile(r"[a-z']+")


def _phrases(words: list[str], phrases: tuple[str, ...]) -> bool:
    """True when `words` are one or more of `phrases` back to back ("yes, do it", "no, cancel")."""
    if not words:
        return False
    split = [p.split() for p in phrases]
    reachable = [True] + [False] * len(words)
    for i in range(len(words)):
        if reachable[i]:
            for phrase in split:
                if words[i : i + len(phrase)] == phrase:
                    reachable[i + len(phrase)] = True
    return reachable[-1]


def classify_answer(text: str) -> str:
    """'yes', 'no', 'other' (speech that is neither) or 'none' (no words at all).

    Only whole answers count: "yes" and "yeah do it" are yes, "yes turn on the lights" is other
    (anything but a clear yes cancels a risky command)."""
    words = _ANSWER_WORDS.findall(text.lower().replace("’", "'"))
    if not words:
        return "none"
    if _phrases(words, YES):
        return "yes"
    if _phrases(words, NO):
        return "no"
    return "other"


@dataclass(frozen=True)
class Answer:
    """A recognised answer, shaped like a command match for the Recognizer."""

    intent: str
    text: str
    slots: dict[str, Any]
    exact: bool = True


class AnswerSet:
    """yes/no as a command set: what the Recognizer gets while a question waits, so Whisper is
    prompted with these words only and its text is matched against them only."""

    def match(self, text: str) -> Answer | None:
        kind = classify_answer(text)
        return Answer(kind, text, {}) if kind in ("yes", "no") else None

    def vocabulary(self) -> list[str]:
        words: list[str] = []
        for phrase in YES + NO:
            words += [w for w in phrase.split() if w not in words]
        return words


ANSWERS = AnswerSet()


class WakeStripped:
    """The active commands behind a wake phrase: the phrase is removed before matching, and its
    words lead the vocabulary prompt so Whisper spells it and the command apart."""

    def __init__(self, commands: Any, phrase: str) -> None:
        self.commands = commands
        self.phrase = phrase

    def match(self, text: str) -> Any:
        rest, _ = strip_wake_phrase(text, self.phrase)
        return self.commands.match(rest) if rest.strip() else None

    def vocabulary(self) -> list[str]:
        words = [w.capitalize() for w in self.phrase.split()]
        return words + [w for w in self.commands.vocabulary() if w not in words]


# -- the state -------------------------------------------------------------------------------


class Conversation:
    """The state above; times are stream seconds."""

    def __init__(self, settings: ConversationSettings = ConversationSettings()) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pending: Pending | None = None
        self._expiry_signalled = False
        self._replied_at: float | None = None
        self._spoke_at: float | None = None
        self._wakes: deque[float] = deque(maxlen=8)
        self._used_wakes: deque[float] = deque(maxlen=8)

    @property
    def wake_on(self) -> bool:
        return self.settings.wake_word is not None

    # -- what the capture thread tells -----------------------------------------------------

    def spoke(self, at: float) -> None:
        """The assistant was speaking at `at` (the microphone was muted)."""
        with self._lock:
            self._spoke_at = at if self._spoke_at is None else max(self._spoke_at, at)

    def heard_wake(self, at: float) -> None:
        """The wake word ended at `at`."""
        with self._lock:
            self._wakes.append(at)

    def wake_for(self, start: float, ended_at: float) -> float | None:
        """The wake word that lets the segment [start, ended_at] through: heard in it, or at most
        `wake_seconds` before it started, and not used up. None: no such wake word."""
        with self._lock:
            for at in reversed(self._wakes):
                if at <= ended_at and start <= at + self.settings.wake_seconds and at not in self._used_wakes:
                    return at
            return None

    def expiry_due(self, now: float) -> bool:
        """True once when the waiting question's time is up at `now` (the loop then queues an
        expiry behind any answer already queued)."""
        with self._lock:
            if self._pending is None or self._expiry_signalled or now < self._deadline():
                return False
            self._expiry_signalled = True
            return True

    def may_speculate(self) -> bool:
        """May the loop act early on a command at its first pause? Not while a question waits
        (the segment is an answer) nor with a wake word (the segment may not be for us)."""
        with self._lock:
            return self._pending is None and not self.wake_on

    # -- what the recognition worker asks and tells ----------------------------------------

    def route(self, start: float, wake: float | None) -> Route:
        """How to hear a segment that starts at `start`; `wake` is from `wake_for`.

        Call `expire(start)` first: a question whose time ran out before the segment began
        gets no answer from it."""
        with self._lock:
            if self._pending is not None:
                return Route.ANSWER
            if not self.wake_on:
                return Route.COMMAND
            if wake is not None and wake not in self._used_wakes:
                return Route.COMMAND
            if self._replied_at is not None and start <= self._window_start(self._replied_at) + self.settings.follow_up_seconds:
                return Route.COMMAND
            return Route.IGNORE

    def use_wake(self, wake: float | None) -> None:
        """The wake word at `wake` brought a command (or other speech): it opens no more."""
        if wake is None:
            return
        with self._lock:
            if wake not in self._used_wakes:
                self._used_wakes.append(wake)

    def ask(self, pending: Pending) -> None:
        """A question was asked: the next segment is its answer."""
        with self._lock:
            self._pending = pending
            self._expiry_signalled = False

    def take_answer(self) -> Pending | None:
        """An answer came: the waiting command (None: nothing was waiting)."""
        with self._lock:
            pending, self._pending = self._pending, None
            return pending

    def expire(self, now: float) -> Pending | None:
        """The waiting command if its time is up at `now` (it is dropped), else None."""
        with self._lock:
            if self._pending is None or now < self._deadline():
                return None
            pending, self._pending = self._pending, None
            return pending

    def replied(self, at: float) -> None:
        """A command was answered at `at`: the follow-up window opens (from the end of the reply)."""
        with self._lock:
            self._replied_at = at

    def phase(self, now: float) -> str:
        """"confirming", "follow-up", "woken" or "idle" at `now` (for status and tests)."""
        with self._lock:
            if self._pending is not None and now < self._deadline():
                return "confirming"
            if self._replied_at is not None and now <= self._window_start(self._replied_at) + self.settings.follow_up_seconds:
                return "follow-up"
            if any(at <= now <= at + self.settings.wake_seconds and at not in self._used_wakes for at in self._wakes):
                return "woken"
            return "idle"

    # -- internals (lock held) -------------------------------------------------------------

    def _window_start(self, at: float) -> float:
        """A window opened at `at` starts counting when the assistant stopped talking."""
        return max(at, self._spoke_at) if self._spoke_at is not None else at

    def _deadline(self) -> float:
        assert self._pending is not None
        return self._window_start(self._pending.asked_at) + self.settings.confirm_seconds
