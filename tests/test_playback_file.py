"""FileSink: the Player behind `assistant say --out` and the tests."""

import struct

import numpy as np
import pytest

from assistant.playback import FileSink, Player
from assistant.playback import file as file_module
from assistant.audio.clip import Audio


def test_file_sink_writes_what_it_plays(tmp_path) -> None:
    sink = FileSink(tmp_path / "sub" / "reply.wav")
    assert isinstance(sink, Player) and not sink.is_playing
    sink.play(Audio(np.full(2205, 0.25, dtype=np.float32), 22050))
    sink.play(Audio(np.full(1600, -0.25, dtype=np.float32), 16000))  # resampled to the first rate
    written = Audio.from_wav_bytes(sink.path.read_bytes())
    assert written.sample_rate == 22050
    assert len(written) == 2205 + 2205
    assert written.samples[1000] == 0.25 and written.samples[3300] == pytest.approx(-0.25, abs=1e-3)
    assert [p.name for p in sink.path.parent.iterdir()] == ["reply.wav"], "no temporary files left behind"


def test_stop_starts_a_new_file(tmp_path) -> None:
    sink = FileSink(tmp_path / "reply.wav")
    sink.play(Audio(np.zeros(100, dtype=np.float32), 8000))
    sink.stop()
    sink.play(Audio(np.zeros(50, dtype=np.float32), 8000))
    assert len(Audio.from_wav_bytes(sink.path.read_bytes())) == 50


def test_chunks_are_appended_in_place_and_the_header_follows(tmp_path) -> None:
    """Each play writes its own samples only (a service speaking into a file for days keeps
    nothing in memory and does not rewrite the file), and after each the file reads whole."""
    sink = FileSink(tmp_path / "reply.wav")
    chunk = Audio(np.full(1000, 0.1, dtype=np.float32), 16000)
    sink.play(chunk)
    first = sink.path.stat()
    for n in range(2, 6):
        sink.play(chunk)
        now = sink.path.stat()
        assert now.st_ino == first.st_ino and now.st_size == first.st_size + (n - 1) * 2000
        data = sink.path.read_bytes()
        assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
        assert len(Audio.from_wav_bytes(data)) == n * 1000
    assert not hasattr(sink, "_played")


def test_a_file_at_the_wav_size_limit_starts_over(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(file_module, "MAX_DATA_BYTES", 3000)
    sink = FileSink(tmp_path / "reply.wav")
    sink.play(Audio(np.zeros(1000, dtype=np.float32), 8000))
    sink.play(Audio(np.zeros(500, dtype=np.float32), 8000))  # 3000 bytes: still fits
    assert len(Audio.from_wav_bytes(sink.path.read_bytes())) == 1500
    sink.play(Audio(np.zeros(10, dtype=np.float32), 8000))
    assert len(Audio.from_wav_bytes(sink.path.read_bytes())) == 10
