"""`assistant say` and `assistant voices` through the real command line."""

import pytest

from assistant.cli import main
from assistant.audio.clip import Audio


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_say_writes_a_wav(tmp_path, home) -> None:
    out = tmp_path / "reply.wav"
    assert main(["say", "The timer is set for 7:30.", "--engine", "espeak", "--out", str(out)]) == 0
    audio = Audio.from_wav_bytes(out.read_bytes())
    assert audio.sample_rate == 22050 and 1.0 < audio.duration < 4.0 and audio.rms() > 0.02
    assert list((home / "cache" / "replies").glob("*.wav")), "say shares the reply cache"


def test_say_with_auto_falls_back_without_tortoise_weights(tmp_path, capsys) -> None:
    out = tmp_path / "reply.wav"
    assert main(["say", "Hello there.", "--out", str(out), "--no-cache"]) == 0
    assert Audio.from_wav_bytes(out.read_bytes()).rms() > 0.02
    err = capsys.readouterr().err  # the CLI logs to stderr
    assert err.count("tortoise is unavailable") == 1 and "by piper" in err


def test_say_bad_input_is_a_clear_error(tmp_path, capsys) -> None:
    out = tmp_path / "reply.wav"
    assert main(["say", "   ", "--engine", "espeak", "--out", str(out)]) == 2
    assert "nothing to say" in capsys.readouterr().err
    assert main(["say", "hi", "--engine", "espeak", "--voice", "no-such-voice", "--out", str(out)]) == 2
    assert "unknown espeak-ng voice" in capsys.readouterr().err
    assert not out.exists()


def test_voices_list_and_add(tmp_path, capsys) -> None:
    clip = tmp_path / "clip.wav"
    main(["say", "This is a reference clip for a new voice.", "--engine", "espeak", "--out", str(clip)])
    assert main(["voices", "add", "robot", str(clip)]) == 0
    assert "added voice 'robot'" in capsys.readouterr().out
    assert main(["voices", "list"]) == 0
    assert "robot" in capsys.readouterr().out
    assert main(["voices", "add", "robot", str(clip)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_voices_latents_without_weights_says_how_to_get_them(capsys) -> None:
    assert main(["voices", "latents", "dotrice"]) == 2
    assert "models fetch tortoise" in capsys.readouterr().err


def test_say_to_a_missing_device_is_a_clear_error(capsys) -> None:
    assert main(["say", "hello", "--engine", "espeak", "--device", "no-such-device"]) == 2
    err = capsys.readouterr().err
    assert "no output device 'no-such-device'" in err and "--out" in err
