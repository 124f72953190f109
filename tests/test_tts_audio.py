"""The Audio type: WAV round trips, format handling and the errors a corrupt file must raise."""

import io
import wave

import numpy as np
import pytest

from assistant.audio.clip import Audio
from assistant.tts.base import TTSEngine


def sine(seconds: float = 0.25, rate: int = 22050, freq: float = 440.0) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio(0.5 * np.sin(2 * np.pi * freq * t), rate)


def wav_bytes(frames: bytes, channels: int, width: int, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return buffer.getvalue()


def test_samples_become_float32_mono() -> None:
    audio = sine()
    assert audio.samples.dtype == np.float32 and audio.sample_rate == 22050
    assert audio.duration == pytest.approx(0.25, abs=1e-4)
    with pytest.raises(ValueError, match="mono"):
        Audio(np.zeros((10, 2)), 16000)
    with pytest.raises(ValueError, match="sample rate"):
        Audio(np.zeros(10), 0)


def test_wav_round_trip_is_within_half_a_step() -> None:
    audio = sine()
    back = Audio.from_wav_bytes(audio.to_wav_bytes())
    assert back.sample_rate == audio.sample_rate
    assert np.abs(back.samples - audio.samples).max() <= 0.5 / 32768 + 1e-9
    loud = Audio(np.array([1.5, -1.5, 1.0, -1.0], dtype=np.float32), 8000)
    pcm = np.frombuffer(loud.to_wav_bytes()[44:], dtype="<i2")
    assert list(pcm) == [32767, -32768, 32767, -32768]


def test_stereo_and_8_bit_wavs_are_read_as_mono() -> None:
    stereo = np.array([[16384, -16384], [8192, 8192]], dtype="<i2").tobytes()
    assert list(Audio.from_wav_bytes(wav_bytes(stereo, 2, 2)).samples) == [0.0, 0.25]
    assert list(Audio.from_wav_bytes(wav_bytes(bytes([128, 192]), 1, 1)).samples) == [0.0, 0.5]


@pytest.mark.parametrize("data", [b"", b"RIFF", b"hello world" * 10])
def test_unreadable_wav_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        Audio.from_wav_bytes(data)


def test_truncated_wav_raises_value_error() -> None:
    data = sine().to_wav_bytes()
    with pytest.raises(ValueError, match="truncated"):
        Audio.from_wav_bytes(data[: len(data) - 101])


def test_concat_and_resample() -> None:
    a, b = sine(0.1), sine(0.2)
    joined = Audio.concat([a, b])
    assert len(joined) == len(a) + len(b)
    with pytest.raises(ValueError, match="sample rates"):
        Audio.concat([a, sine(0.1, rate=16000)])
    with pytest.raises(ValueError):
        Audio.concat([])
    down = sine(1.0).resampled(16000)
    assert down.sample_rate == 16000 and len(down) == 16000
    spectrum = np.abs(np.fft.rfft(down.samples))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s of audio: bin index = Hz
    assert Audio.silence(0.5, 8000).rms() == 0.0


def test_engines_satisfy_the_protocol() -> None:
    from assistant.tts.espeak import EspeakEngine

    assert isinstance(EspeakEngine(), TTSEngine)
