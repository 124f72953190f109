"""The echo check (assistant/echo.py) and the played-audio reference it reads (playback/reference.py)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.echo import EchoGate, EchoSettings
from assistant.playback.reference import PlayedLevels


def tone(level: float, seconds: float = 0.03) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (level * np.sqrt(2) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_played_levels_report_the_loudest_block_heard_in_a_window():
    played = PlayedLevels(keep_seconds=1.0)
    played.record(tone(0.1, 0.04), 16000, heard_at=10.0)
    played.record(tone(0.4, 0.04), 16000, heard_at=10.04)
    played.record(np.zeros(640, np.float32), 16000, heard_at=10.08)
    assert played.peak(10.0, 10.03) == pytest.approx(0.1, rel=0.02)
    assert played.peak(9.0, 10.2) == pytest.approx(0.4, rel=0.02)
    assert played.peak(10.09, 10.1) == 0.0 and played.peak(11.0, 12.0) == 0.0
    assert played.last_end() == pytest.approx(10.12)
    played.record(tone(0.2, 0.04), 16000, heard_at=20.0)  # older blocks than keep_seconds are forgotten
    assert played.peak(0, 15) == 0.0


def test_nothing_playing_means_every_frame_is_believed():
    gate = EchoGate(PlayedLevels())
    assert not gate.is_echo(tone(0.001), 100.0) and not gate.is_echo(tone(0.5), 100.0)
    assert gate.echo_frames == 0


def test_echo_at_the_rooms_gain_is_ignored_and_speech_above_it_is_heard():
    gate = EchoGate(PlayedLevels(), EchoSettings(margin=2.5, learn_frames=10, prior_gain=1.0))
    assert gate.gain == 1.0
    for _ in range(20):  # the room gives the reply back at a quarter of its level
        assert gate.judge(0.05, 0.2)
    assert gate.gain == pytest.approx(0.25)
    assert gate.judge(0.1, 0.2)  # 2x the echo: still taken for echo (margin 2.5)
    assert not gate.judge(0.2, 0.2)  # 4x the echo: a person talking over the reply
    assert not gate.judge(0.2, 0.001)  # the reply is quiet (-60 dBFS): the microphone is believed


def test_until_the_room_is_measured_the_cautious_prior_applies():
    gate = EchoGate(PlayedLevels(), EchoSettings(prior_gain=1.0, learn_frames=30))
    assert gate.judge(0.4, 0.2)  # as loud as 2x the reply: could be echo of a speaker next to the mic
    assert not gate.judge(0.6, 0.2)


def test_the_reference_window_covers_the_output_latency():
    played = PlayedLevels()
    played.record(tone(0.3, 0.2), 16000, heard_at=50.0)  # heard 50.0-50.2
    gate = EchoGate(played, EchoSettings(window_seconds=0.3))
    assert gate.is_echo(tone(0.2), 50.45)  # 0.25 s after the block ended: still its echo
    assert not gate.is_echo(tone(0.2), 50.7)  # long after: believed


@pytest.mark.parametrize("bad", [dict(margin=0), dict(prior_gain=0), dict(learn_frames=0), dict(learn_frames=5, history_frames=4)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        EchoSettings(**bad)
