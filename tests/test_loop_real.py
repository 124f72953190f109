"""The whole listening pipeline on the committed speech with the real tiny.en weights:
WAV -> webrtcvad segmenter -> Whisper (short-context, vocabulary prompt) -> commands.yaml -> handlers."""

from __future__ import annotations

import pytest

from assistant.asr import WhisperASR, WhisperSettings
from assistant.audio import WavFileSource
from assistant.handlers import Dispatcher
from assistant.intents import load_commands
from assistant.asr.recognizer import Recognizer, RecognizerSettings
from assistant.loop import ListenLoop
from asr_support import AUDIO, COMMANDS, manifest, real_checkpoint

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


def listen(name, asr, commands, recognition="free"):
    dispatcher = Dispatcher(commands, announce=lambda text: None)
    events: list[dict] = []
    replies: list[str] = []
    recognizer = Recognizer(asr, commands, RecognizerSettings(recognition=recognition))
    try:
        ListenLoop(WavFileSource(AUDIO / name), recognizer, dispatcher, speak=replies.append, on_event=events.append).run()
    finally:
        dispatcher.close()
    return events, replies


def intents(events):
    return [(e["intent"], e["slots"]) for e in events if e["event"] == "intent"]


def test_long_recording_gives_exactly_its_commands_in_order(asr, commands):
    info = manifest()["long_mixed.wav"]
    expected = [(m.intent, m.slots) for m in map(commands.match, info["expected_commands"])]
    events, replies = listen("long_mixed.wav", asr, commands)
    assert intents(events) == expected == [
        ("Lights", {"state": "on", "room": "kitchen"}),
        ("TimerSet", {"minutes": 5}),
        ("GetTime", {}),
        ("ShoppingListAdd", {"item": "milk"}),
        ("Stop", {}),
        ("Lights", {"state": "off", "room": "bedroom"}),
        ("GetDate", {}),
        ("TimerCancel", {}),
    ]
    # the two chatter sentences are heard, transcribed and matched to nothing
    assert len([e for e in events if e["event"] == "no-match"]) == 2
    speech = [e for e in events if e["event"] == "speech"]
    assert len(speech) == len(info["segments"])
    for heard, said in zip(speech, info["segments"]):
        assert abs(heard["start"] - said["start"]) < 0.3 and abs(heard["end"] - said["end"]) < 0.3
    assert all(e["ok"] for e in events if e["event"] == "handler")
    assert len(replies) == 8


@pytest.mark.parametrize("name", ["silence.wav", "noise.wav"])
def test_silence_and_noise_give_no_intent(asr, commands, name):
    events, replies = listen(name, asr, commands)
    assert intents(events) == [] and replies == []
    assert [e for e in events if e["event"] == "transcript"] == []


def test_one_word_stop_registers(asr, commands):
    events, _ = listen("stop.wav", asr, commands)
    assert intents(events) == [("Stop", {})]


def test_a_pause_mid_command_does_not_cut_it(asr, commands):
    info = manifest()["pause_mid_command.wav"]
    assert info["pause_seconds"] == 0.4
    events, _ = listen("pause_mid_command.wav", asr, commands)
    assert len([e for e in events if e["event"] == "speech"]) == 1
    assert intents(events) == [("TimerSet", {"minutes": 5})]


@pytest.mark.parametrize("recognition", ["free", "guided"])
def test_a_complete_command_closes_at_its_first_pause(asr, commands, recognition):
    """Nothing extends "turn on the kitchen lights": acted on ~0.2 s after the last word,
    not after the 0.7 s window, and decoded once."""
    events, _ = listen("turn_on_kitchen_lights.wav", asr, commands, recognition)
    (intent,) = [e for e in events if e["event"] == "intent"]
    assert (intent["intent"], intent["slots"]) == ("Lights", {"state": "on", "room": "kitchen"})
    assert intent["early"] is True
    (transcript,) = [e for e in events if e["event"] == "transcript"]
    assert transcript["path"] == ("guided" if recognition == "guided" else "short")


@pytest.mark.parametrize("recognition", ["free", "guided"])
def test_a_prefix_command_waits_and_the_paused_command_is_whole(asr, commands, recognition):
    events, _ = listen("stop.wav", asr, commands, recognition)
    assert [e["early"] for e in events if e["event"] == "intent"] == [False]  # "stop the timer" extends it
    events, _ = listen("pause_mid_command.wav", asr, commands, recognition)
    assert [(e["intent"], e["slots"], e["early"]) for e in events if e["event"] == "intent"] == [("TimerSet", {"minutes": 5}, False)]
