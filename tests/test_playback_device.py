"""DevicePlayer through the real path (sounddevice -> PortAudio -> ALSA -> PulseAudio) into a
virtual "speaker" sink, checked by recording "speaker.monitor": the tone arrives at the right
pitch after resampling to the device rate, `is_playing` covers the reply, and `stop()` cuts it."""

import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.clip import Audio

sys.path.insert(0, str(Path(__file__).parent / "audio"))
from virtual_pulse import PulseUnavailable, VirtualPulse  # noqa: E402

RECORD_RATE = 16000
WINDOW = RECORD_RATE // 20  # 50 ms


@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    try:
        server = VirtualPulse(tmp_path_factory.mktemp("pulse"))
        server.start()
    except PulseUnavailable as exc:
        pytest.skip(str(exc))
    server.activate()
    # A fresh daemon's first recording of a sink is often empty: go through it once.
    from assistant.playback import DevicePlayer

    warm_up = DevicePlayer("pulse")
    recorder = Recorder(server, tmp_path_factory.mktemp("warm-up") / "warm-up.wav")
    warm_up.play(tone(0.5))
    warm_up.wait(timeout=10)
    recorder.finish()
    yield server
    server.deactivate()
    server.stop()
    server.cleanup()


class Recorder:
    """Records what reaches the speaker (its monitor source) with parecord."""

    def __init__(self, pulse: VirtualPulse, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["parecord", "--device=speaker.monitor", f"--rate={RECORD_RATE}", "--channels=1", "--format=s16le",
             "--file-format=wav", "--latency-msec=20", str(path)],
            env=pulse.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        # The reply must not start before parecord is connected (slow on a busy machine).
        deadline = time.monotonic() + 10
        while f"{RECORD_RATE}Hz" not in pulse.pactl("list", "short", "source-outputs").stdout:
            assert time.monotonic() < deadline and self.proc.poll() is None, "parecord did not connect"
            time.sleep(0.05)
        time.sleep(0.2)
        self.started = time.monotonic()

    def finish(self) -> tuple[np.ndarray, bool]:
        """The recording, and whether it is complete: PulseAudio's null-sink monitor sometimes
        delivers nothing for a second or more (seen with paplay too), and such a recording
        says nothing about the player."""
        time.sleep(0.5)  # the monitor lags the sink a little
        elapsed = time.monotonic() - self.started
        self.proc.terminate()
        self.proc.wait(timeout=5)
        with wave.open(str(self.path)) as wav:
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return samples, len(samples) / RECORD_RATE >= elapsed - 0.3


def record(pulse: VirtualPulse, tmp_path: Path, scenario) -> np.ndarray:
    """Run `scenario()` while recording the speaker; again (up to 3 times) when the recording
    itself was incomplete."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        recorder = Recorder(pulse, tmp_path / f"speaker-{attempt}.wav")
        scenario()
        samples, complete = recorder.finish()
        if complete:
            return samples
    pytest.fail("PulseAudio's monitor recorded incompletely three times")


def loud_windows(samples: np.ndarray) -> list[bool]:
    levels = [np.sqrt(np.mean(samples[i:i + WINDOW] ** 2)) for i in range(0, len(samples) - WINDOW, WINDOW)]
    return [bool(level > 0.05) for level in levels]


def loud_seconds(samples: np.ndarray) -> float:
    return sum(loud_windows(samples)) * WINDOW / RECORD_RATE


def tone(seconds: float, rate: int = 22050, freq: float = 440.0) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio(0.5 * np.sin(2 * np.pi * freq * t), rate)


@pytest.fixture
def player(pulse):
    from assistant.playback import DevicePlayer

    player = DevicePlayer("pulse")
    yield player
    player.stop()


def test_a_reply_reaches_the_speaker_at_the_right_pitch(pulse, player, tmp_path) -> None:
    assert player.sample_rate != 22050, "the test must exercise resampling to the device rate"

    def scenario() -> None:
        player.play(tone(0.8))
        assert player.is_playing
        assert player.wait(timeout=5)
        assert not player.is_playing and player.error is None

    heard = record(pulse, tmp_path, scenario)
    assert 0.6 <= loud_seconds(heard) <= 1.0
    start = int(np.argmax(np.abs(heard) > 0.05)) + WINDOW
    segment = heard[start:start + RECORD_RATE // 2]  # 0.5 s inside the tone: 2 Hz resolution
    peak_hz = np.argmax(np.abs(np.fft.rfft(segment))) * RECORD_RATE / len(segment)
    assert peak_hz == pytest.approx(440, abs=4)


def test_streamed_chunks_play_back_to_back(pulse, player, tmp_path) -> None:
    def scenario() -> None:
        for _ in range(3):
            player.play(tone(0.3))
        assert player.wait(timeout=5)

    windows = loud_windows(record(pulse, tmp_path, scenario))
    first, last = windows.index(True), len(windows) - 1 - windows[::-1].index(True)
    assert all(windows[first:last + 1]), "no silent gap between the chunks"
    assert 0.6 <= (last - first + 1) * WINDOW / RECORD_RATE <= 1.05


def test_stop_cuts_a_reply_short(pulse, player, tmp_path) -> None:
    def scenario() -> None:
        player.play(tone(4.0))
        player.play(tone(2.0))  # queued behind it: stop() drops it too
        time.sleep(0.8)
        assert player.is_playing
        player.stop()
        assert not player.is_playing

    heard = loud_seconds(record(pulse, tmp_path, scenario))
    assert 0.3 <= heard <= 1.6, f"{heard:.2f} s of a 6 s reply reached the speaker"


def test_the_player_plays_again_after_stop(pulse, player, tmp_path) -> None:
    player.play(tone(2.0))
    player.stop()

    def scenario() -> None:
        player.play(tone(0.5))
        assert player.wait(timeout=5)

    assert 0.35 <= loud_seconds(record(pulse, tmp_path, scenario)) <= 0.7


def test_speaker_is_speaking_until_the_reply_has_played(pulse, player, tmp_path) -> None:
    from assistant.tts.cache import ReplyCache
    from assistant.tts.espeak import EspeakEngine
    from assistant.playback.speaker import Speaker
    from assistant.tts.speech import Speech, SpeechSettings

    speech = Speech(SpeechSettings(engine="espeak", fallback=("espeak",)), factories={"espeak": EspeakEngine},
                    cache=ReplyCache(tmp_path / "replies"))
    speaker = Speaker(speech, player)

    def interrupted() -> None:
        speaker.say("The kitchen light is on. The timer is set for ten minutes.")
        assert speaker.is_speaking
        time.sleep(0.5)
        assert speaker.is_speaking
        speaker.stop()
        assert not speaker.is_speaking

    assert 0.05 <= loud_seconds(record(pulse, tmp_path, interrupted)) < 1.0

    def whole() -> None:
        speaker.say("Okay.")
        assert speaker.wait(timeout=10)
        deadline = time.monotonic() + 5
        while speaker.is_speaking and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not speaker.is_speaking

    assert loud_seconds(record(pulse, tmp_path / "whole", whole)) > 0.2


def test_say_without_out_plays_on_the_default_device(pulse, tmp_path, monkeypatch) -> None:
    from assistant.cli import main

    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    codes = []
    heard = record(pulse, tmp_path, lambda: codes.append(main(["say", "The kitchen light is on.", "--engine", "espeak"])))
    assert codes and set(codes) == {0}
    assert loud_seconds(heard) > 0.5


def test_a_device_that_goes_away_mid_reply_is_reported_and_unmutes(pulse, tmp_path_factory, caplog) -> None:
    """The sound server dies while a reply plays: the player reports it and stops "playing"
    (else the listen loop would stay muted for good), instead of hanging or dying silently."""
    from assistant.playback import DevicePlayer

    doomed = VirtualPulse(tmp_path_factory.mktemp("doomed"))
    doomed.start()
    doomed.activate()
    try:
        player = DevicePlayer("pulse")
        player.play(tone(5.0))
        time.sleep(0.5)
        assert player.is_playing
        doomed.stop()
        assert player.wait(timeout=10), "the player must not stay playing on a dead device"
        assert not player.is_playing
        assert player.error is not None and "playback on output device" in caplog.text
    finally:
        doomed.deactivate()
        doomed.stop()
        doomed.cleanup()


GAP_WINDOW = RECORD_RATE // 200  # 5 ms


def gaps_over_20ms(samples: np.ndarray) -> list[float]:
    """Silent stretches longer than 20 ms between the first and the last sound, in seconds."""
    levels = [np.sqrt(np.mean(samples[i:i + GAP_WINDOW] ** 2)) for i in range(0, len(samples) - GAP_WINDOW, GAP_WINDOW)]
    loud = [level > 0.05 for level in levels]
    first, last = loud.index(True), len(loud) - 1 - loud[::-1].index(True)
    gaps, run = [], 0
    for flag in loud[first:last + 1]:
        if flag:
            if run * GAP_WINDOW / RECORD_RATE > 0.02:
                gaps.append(run * GAP_WINDOW / RECORD_RATE)
            run = 0
        else:
            run += 1
    return gaps


class SlowToneSpeech:
    """A deliberately slow engine: 8 chunks of 0.25 s tone, each made in 0.3 s (RTF 1.2)."""

    CHUNKS, CHUNK_SECONDS, MAKE_SECONDS = 8, 0.25, 0.3
    TEXT = "x" * 28  # 2 s at the 14 characters a second the speaker assumes

    class stats:
        last_engine = "slow"

    def stream(self, text, voice=None, engine=None, live=False):
        for _ in range(self.CHUNKS):
            time.sleep(self.MAKE_SECONDS)
            yield tone(self.CHUNK_SECONDS)


def test_a_reply_made_slower_than_real_time_plays_without_gaps(pulse, player, tmp_path) -> None:
    from assistant.playback.speaker import Speaker

    speaker = Speaker(SlowToneSpeech(), player)

    def scenario() -> None:
        speaker.say(SlowToneSpeech.TEXT)
        assert speaker.wait(timeout=10)
        assert player.wait(timeout=10)

    heard = record(pulse, tmp_path, scenario)
    assert gaps_over_20ms(heard) == []
    assert player.stats.underruns == 0 and player.stats.replies >= 1
    assert 1.8 <= loud_seconds(heard) <= 2.2
    # the buffer covered the production deficit: (2 s - 0.25 s) x (1.2 - 1) + margin ~ 0.5 s
    assert 0.35 <= player.stats.prebuffer_waits[-1] <= 1.2
    assert speaker.rates.get("slow") == pytest.approx(1.2, abs=0.15)
    speaker.close()


def test_without_a_jitter_buffer_the_same_reply_has_gaps_and_they_are_counted(pulse, player, tmp_path) -> None:
    slow = SlowToneSpeech()

    def scenario() -> None:
        player.begin_reply(0.0)  # play each chunk as soon as it is made
        for chunk in slow.stream(slow.TEXT):
            player.play(chunk)
        player.end_reply()
        assert player.wait(timeout=10)

    heard = record(pulse, tmp_path, scenario)
    assert len(gaps_over_20ms(heard)) >= 4
    assert player.stats.underruns >= 4


def test_stop_cuts_a_framed_reply_that_waits_for_its_next_chunk(pulse, player, tmp_path) -> None:
    def scenario() -> None:
        player.begin_reply(0.0)
        player.play(tone(3.0))  # then no more chunks and no end: a reply still being made
        time.sleep(0.6)
        started = time.monotonic()
        player.stop()
        assert time.monotonic() - started < 1.0 and not player.is_playing

    heard = loud_seconds(record(pulse, tmp_path, scenario))
    assert 0.2 <= heard <= 1.4, f"{heard:.2f} s of a 3 s chunk reached the speaker"
