"""Confirmation and the wake word by speech: committed Piper (joe) speech, the real VAD, real
tiny.en, the real hey_jarvis model, the shipped commands.yaml and its handlers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.asr import WhisperASR, WhisperSettings
from assistant.asr.recognizer import Recognizer
from assistant.audio import read_wav, write_wav
from assistant.cli import main
from assistant.conversation import CANCELLED, Conversation, ConversationSettings
from assistant.intents import load_commands
from assistant.loop import ListenLoop
from assistant.wakeword import WakeWordDetector, WakeWordSettings
from asr_support import AUDIO, COMMANDS, real_checkpoint
from test_loop import FramesSource
from test_loop_conversation import CountingDispatcher

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))


@pytest.fixture(scope="module")
def commands():
    return load_commands(COMMANDS)


@pytest.fixture(scope="module")
def asr():
    return WhisperASR(WhisperSettings(model=str(real_checkpoint()), device="cpu"))


def listen(asr, commands, *names, wake_word=None):
    dispatcher = CountingDispatcher(commands)
    events: list[dict] = []
    replies: list[str] = []
    detector = WakeWordDetector(WakeWordSettings(wake_word)) if wake_word else None
    loop = ListenLoop(FramesSource(*names), Recognizer(asr, commands), dispatcher, speak=replies.append,
                      on_event=events.append, conversation=Conversation(ConversationSettings(wake_word=wake_word)),
                      wake=detector)
    try:
        loop.run()
    finally:
        dispatcher.close()
    return dispatcher.ran, replies, events


def answers(events):
    return [(e["answer"], e["text"]) for e in events if e["event"] == "answer"]


def test_spoken_yes_runs_the_handler_once(asr, commands):
    ran, replies, events = listen(asr, commands, "add_milk.wav", "clear_shopping_list.wav", "yes.wav", "what_time.wav")
    assert ran == ["ShoppingListAdd", "ShoppingListClear", "GetTime"]
    assert replies[1] == "Clear your whole shopping list?" and replies[2] == "Your shopping list is now empty."
    assert [kind for kind, _ in answers(events)] == ["yes"]


@pytest.mark.parametrize("names, kind", [
    (("no.wav",), "no"),
    (("stop.wav",), "no"),  # "stop" is a command too, but while a question waits it is a no
    (("what_time.wav",), "other"),  # a command instead of an answer cancels, and does not run either
    (("silence.wav", "silence.wav", "silence.wav"), "timeout"),
])
def test_spoken_no_other_speech_or_silence_runs_nothing(asr, commands, names, kind):
    ran, replies, events = listen(asr, commands, "add_milk.wav", "clear_shopping_list.wav", *names)
    assert ran == ["ShoppingListAdd"]
    assert replies[1:] == ["Clear your whole shopping list?", CANCELLED[kind]]
    assert [k for k, _ in answers(events)] == [kind]


def test_with_the_wake_word_on_commands_without_it_do_nothing(asr, commands):
    ran, replies, events = listen(asr, commands, "what_time.wav", "turn_on_kitchen_lights.wav", wake_word="hey_jarvis")
    assert ran == [] and replies == []
    assert [e["event"] for e in events if e["event"] in ("ignored", "transcript", "wake")] == ["ignored", "ignored"]


def test_piper_saying_hey_jarvis_then_the_command_acts(asr, commands):
    ran, replies, events = listen(asr, commands, "hey_jarvis_what_time.wav", wake_word="hey_jarvis")
    assert ran == ["GetTime"] and replies[0].startswith("It's ")
    heard = next(e["text"] for e in events if e["event"] == "transcript")
    assert "jarvis" in heard.lower()  # the phrase was in the segment and stripped before matching


def test_the_wake_word_alone_then_the_command(asr, commands):
    ran, _, events = listen(asr, commands, "hey_jarvis.wav", "turn_on_kitchen_lights.wav", wake_word="hey_jarvis")
    assert ran == ["Lights"]
    assert [e["event"] for e in events].count("wake") == 1


def test_listen_cli_with_a_wake_word(tmp_path, capsys):
    clips = [read_wav(AUDIO / name)[0] for name in ("what_time.wav", "hey_jarvis_what_time.wav")]
    path = tmp_path / "two.wav"
    write_wav(path, np.concatenate(clips), 16000)
    code = main(["listen", "--input", str(path), "--events", "jsonl", "--no-speak", "--model", str(real_checkpoint()),
                 "--commands", str(COMMANDS), "--wake-word", "hey_jarvis"])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events if e["event"] in ("ignored", "wake", "intent")] == ["ignored", "wake", "intent"]
