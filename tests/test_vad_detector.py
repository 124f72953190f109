"""webrtcvad + segmenter on the committed Piper speech (tests/audio, see manifest.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import FRAME_BYTES, SAMPLE_RATE, WavFileSource, pcm16_to_float
from assistant.vad import SegmenterSettings, SpeechSegment, VadSegmenter, segment_key

AUDIO = Path(__file__).parent / "audio"
MANIFEST = json.loads((AUDIO / "manifest.json").read_text())
COMMAND_FILES = sorted(name for name, entry in MANIFEST["files"].items() if entry["kind"] == "command")


def segments(name: str, settings: SegmenterSettings = SegmenterSettings(), muted=lambda i: False) -> list[SpeechSegment]:
    vs = VadSegmenter(settings)
    found = []
    for i, frame in enumerate(WavFileSource(AUDIO / name).frames()):
        seg = vs.feed(frame, muted=muted(i))
        if seg is not None:
            found.append(seg)
    last = vs.flush()
    return found + ([last] if last else [])


def file_samples(name: str) -> np.ndarray:
    return pcm16_to_float(b"".join(WavFileSource(AUDIO / name).frames()))


@pytest.mark.parametrize("name", COMMAND_FILES)
def test_each_spoken_command_is_one_segment_closed_by_silence(name):
    found = segments(name)
    assert len(found) == 1, [(s.start, s.end) for s in found]
    seg = found[0]
    entry = MANIFEST["files"][name]
    assert seg.reason == "silence"
    assert abs(seg.start - 0.5) <= 0.1  # every file has 0.5 s of silence before the speech ...
    assert abs(seg.end - (entry["seconds"] - 1.2)) <= 0.15  # ... and 1.2 s after it (tests/audio/generate.py)
    assert seg.ended_at == pytest.approx(seg.end + 0.72, abs=1e-9)  # 24 frames of silence


def test_one_word_stop_registers():
    (seg,) = segments("stop.wav")
    assert 0.3 <= seg.duration <= 0.6


def test_a_brief_pause_mid_command_does_not_cut_it():
    (seg,) = segments("pause_mid_command.wav")
    assert seg.duration > 1.5  # both halves: "set a timer for" ... "five minutes"


def test_silence_and_noise_produce_nothing():
    assert segments("silence.wav") == []
    assert segments("noise.wav") == []


def test_aggressiveness_decides_whether_noise_is_speech():
    """Mode 1 hears -30 dBFS white noise as one long speech (cut at max_seconds); 3 does not."""
    lenient = segments("noise.wav", SegmenterSettings(aggressiveness=1, max_seconds=2.0))
    assert [s.reason for s in lenient][:1] == ["max_length"]
    assert segments("noise.wav", SegmenterSettings(aggressiveness=3, max_seconds=2.0)) == []


def test_speech_seconds_guards_against_the_vad_warm_up_burst():
    """webrtcvad calls the first ~120 ms of noise speech; a 60 ms start threshold falls for it."""
    assert len(segments("noise.wav", SegmenterSettings(speech_seconds=0.06))) >= 1
    assert segments("noise.wav") == []


def test_long_file_yields_every_spoken_part_in_order():
    entry = MANIFEST["files"]["long_mixed.wav"]
    found = segments("long_mixed.wav")
    assert len(found) == len(entry["segments"])
    for seg, expected in zip(found, entry["segments"]):
        assert abs(seg.start - expected["start"]) <= 0.15, (seg, expected)
        assert abs(seg.end - expected["end"]) <= 0.2, (seg, expected)


def test_segment_audio_is_the_stream_from_preroll_to_postroll():
    settings = SegmenterSettings(preroll_seconds=0.3, postroll_seconds=0.12)
    (seg,) = segments("what_time.wav", settings)
    samples = file_samples("what_time.wav")
    first = int(round((seg.start - 0.3) * SAMPLE_RATE))
    last = int(round((seg.end + 0.12) * SAMPLE_RATE))
    assert seg.audio.dtype == np.float32
    np.testing.assert_array_equal(seg.audio, samples[first:last])


def test_preroll_is_clipped_at_the_start_of_the_stream():
    (seg,) = segments("stop.wav", SegmenterSettings(preroll_seconds=2.0, postroll_seconds=0.0))
    samples = file_samples("stop.wav")
    np.testing.assert_array_equal(seg.audio, samples[: int(round(seg.end * SAMPLE_RATE))])


def test_max_length_cut_keeps_all_audio_up_to_the_cut():
    found = segments("long_mixed.wav", SegmenterSettings(max_seconds=1.5))
    cut = [s for s in found if s.reason == "max_length"]
    assert cut, "the 3.6 s weather sentence must be cut at 1.5 s"
    assert cut[0].duration == pytest.approx(1.5, abs=0.031)


def test_muted_frames_are_ignored_and_kept_out_of_the_preroll():
    # The whole command spoken while the assistant talks: nothing.
    assert segments("stop.wav", muted=lambda i: True) == []
    # Muted up to 0.45 s (just before the speech at 0.5 s), default 0.3 s tail: the start of
    # "stop" falls in the tail, so the segment starts late and its pre-roll holds no muted audio.
    (seg,) = segments("what_time.wav", SegmenterSettings(preroll_seconds=0.3), muted=lambda i: i < 15)
    assert seg.start >= 0.75
    samples = file_samples("what_time.wav")
    muted_and_tail = int(round(0.75 * SAMPLE_RATE))
    preroll_start = int(round((seg.start - 0.3) * SAMPLE_RATE))
    assert not np.any(seg.audio[: muted_and_tail - preroll_start])
    assert np.array_equal(seg.audio[muted_and_tail - preroll_start :][:1000], samples[muted_and_tail : muted_and_tail + 1000])


def test_stream_time_counts_frames():
    vs = VadSegmenter()
    for _ in range(100):
        vs.feed(bytes(FRAME_BYTES))
    assert vs.stream_seconds == pytest.approx(3.0)
    assert not vs.in_speech


def test_a_frame_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="960 bytes"):
        VadSegmenter().feed(bytes(100))


def test_the_pause_hears_what_the_long_window_would_cut():
    """At the first pause the command so far comes out with the same key and audio as the
    segment the long window closes when nothing followed: its recognition can be reused."""
    vs = VadSegmenter(SegmenterSettings())
    pauses, ends = [], []
    for frame in WavFileSource(AUDIO / "turn_on_kitchen_lights.wav").frames():
        out = vs.feed(frame)
        if vs.paused is not None:
            pauses.append(vs.paused)
        if out is not None:
            ends.append(out)
    (segment,) = ends
    assert pauses and pauses[-1].key == segment_key(segment)
    assert np.array_equal(pauses[-1].audio, segment.audio)
    assert pauses[-1].paused_at < segment.ended_at


def test_complete_closes_the_command_at_its_pause():
    vs = VadSegmenter(SegmenterSettings())
    for frame in WavFileSource(AUDIO / "turn_on_kitchen_lights.wav").frames():
        vs.feed(frame)
        out = vs.paused
        if out is not None:
            segment = vs.complete(out)
            assert segment is not None and segment.reason == "complete"
            assert segment_key(segment) == out.key and np.array_equal(segment.audio, out.audio)
            break
    else:
        raise AssertionError("no pause in a spoken command")
    assert not vs.in_speech and vs.complete(out) is None
