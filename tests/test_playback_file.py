"""FileSink: the Player behind `assistant say --out` and the tests."""

import numpy as np
import pytest

from assistant.playback import FileSink, Player
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
