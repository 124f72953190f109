"""`assistant listen` and `assistant devices` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.cli import listen as listen_cli
from asr_support import AUDIO, COMMANDS, real_checkpoint

ROOT = Path(__file__).parent.parent
EXPECTED = ["Lights", "TimerSet", "GetTime", "ShoppingListAdd", "Stop", "Lights", "GetDate", "TimerCancel"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))


@pytest.mark.slow
def test_listen_to_a_file_prints_jsonl_events_only_on_stdout(tmp_path):
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "listen", "--input", str(AUDIO / "long_mixed.wav"), "--events", "jsonl",
         "--no-speak", "--model", str(real_checkpoint()), "--commands", str(COMMANDS)],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is one JSON object
    assert [e["intent"] for e in events if e["event"] == "intent"] == EXPECTED
    intent = next(e for e in events if e["event"] == "intent")
    assert set(intent) == {"event", "intent", "slots", "text", "latency_ms", "eos_to_action_ms", "early"}
    assert {e["event"] for e in events} == {"speech", "transcript", "intent", "no-match", "handler", "reply"}
    assert "Whisper" in proc.stderr  # logs go to stderr


@pytest.mark.slow
def test_without_a_microphone_the_demo_recording_plays_through_the_same_loop_in_real_time(monkeypatch, capsys):
    assert listen_cli.DEMO_AUDIO == AUDIO / "long_mixed.wav" and listen_cli.DEMO_AUDIO.is_file()
    monkeypatch.setattr(listen_cli, "DEMO_AUDIO", AUDIO / "stop.wav")  # the 2 s file: the demo runs at speech pace
    monkeypatch.setattr("assistant.audio.list_input_devices", lambda: [])
    started = time.monotonic()
    code = main(["listen", "--events", "jsonl", "--no-speak", "--model", str(real_checkpoint()), "--commands", str(COMMANDS)])
    captured = capsys.readouterr()
    assert code == 0
    assert "no microphone found" in captured.err and "stop.wav" in captured.err
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert [e["intent"] for e in events if e["event"] == "intent"] == ["Stop"]
    assert time.monotonic() - started >= 2.0  # 2.1 s of audio took its own time


def test_real_time_source_paces_frames_and_stops_when_closed():
    from assistant.audio import WavFileSource

    source = listen_cli.RealTimeSource(WavFileSource(AUDIO / "stop.wav"))
    assert source.realtime
    started = time.monotonic()
    frames = source.frames()
    for _ in range(10):
        next(frames)
    assert 0.25 <= time.monotonic() - started < 1.0  # 10 frames of 30 ms
    source.close()
    assert list(frames) == [] and source.state == "closed"


def test_text_output_is_readable(capsys):
    emit = listen_cli._event_printer("text")
    emit({"event": "transcript", "text": "Stop.", "start": 1.0, "end": 1.4, "asr_ms": 120.0})
    emit({"event": "intent", "intent": "TimerSet", "slots": {"minutes": 5}, "text": "x", "latency_ms": 150.0,
          "eos_to_action_ms": 850.0, "early": False})
    emit({"event": "intent", "intent": "Lights", "slots": {}, "text": "x", "latency_ms": 150.0,
          "eos_to_action_ms": 360.0, "early": True})
    emit({"event": "speech", "start": 1.0, "end": 1.4})
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "[   1.00s] heard: Stop.  (120 ms)",
        "           -> TimerSet (minutes=5)  (850 ms after you stopped)",
        "           -> Lights  (360 ms after you stopped, at the first pause)",
    ]


def test_a_file_that_is_not_wav_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    assert main(["listen", "--input", str(bad), "--no-speak", "--commands", str(COMMANDS)]) == 2
    assert "notes.wav" in capsys.readouterr().err


def test_a_broken_commands_file_is_reported_with_its_position(tmp_path, capsys):
    bad = tmp_path / "commands.yaml"
    bad.write_text("intents:\n  X: [\n")
    assert main(["listen", "--input", str(AUDIO / "stop.wav"), "--commands", str(bad)]) == 1
    assert "commands.yaml:" in capsys.readouterr().err


def test_an_unknown_model_name_says_how_to_get_it(capsys):
    assert main(["listen", "--input", str(AUDIO / "stop.wav"), "--no-speak", "--model", "small.en",
                 "--commands", str(COMMANDS)]) == 2
    err = capsys.readouterr().err
    assert "small.en" in err and "assistant models fetch whisper" in err


def test_devices_lists_inputs(monkeypatch, capsys):
    fake = [{"index": 3, "name": "USB mic", "hostapi": "ALSA", "channels": 1, "default_samplerate": 48000.0, "default": True}]
    monkeypatch.setattr("assistant.audio.list_input_devices", lambda: fake)
    assert main(["devices"]) == 0
    assert capsys.readouterr().out == "*   3  USB mic  (ALSA, 1 ch, 48000 Hz)\n"
    assert main(["devices", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == fake
    monkeypatch.setattr("assistant.audio.list_input_devices", lambda: [])
    assert main(["devices"]) == 0
    assert "no audio input devices" in capsys.readouterr().out


@pytest.mark.slow
def test_replies_can_be_spoken_into_a_wav_file(tmp_path, capsys):
    from assistant.audio import read_wav

    out = tmp_path / "replies.wav"
    code = main(["listen", "--input", str(AUDIO / "what_time.wav"), "--speak-to", str(out), "--events", "jsonl",
                 "--model", str(real_checkpoint()), "--commands", str(COMMANDS)])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["intent"] for e in events if e["event"] == "intent"] == ["GetTime"]
    audio, rate = read_wav(out)
    assert len(audio) / rate > 0.5 and abs(audio).max() > 0.05  # "It's ten thirty-seven AM." was spoken
