"""WAV reading in every common layout, resampling, framing, and clear errors for bad files."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import (
    FRAME_BYTES,
    SAMPLE_RATE,
    AudioFormatError,
    AudioSource,
    StdinSource,
    WavFileSource,
    decode_wav,
    open_source,
    float_to_pcm16,
    pcm16_to_float,
    read_wav,
    resample,
    write_wav,
)

AUDIO = Path(__file__).parent / "audio"


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float64)


def riff(fmt_body: bytes, data: bytes, data_size: int | None = None, extra_chunk: bool = False) -> bytes:
    """A WAV file written independently of the code under test."""
    chunks = struct.pack("<4sI", b"fmt ", len(fmt_body)) + fmt_body
    if extra_chunk:
        chunks += struct.pack("<4sI", b"LIST", 3) + b"abc\x00"  # odd size: padded
    chunks += struct.pack("<4sI", b"data", len(data) if data_size is None else data_size) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def encode(x: np.ndarray, channels: int, rate: int, kind: str, extensible: bool = False) -> bytes:
    """x: (n, channels) floats -> a WAV of the given sample kind."""
    flat = x.reshape(-1)
    if kind == "u8":
        data, bits, tag = np.round(flat * 127 + 128).astype(np.uint8).tobytes(), 8, 1
    elif kind == "s16":
        data, bits, tag = np.round(flat * 32767).astype("<i2").tobytes(), 16, 1
    elif kind == "s24":
        ints = np.round(flat * 8388607).astype("<i4")
        data = b"".join(struct.pack("<i", int(v))[:3] for v in ints)
        bits, tag = 24, 1
    elif kind == "s32":
        data, bits, tag = np.round(flat * 2147483647).astype("<i4").tobytes(), 32, 1
    elif kind == "f32":
        data, bits, tag = flat.astype("<f4").tobytes(), 32, 3
    else:
        data, bits, tag = flat.astype("<f8").tobytes(), 64, 3
    align = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    return riff(fmt, data, extra_chunk=True)


@pytest.mark.parametrize("kind,tolerance", [("u8", 1 / 100), ("s16", 1e-4), ("s24", 1e-6), ("s32", 1e-6), ("f32", 1e-7), ("f64", 1e-7)])
@pytest.mark.parametrize("extensible", [False, True])
def test_read_wav_decodes_every_sample_format(tmp_path, kind, tolerance, extensible):
    x = tone(440, 8000, 0.1).reshape(-1, 1)
    path = tmp_path / f"{kind}.wav"
    path.write_bytes(encode(x, 1, 8000, kind, extensible))
    samples, rate = read_wav(path)
    assert rate == 8000 and samples.dtype == np.float32
    np.testing.assert_allclose(samples, x[:, 0], atol=tolerance)


def test_read_wav_averages_channels(tmp_path):
    left, right = tone(440, 16000, 0.1), tone(440, 16000, 0.1, amp=0.1)
    path = tmp_path / "stereo.wav"
    path.write_bytes(encode(np.stack([left, right], axis=1), 2, 16000, "s16"))
    samples, _ = read_wav(path)
    np.testing.assert_allclose(samples, (left + right) / 2, atol=1e-4)


def test_wav_file_source_resamples_and_downmixes_to_16k_mono(tmp_path):
    x = tone(1000, 44100, 1.0)
    path = tmp_path / "cd.wav"
    path.write_bytes(encode(np.stack([x, x], axis=1), 2, 44100, "f32"))
    source = WavFileSource(path)
    assert isinstance(source, AudioSource) and not source.realtime and source.state == "open"
    frames = list(source.frames())
    assert source.state == "closed"
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert len(frames) == 34  # 1 s = 33.3 frames, the last padded
    audio = pcm16_to_float(b"".join(frames))[:SAMPLE_RATE]
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=2)  # 1 Hz bins: the tone kept its pitch
    assert np.sqrt(np.mean(audio[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_committed_speech_is_16k_mono_16_bit():
    paths = sorted(AUDIO.glob("*.wav"))
    assert len(paths) == len(json.loads((AUDIO / "manifest.json").read_text())["files"]) >= 12
    for path in paths:
        data = path.read_bytes()
        tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, 20)
        assert (tag, channels, rate, bits) == (1, 1, 16000, 16), path


def test_write_then_read_round_trips(tmp_path):
    x = tone(300, 16000, 0.2).astype(np.float32)
    write_wav(tmp_path / "x.wav", x, 16000)
    samples, rate = read_wav(tmp_path / "x.wav")
    assert rate == 16000
    np.testing.assert_allclose(samples, x, atol=1 / 32768)


def test_a_truncated_recording_is_read_as_far_as_it_goes(tmp_path, caplog):
    x = tone(440, 16000, 0.1).reshape(-1, 1)
    blob = encode(x, 1, 16000, "s16")
    path = tmp_path / "cut.wav"
    path.write_bytes(blob[: len(blob) - 1001])  # cut mid-sample, 500 samples short
    samples, _ = read_wav(path)
    assert len(samples) == 1600 - 501
    assert "only" in caplog.text and "cut.wav" in caplog.text


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "not a WAV file"),
        (b"ID3\x03\x00\x00\x00" + bytes(100), "not a WAV file"),  # an MP3
        (b"hello, this is text\n" * 5, "not a WAV file"),
        (b"RIFF\x10\x00\x00\x00WAVE", "no fmt chunk"),
        (riff(struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16), b"")[:36], "no data chunk"),
        (riff(struct.pack("<HHIIHH", 0x55, 1, 16000, 32000, 2, 16), b"\x00\x00"), "unsupported WAV encoding 0x0055"),
        (riff(struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 12), b"\x00\x00"), "12-bit"),
        (riff(struct.pack("<HHIIHH", 1, 0, 16000, 32000, 2, 16), b"\x00\x00"), "0 channels"),
        (riff(struct.pack("<HHIIHH", 1, 1, 16000, 32000, 3, 16), b"\x00\x00"), "block align"),
        (riff(b"\x01\x00\x01\x00", b"\x00\x00"), "fmt chunk is 4 bytes"),
        (riff(struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32), np.array([np.nan], "<f4").tobytes()), "NaN"),
    ],
)
def test_bad_files_raise_an_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad input.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFormatError, match=message) as info:
        WavFileSource(path)
    assert str(info.value).startswith(str(path))


def test_wav_bytes_in_memory_decode_like_a_file(tmp_path):
    x = tone(440, 8000, 0.1).reshape(-1, 1)
    samples, rate = decode_wav(encode(x, 1, 8000, "s24"), "upload")
    assert rate == 8000
    np.testing.assert_allclose(samples, x[:, 0], atol=1e-6)
    with pytest.raises(AudioFormatError, match="^upload: not a WAV file"):
        decode_wav(b"{}", "upload")


def test_a_missing_file_is_a_format_error_naming_it(tmp_path):
    with pytest.raises(AudioFormatError, match="missing.wav: cannot read"):
        read_wav(tmp_path / "missing.wav")


def test_resample_keeps_pitch_and_length():
    x = tone(440, 22050, 1.0).astype(np.float32)
    y = resample(x, 22050, 16000)
    assert y.dtype == np.float32 and len(y) == 16000
    assert np.argmax(np.abs(np.fft.rfft(y))) == pytest.approx(440, abs=1)
    same = resample(x, 16000, 16000)
    assert same is not x and np.array_equal(same, x)
    with pytest.raises(ValueError):
        resample(x, 0, 16000)


def test_pcm_conversion_clips_instead_of_wrapping():
    pcm = float_to_pcm16(np.array([0.0, 0.5, 1.5, -2.0], dtype=np.float32))
    assert np.frombuffer(pcm, "<i2").tolist() == [0, 16384, 32767, -32768]
    assert pcm16_to_float(pcm)[1] == 0.5


def test_stdin_source_frames_raw_pcm_and_pads_the_end():
    pcm = float_to_pcm16(tone(200, 16000, 0.1))  # 1600 samples = 3.33 frames
    source = StdinSource(io.BytesIO(pcm))
    assert not source.realtime
    frames = list(source.frames())
    assert [len(f) for f in frames] == [FRAME_BYTES] * 4
    assert b"".join(frames)[: len(pcm)] == pcm and not any(b"".join(frames)[len(pcm) :])
    assert source.state == "closed"


class Trickle(io.RawIOBase):
    """A pipe that hands out a few bytes per read, like a slow recorder."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        chunk, self.data = self.data[: min(n, self.step)], self.data[min(n, self.step) :]
        return chunk


def test_stdin_source_assembles_frames_from_short_reads():
    pcm = float_to_pcm16(tone(200, 16000, 0.09))  # exactly 3 frames
    frames = list(StdinSource(Trickle(pcm + b"\x01", 77), realtime=True).frames())
    assert b"".join(frames) == pcm  # the dangling odd byte is dropped, nothing else lost


def test_close_stops_a_source_early():
    source = WavFileSource(AUDIO / "long_mixed.wav")
    it = source.frames()
    next(it)
    source.close()
    assert list(it) == [] and source.state == "closed"


def test_open_source_picks_file_or_stdin_from_the_input_argument(monkeypatch):
    wav = open_source(str(AUDIO / "stop.wav"))
    assert isinstance(wav, WavFileSource) and wav.duration > 1
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(bytes(FRAME_BYTES))))
    stdin = open_source("-")
    assert isinstance(stdin, StdinSource) and list(stdin.frames()) == [bytes(FRAME_BYTES)]
    with pytest.raises(AudioFormatError, match="nope.wav"):
        open_source("nope.wav")
