"""The echo check and canceller (assistant/echo.py) and the played-audio reference they read (playback/reference.py)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.echo import EchoCanceller, EchoGate, EchoSettings, rms
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
    quiet, loud = tone(0.001), tone(0.5)
    out, echo = gate.process(quiet, 100.0)
    assert not echo and np.array_equal(out, quiet)  # nothing played: the frame as heard
    assert not gate.process(loud, 100.0)[1]
    assert gate.echo_frames == 0 and not gate.canceller.locked


def test_echo_at_the_rooms_gain_is_ignored_and_speech_above_it_is_heard():
    gate = EchoGate(PlayedLevels(), EchoSettings(margin=2.5, learn_frames=10, prior_gain=1.0))
    assert gate.gain() == 1.0
    for _ in range(20):  # the room gives the reply back at a quarter of its level
        assert gate.judge(0.05, 0.2)
    assert gate.gain() == pytest.approx(0.25) and gate.gain(cancelled=True) == 1.0  # learnt apart
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
    gate = EchoGate(played, EchoSettings(window_seconds=0.3, cancel=False))
    assert gate.process(tone(0.2), 50.45)[1]  # 0.25 s after the block ended: still its echo
    assert not gate.process(tone(0.2), 50.7)[1]  # long after: believed


@pytest.mark.parametrize("bad", [dict(margin=0), dict(prior_gain=0), dict(learn_frames=0), dict(learn_frames=5, history_frames=4),
                                 dict(partitions=0), dict(step=2), dict(lock_correlation=0), dict(lead_seconds=-1),
                                 dict(locate_seconds=0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        EchoSettings(**bad)


def test_played_samples_are_kept_as_runs_indexed_by_count():
    played = PlayedLevels()
    played.record(np.full(800, 0.1, np.float32), 16000, heard_at=10.1)  # stamped 100 ms late
    played.record(np.full(800, 0.2, np.float32), 16000, heard_at=10.05)  # continues it
    played.record(np.full(800, 0.3, np.float32), 16000, heard_at=12.0)  # a gap: a new run
    first = played.run_near(10.05, slack=0.0)
    assert first is not None and first.number == 1
    assert first.anchor == pytest.approx(10.0)  # the least-late stamp, back to sample 0
    assert first.end == pytest.approx(10.1)
    assert played.run_near(12.01, 0.0).number == 2 and played.run_near(11.0, 0.1) is None
    part = played.run_slice(1, 790, 1610)
    assert len(part) == 820 and np.allclose(part[:10], 0.1) and np.allclose(part[10:810], 0.2)
    assert np.all(part[810:] == 0)  # not played (yet)
    assert np.all(played.run_slice(7, 0, 5) == 0)  # no such run


def room(seconds: float, delay: int, gain: float, seed: int = 1) -> tuple[PlayedLevels, np.ndarray, np.ndarray]:
    """A reply (speech-like noise bursts) played from t=100 s in 40 ms blocks stamped up to 60 ms
    late, and what the microphone hears of it: `delay` samples after the stamps say, at `gain`,
    with a short room tail."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    envelope = np.repeat(rng.uniform(0.05, 1.0, n // 3200 + 1), 3200)[:n]
    reply = (np.convolve(rng.standard_normal(n), np.ones(4) / 4, "same") * 0.2 * envelope).astype(np.float32)
    played = PlayedLevels(keep_seconds=60)
    for i in range(0, n, 640):
        played.record(reply[i:i + 640], 16000, heard_at=100.0 + i / 16000 + rng.uniform(0, 0.06))
    tail = np.zeros(200)
    tail[0], tail[60], tail[199] = 1.0, 0.4, 0.1
    echo = gain * np.convolve(np.concatenate([np.zeros(delay), reply]), tail)[: n + delay]
    return played, reply, echo.astype(np.float32)


def frames_of(mic: np.ndarray, start: float = 100.0):
    for k in range(len(mic) // 480):
        yield mic[k * 480:(k + 1) * 480], start + (k + 1) * 0.03


def test_the_canceller_locates_the_echo_and_subtracts_it():
    played, reply, mic = room(6.0, delay=1500, gain=0.3)
    canceller = EchoCanceller(played)
    heard, left = [], []
    for frame, at in frames_of(mic):
        out = canceller.cancel(frame, at)
        canceller.adapt()
        if at > 103.0:
            heard.append(frame)
            left.append(out)
    assert canceller.locks == 1 and canceller.locked and canceller.converged
    erle = 20 * np.log10(rms(np.concatenate(heard)) / rms(np.concatenate(left)))
    assert erle > 20, erle


def test_a_person_over_the_reply_is_kept_and_heard_and_the_echo_is_not():
    played, reply, echo = room(6.0, delay=900, gain=0.5)
    mic = echo.copy()
    voice = tone(0.05, 0.6)  # a person 15 dB under the echo's loudest
    at = int(4.5 * 16000)
    mic[at:at + len(voice)] += voice
    gate = EchoGate(played, EchoSettings(learn_frames=20))
    decisions = []
    for k, (frame, stamp) in enumerate(frames_of(mic)):
        out, echo_frame = gate.process(frame, stamp)
        decisions.append(echo_frame)
        if 4.53 < k * 0.03 < 5.0:
            assert not echo_frame and rms(out - voice[k * 480 - at:(k + 1) * 480 - at]) < 0.3 * rms(voice)
    assert gate.canceller.converged
    level_only = EchoGate(played, EchoSettings(learn_frames=20, cancel=False))
    heard = [not level_only.process(frame, stamp)[1] for k, (frame, stamp) in enumerate(frames_of(mic))
             if 4.53 < k * 0.03 < 5.0]
    assert not any(heard)  # the level check alone takes the person for echo
    assert sum(not d for d in decisions[100:150]) <= 2  # the echo alone, after convergence: echo


def test_without_a_clear_echo_the_canceller_does_not_lock():
    played, reply, _ = room(3.0, delay=0, gain=0.0)
    rng = np.random.default_rng(5)
    mic = (rng.standard_normal(len(reply)) * 0.01).astype(np.float32)  # someone else's noise only
    canceller = EchoCanceller(played)
    for frame, at in frames_of(mic):
        out = canceller.cancel(frame, at)
        assert np.array_equal(out, frame)
    assert canceller.locks == 0 and not canceller.converged
