"""The real capture path, no mocks: a private PulseAudio daemon with virtual devices, committed
speech played into its "room" sink with paplay, MicrophoneSource recording "mic" through
sounddevice -> PortAudio -> ALSA -> PulseAudio, and the microphone pulled away mid-stream."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import MicrophoneSource, list_input_devices, open_source, read_wav
from assistant.audio.microphone import AudioDeviceError, resolve_input_device
from assistant.vad import SpeechSegment, VadSegmenter

AUDIO = Path(__file__).parent / "audio"
sys.path.insert(0, str(AUDIO))
from virtual_pulse import PulseUnavailable, VirtualPulse  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def _virtual_pulse(workdir: Path):
    try:
        vp = VirtualPulse(workdir)
        vp.start()
    except PulseUnavailable as exc:
        pytest.skip(f"PulseAudio unavailable: {exc}")
    vp.activate()
    yield vp
    vp.stop()
    vp.deactivate()
    vp.cleanup()


@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    """One daemon for the tests that leave it as they found it (its first stream is slow)."""
    yield from _virtual_pulse(tmp_path_factory.mktemp("pulse"))


@pytest.fixture
def own_pulse(tmp_path):
    """A daemon of the test's own, for a test that stops and restarts it."""
    yield from _virtual_pulse(tmp_path)


class Recorder(threading.Thread):
    """Drains a source like the listen loop does: every frame into the VAD segmenter."""

    def __init__(self, source: MicrophoneSource) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.segmenter = VadSegmenter()
        self.segments: list[SpeechSegment] = []
        self.frames = 0
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            for frame in self.source.frames():
                self.frames += 1
                segment = self.segmenter.feed(frame)
                if segment is not None:
                    self.segments.append(segment)
        except BaseException as exc:  # the test fails on it below
            self.error = exc

    def wait_for(self, count: int, timeout: float = 15.0) -> list[SpeechSegment]:
        deadline = time.monotonic() + timeout
        while len(self.segments) < count and time.monotonic() < deadline and self.error is None:
            time.sleep(0.05)
        assert self.error is None, self.error
        assert len(self.segments) >= count, f"heard {len(self.segments)} segments, wanted {count} ({self.frames} frames)"
        return self.segments[:count]

    def wait_frames(self, more: int, timeout: float = 10.0) -> None:
        target = self.frames + more
        deadline = time.monotonic() + timeout
        while self.frames < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.frames >= target, f"frames stopped at {self.frames}"

    def stop(self) -> None:
        self.source.close()
        self.join(timeout=10)
        assert not self.is_alive(), "frames() did not end after close()"
        assert self.error is None, self.error


def similarity(heard: np.ndarray, name: str) -> float:
    """Peak normalised cross-correlation of the heard audio with the file's speech."""
    played, _ = read_wav(AUDIO / name)
    played = played[np.flatnonzero(np.abs(played) > 0.01)[0] :]
    n = len(heard) + len(played)
    corr = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(played, n)), n)
    return float(np.max(np.abs(corr)) / (np.linalg.norm(heard) * np.linalg.norm(played) + 1e-9))


def play(pulse: VirtualPulse, name: str) -> None:
    proc = pulse.play(AUDIO / name)
    assert proc.wait(timeout=20) == 0, proc.stderr.read()


def test_devices_are_listed_and_found_by_name_or_index(pulse):
    devices = list_input_devices()
    names = [d["name"] for d in devices]
    assert "pulse" in names
    assert sum(d["default"] for d in devices) == 1
    pulse_index = names.index("pulse")
    assert resolve_input_device("PULS") == devices[pulse_index]["index"]
    assert resolve_input_device(str(devices[pulse_index]["index"])) == devices[pulse_index]["index"]
    assert resolve_input_device(None) == next(d["index"] for d in devices if d["default"])
    with pytest.raises(AudioDeviceError, match="no input device matching 'usb headset'.*pulse"):
        resolve_input_device("usb headset")
    with pytest.raises(AudioDeviceError, match="no input device with index 999"):
        MicrophoneSource(999)
    microphone = open_source(None, "pulse")
    assert isinstance(microphone, MicrophoneSource) and microphone.device_name == "pulse"
    microphone.close()


def test_microphone_hears_a_one_word_command_played_into_the_room(pulse):
    source = MicrophoneSource()  # the default device (ALSA default -> PulseAudio -> "mic")
    assert source.realtime and source.state == "open" and source.samplerate == 16000
    recorder = Recorder(source)
    recorder.wait_frames(10)
    play(pulse, "stop.wav")
    (segment,) = recorder.wait_for(1)
    assert 0.25 <= segment.duration <= 0.7
    assert similarity(segment.audio, "stop.wav") > 0.6
    recorder.stop()
    assert source.state == "closed"


def test_a_stereo_device_at_another_rate_is_mixed_down_and_resampled(pulse):
    source = MicrophoneSource("pulse", samplerate=44100, channels=2)
    assert source.samplerate == 44100
    recorder = Recorder(source)
    recorder.wait_frames(10)
    play(pulse, "what_time.wav")
    (segment,) = recorder.wait_for(1)
    assert 0.6 <= segment.duration <= 1.1
    assert similarity(segment.audio, "what_time.wav") > 0.6
    recorder.stop()


def test_microphone_unplugged_mid_stream_and_plugged_back_hears_the_next_command(pulse):
    source = MicrophoneSource("pulse", stall_seconds=0.5, backoff_seconds=0.1)
    recorder = Recorder(source)
    recorder.wait_frames(10)
    play(pulse, "turn_on_kitchen_lights.wav")
    recorder.wait_for(1)

    pulse.unplug_mic()
    assert "mic" not in pulse.sources()
    time.sleep(2.0)
    assert recorder.is_alive() and recorder.error is None
    pulse.plug_mic()
    deadline = time.monotonic() + 15
    while source.state != "open" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert source.state == "open"
    recorder.wait_frames(20)  # audio flows again
    play(pulse, "add_milk.wav")
    first, second = recorder.wait_for(2)
    assert similarity(second.audio, "add_milk.wav") > 0.6
    assert similarity(second.audio, "add_milk.wav") > similarity(second.audio, "turn_on_kitchen_lights.wav")
    recorder.stop()


def test_sound_server_gone_the_stream_is_reopened_with_backoff(own_pulse, caplog):
    caplog.set_level(logging.INFO, logger="assistant.audio.microphone")
    pulse = own_pulse
    source = MicrophoneSource("pulse", stall_seconds=1.0, backoff_seconds=0.1, max_backoff_seconds=0.4)
    recorder = Recorder(source)
    recorder.wait_frames(10)

    pulse.stop()  # PortAudio's stream dies, and reopening fails until the server is back
    deadline = time.monotonic() + 10
    while source.state != "reopening" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert source.state == "reopening"
    time.sleep(1.5)  # several failed attempts
    assert recorder.is_alive() and recorder.error is None and source.reopen_count == 0

    pulse.start()
    deadline = time.monotonic() + 15
    while source.state != "open" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert source.state == "open" and source.reopen_count == 1
    recorder.wait_frames(20)
    play(pulse, "cancel_timer.wav")
    (segment,) = recorder.wait_for(1)
    assert similarity(segment.audio, "cancel_timer.wav") > 0.6
    recorder.stop()
    assert "microphone pulse lost" in caplog.text and "microphone reopened" in caplog.text


def test_a_listener_that_falls_behind_loses_the_oldest_audio_not_the_stream(pulse, caplog):
    source = MicrophoneSource("pulse", max_queue_seconds=0.3)
    time.sleep(1.0)  # nobody reads: the 0.3 s queue overflows
    frames = source.frames()
    first = [next(frames) for _ in range(5)]
    assert source.dropped_blocks > 10 and all(len(f) == 960 for f in first)
    assert "fell behind" in caplog.text
    source.close()
    assert list(frames) == []


def test_audio_from_before_listening_started_is_not_answered(pulse):
    source = MicrophoneSource("pulse")
    play(pulse, "stop.wav")  # spoken while, say, Whisper was still loading
    recorder = Recorder(source)
    recorder.wait_frames(80)  # more than the queued "stop" would take to close a segment
    assert recorder.segments == []
    play(pulse, "what_time.wav")
    (segment,) = recorder.wait_for(1)
    assert similarity(segment.audio, "what_time.wav") > 0.6
    recorder.stop()


def test_close_from_another_thread_ends_frames_promptly(pulse):
    source = MicrophoneSource("pulse")
    recorder = Recorder(source)
    recorder.wait_frames(5)
    started = time.monotonic()
    recorder.stop()
    assert time.monotonic() - started < 2.0
