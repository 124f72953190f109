"""Confirmation, follow-up and the wake word through the real ListenLoop: committed speech, the
real VAD, the real Dispatcher and shipped commands.yaml, the real hey_jarvis detector; a
scripted recogniser stands in for Whisper (test_loop_real_conversation.py uses tiny.en)."""

from __future__ import annotations

import pytest

from assistant.asr.recognizer import Recognizer
from assistant.conversation import ANSWERS, CANCELLED, Conversation, ConversationSettings
from assistant.handlers import Dispatcher
from assistant.intents import load_commands
from assistant.loop import ListenLoop
from assistant.wakeword import WakeWordDetector, WakeWordSettings
from asr_support import COMMANDS
from test_loop import FramesSource, ScriptedASR


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))


class CountingDispatcher(Dispatcher):
    """The real Dispatcher, counting the handlers it runs."""

    def __init__(self, commands) -> None:
        super().__init__(commands, announce=lambda text: None, timer_thread=False)
        self.ran: list[str] = []

    def handle(self, match):
        self.ran.append(match.intent)
        return super().handle(match)


def run(source, *texts, settings=ConversationSettings(), wake=False, speak=True):
    commands = load_commands(COMMANDS)
    dispatcher = CountingDispatcher(commands)
    events: list[dict] = []
    replies: list[str] = []
    asr = ScriptedASR(*texts)
    detector = WakeWordDetector(WakeWordSettings("hey_jarvis")) if wake else None
    loop = ListenLoop(source, Recognizer(asr, commands), dispatcher, speak=replies.append if speak else None,
                      on_event=events.append, conversation=Conversation(settings), wake=detector)
    try:
        loop.run()
    finally:
        dispatcher.close()
    return dispatcher.ran, replies, events, asr, loop


def kinds(events, kind):
    return [e for e in events if e["event"] == kind]


# -- confirmation ----------------------------------------------------------------------------

def test_yes_runs_the_risky_handler_once():
    ran, replies, events, asr, _ = run(FramesSource("add_milk.wav", "clear_shopping_list.wav", "yes.wav"),
                                       "add milk to my shopping list", "Clear my shopping list.", "Yes.")
    assert ran == ["ShoppingListAdd", "ShoppingListClear"]
    assert replies[1] == "Clear your whole shopping list?"
    assert kinds(events, "confirm") == [{"event": "confirm", "intent": "ShoppingListClear",
                                         "question": "Clear your whole shopping list?"}]
    assert [(e["intent"], e["answer"]) for e in kinds(events, "answer")] == [("ShoppingListClear", "yes")]
    # the answer was recognised against yes/no only: its prompt holds those words, not the commands'
    assert asr.prompts[-1] == "PROMPT " + " ".join(sorted(ANSWERS.vocabulary())[:3])
    assert asr.prompts[0] != asr.prompts[-1]


@pytest.mark.parametrize("answer, kind", [("No.", "no"), ("Cancel.", "no"), ("What time is it?", "other")])
def test_no_or_other_speech_runs_nothing_and_says_so(answer, kind):
    ran, replies, events, _, _ = run(FramesSource("clear_shopping_list.wav", "no.wav", "what_time.wav"),
                                     "Clear my shopping list.", answer, "What time is it?")
    assert ran == ["GetTime"]  # the command after the answer is a command again
    assert replies[:2] == ["Clear your whole shopping list?", CANCELLED[kind]]
    assert [e["answer"] for e in kinds(events, "answer")] == [kind]


def test_silence_cancels_when_the_time_is_up_and_listening_goes_on():
    ran, replies, events, _, _ = run(FramesSource("clear_shopping_list.wav", "silence.wav", "what_time.wav"),
                                     "Clear my shopping list.", "What time is it?",
                                     settings=ConversationSettings(confirm_seconds=3.0))
    assert ran == ["GetTime"]
    assert replies[:2] == ["Clear your whole shopping list?", CANCELLED["timeout"]]
    assert [e["answer"] for e in kinds(events, "answer")] == ["timeout"]


def test_a_question_left_at_the_end_of_input_is_cancelled():
    ran, replies, events, _, _ = run(FramesSource("clear_shopping_list.wav"), "Clear my shopping list.")
    assert ran == [] and replies == ["Clear your whole shopping list?", CANCELLED["timeout"]]


def test_the_answer_may_come_late_within_the_time():
    # 4 s of silence, then "yes": inside an 8 s window
    ran, _, events, _, _ = run(FramesSource("clear_shopping_list.wav", "silence.wav", "yes.wav"),
                               "Clear my shopping list.", "Yes.")
    assert ran == ["ShoppingListClear"] and [e["answer"] for e in kinds(events, "answer")] == ["yes"]


# -- the wake word -----------------------------------------------------------------------------

def test_with_a_wake_word_commands_without_it_do_nothing():
    ran, replies, events, asr, loop = run(FramesSource("what_time.wav", "turn_on_kitchen_lights.wav"),
                                          "What time is it?", "Turn on the kitchen lights.",
                                          settings=ConversationSettings(wake_word="hey_jarvis"), wake=True)
    assert ran == [] and replies == [] and asr.calls == 0  # not even transcribed
    assert len(kinds(events, "ignored")) == 2 and loop.stats.ignored_segments == 2
    assert kinds(events, "wake") == []


def test_the_wake_word_starting_a_command_lets_it_act():
    ran, replies, events, _, _ = run(FramesSource("hey_jarvis_what_time.wav"), "Hey Jarvis, what time is it?",
                                     settings=ConversationSettings(wake_word="hey_jarvis"), wake=True)
    assert ran == ["GetTime"] and replies[0].startswith("It's ")
    assert len(kinds(events, "wake")) == 1
    assert kinds(events, "intent")[0]["text"] == "what time is it?"


def test_the_wake_word_alone_opens_a_window_for_the_next_segment():
    ran, _, events, _, _ = run(FramesSource("hey_jarvis.wav", "what_time.wav", "silence.wav", "silence.wav",
                                            "turn_on_kitchen_lights.wav"),
                               "Hey Jarvis.", "What time is it?", "Turn on the kitchen lights.",
                               settings=ConversationSettings(wake_word="hey_jarvis", follow_up_seconds=3.0), wake=True)
    assert ran == ["GetTime"]  # the lights came 8 s after the reply: outside the follow-up window
    assert len(kinds(events, "ignored")) == 1


def test_a_command_may_follow_a_reply_without_the_wake_word():
    ran, _, _, _, _ = run(FramesSource("hey_jarvis_what_time.wav", "turn_on_kitchen_lights.wav"),
                          "Hey Jarvis, what time is it?", "Turn on the kitchen lights.",
                          settings=ConversationSettings(wake_word="hey_jarvis", follow_up_seconds=5.0), wake=True)
    assert ran == ["GetTime", "Lights"]


def test_a_question_keeps_the_window_open_for_its_answer():
    ran, _, events, _, _ = run(FramesSource("hey_jarvis.wav", "clear_shopping_list.wav", "silence.wav", "yes.wav"),
                               "Hey Jarvis.", "Clear my shopping list.", "Yes.",
                               settings=ConversationSettings(wake_word="hey_jarvis", follow_up_seconds=0.0), wake=True)
    assert ran == ["ShoppingListClear"]
    assert [e["answer"] for e in kinds(events, "answer")] == ["yes"]


def test_a_wake_word_on_needs_a_detector():
    commands = load_commands(COMMANDS)
    with pytest.raises(ValueError, match="no WakeWordDetector"):
        ListenLoop(FramesSource("yes.wav"), Recognizer(ScriptedASR(), commands), Dispatcher(commands, timer_thread=False),
                   conversation=Conversation(ConversationSettings(wake_word="alexa")))
