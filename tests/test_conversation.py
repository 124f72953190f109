"""The conversation state on its own: plain stream times, no audio, no threads, no models."""

from __future__ import annotations

import math

import pytest

from assistant.conversation import (
    ANSWERS,
    Conversation,
    ConversationSettings,
    Pending,
    Route,
    WakeStripped,
    classify_answer,
)
from assistant.intents.model import IntentMatch
from assistant.wakeword import WakeWordSettings, strip_wake_phrase

GARAGE = IntentMatch("GarageDoor", {"door_action": "open"}, "open the garage door")


def woken(**kw) -> Conversation:
    return Conversation(ConversationSettings(wake_word="hey_jarvis", wake_seconds=5.0, follow_up_seconds=4.0, **kw))


# -- answers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind", [
    ("Yes.", "yes"), ("yeah", "yes"), ("Yeah, do it!", "yes"), ("Do it.", "yes"), ("yes please", "yes"),
    ("No.", "no"), ("Cancel.", "no"), ("No, cancel.", "no"), ("nope", "no"), ("Don't.", "no"),
    ("What time is it?", "other"), ("yes turn on the lights", "other"), ("yesterday", "other"),
    ("no way", "other"), ("...", "none"), ("", "none"),
])
def test_only_whole_answers_count(text, kind):
    assert classify_answer(text) == kind


def test_the_answer_set_is_a_small_command_set():
    assert ANSWERS.match("Yeah.").intent == "yes" and ANSWERS.match("No.").intent == "no"
    assert ANSWERS.match("open the garage door") is None
    words = ANSWERS.vocabulary()
    assert {"yes", "yeah", "do", "it", "no", "cancel"} <= set(words) and len(words) == len(set(words)) < 25


# -- confirmation ----------------------------------------------------------------------------

def test_a_question_waits_for_its_answer_until_the_deadline():
    conv = Conversation(ConversationSettings(confirm_seconds=8.0))
    assert conv.route(1.0, None) is Route.COMMAND and conv.phase(1.0) == "idle"
    conv.ask(Pending(GARAGE, "Should I open the garage door?", asked_at=2.0))
    assert conv.phase(2.0) == "confirming"
    assert conv.route(9.9, None) is Route.ANSWER
    assert conv.expire(9.99) is None  # not yet
    assert conv.take_answer().match is GARAGE
    assert conv.take_answer() is None and conv.route(11.0, None) is Route.COMMAND


def test_no_answer_expires_once_and_the_capture_side_is_told_once():
    conv = Conversation(ConversationSettings(confirm_seconds=8.0))
    conv.ask(Pending(GARAGE, "?", asked_at=2.0))
    assert not conv.expiry_due(9.9)
    assert conv.expiry_due(10.0) and not conv.expiry_due(10.5)
    pending = conv.expire(10.0)
    assert pending is not None and pending.match is GARAGE
    assert conv.expire(11.0) is None and conv.phase(10.0) != "confirming"
    assert conv.route(10.5, None) is Route.COMMAND


def test_the_deadline_counts_from_the_end_of_the_spoken_question():
    conv = Conversation(ConversationSettings(confirm_seconds=8.0))
    conv.ask(Pending(GARAGE, "?", asked_at=2.0))
    for t in (2.5, 3.0, 4.5):  # the question is being spoken: muted frames
        conv.spoke(t)
    assert not conv.expiry_due(12.4) and conv.expire(12.4) is None
    assert conv.expire(12.5) is not None  # 4.5 + 8


def test_a_new_question_can_expire_again():
    conv = Conversation(ConversationSettings(confirm_seconds=1.0))
    conv.ask(Pending(GARAGE, "?", asked_at=0.0))
    assert conv.expiry_due(1.0) and conv.expire(1.0) is not None
    conv.ask(Pending(GARAGE, "?", asked_at=5.0))
    assert not conv.expiry_due(5.5) and conv.expiry_due(6.0)
    assert conv.expire(math.inf) is not None


# -- follow-up and wake windows ----------------------------------------------------------------

def test_without_a_wake_word_every_segment_is_a_command():
    conv = Conversation()
    assert not conv.wake_on
    assert [conv.route(t, None) for t in (0.0, 100.0, 1e6)] == [Route.COMMAND] * 3


def test_with_a_wake_word_speech_without_it_is_ignored():
    conv = woken()
    assert conv.route(3.0, None) is Route.IGNORE and conv.phase(3.0) == "idle"
    assert conv.wake_for(2.0, 4.0) is None


def test_the_wake_word_may_start_the_command_or_come_just_before_it():
    conv = woken()
    conv.heard_wake(1.3)  # "hey jarvis" ends inside the segment 0.5-2.1
    assert conv.wake_for(0.5, 2.8) == 1.3 and conv.route(0.5, 1.3) is Route.COMMAND
    assert conv.phase(3.0) == "woken"
    assert conv.wake_for(6.3, 7.5) == 1.3  # a command starting within 5 s after it
    assert conv.wake_for(6.31, 7.5) is None  # too late
    assert conv.wake_for(0.0, 1.2) is None  # a segment that closed before the wake word


def test_a_wake_word_lets_one_command_through_then_the_follow_up_window_takes_over():
    conv = woken()
    conv.heard_wake(1.3)
    conv.use_wake(1.3)  # "what time is it" ran
    conv.replied(2.0)
    assert conv.wake_for(3.0, 4.0) is None
    assert conv.route(5.9, None) is Route.COMMAND and conv.phase(5.9) == "follow-up"  # 2.0 + 4 s follow-up
    assert conv.route(6.1, None) is Route.IGNORE and conv.phase(6.1) == "idle"


def test_the_follow_up_window_counts_from_the_end_of_the_reply():
    conv = woken()
    conv.replied(2.0)
    for t in (2.4, 5.0, 7.0):
        conv.spoke(t)
    assert conv.route(10.9, None) is Route.COMMAND and conv.route(11.1, None) is Route.IGNORE


def test_follow_up_zero_closes_the_window_and_a_question_keeps_it_open():
    conv = Conversation(ConversationSettings(wake_word="alexa", follow_up_seconds=0.0, confirm_seconds=8.0))
    conv.replied(2.0)
    assert conv.route(2.5, None) is Route.IGNORE
    conv.ask(Pending(GARAGE, "?", asked_at=3.0))
    assert conv.route(9.0, None) is Route.ANSWER  # no wake word needed for the answer


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown wake word 'hey_siri'"):
        ConversationSettings(wake_word="hey_siri")
    with pytest.raises(ValueError, match="confirm_seconds"):
        ConversationSettings(confirm_seconds=0)
    with pytest.raises(ValueError, match="follow_up_seconds"):
        ConversationSettings(follow_up_seconds=-1)
    with pytest.raises(ValueError, match="unknown wake word"):
        WakeWordSettings(model="computer")
    with pytest.raises(ValueError, match="threshold"):
        WakeWordSettings(threshold=1.5)


# -- the wake phrase in the transcript ------------------------------------------------------------

@pytest.mark.parametrize("text, rest", [
    ("Hey Jarvis, what time is it?", "what time is it?"),
    ("Hey, Jarvis. What time is it?", "What time is it?"),
    ("A Jarvis, turn on the kitchen lights.", "turn on the kitchen lights."),
    ("Hey Travis, what time is it?", "what time is it?"),
    ("Jarvis, stop.", "stop."),
    ("Hey Jarvis.", ""),
])
def test_the_wake_phrase_is_stripped_as_whisper_spells_it(text, rest):
    assert strip_wake_phrase(text, "hey jarvis") == (rest, True)


@pytest.mark.parametrize("text", ["What time is it?", "Hey, what time is it?", "turn on the kitchen lights"])
def test_text_without_the_wake_phrase_is_kept(text):
    assert strip_wake_phrase(text, "hey jarvis") == (text, False)


def test_commands_behind_the_wake_phrase():
    class Commands:
        def match(self, text):
            return IntentMatch("GetTime", {}, text) if text.lower().startswith("what time") else None

        def vocabulary(self):
            return ["is", "it", "time", "what"]

    stripped = WakeStripped(Commands(), "hey jarvis")
    assert stripped.match("Hey Jarvis, what time is it?").text == "what time is it?"
    assert stripped.match("Hey Jarvis.") is None
    assert stripped.vocabulary()[:2] == ["Hey", "Jarvis"]
