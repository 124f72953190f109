"""Sizing the jitter buffer: enough audio buffered that a reply made slower than real time never
runs dry, nothing but the margin for an engine faster than real time, and the measured rates."""

import math

import pytest

from assistant.playback.jitter import JitterSettings, RateMeter, expected_seconds, prebuffer_seconds

MARGIN = JitterSettings().margin_seconds


def test_a_fast_engine_gets_only_the_margin() -> None:
    assert prebuffer_seconds(0.13, expected=3.0, first_chunk=1.0) == pytest.approx(MARGIN)
    assert prebuffer_seconds(1.0, expected=3.0, first_chunk=1.0) == pytest.approx(MARGIN)


def test_a_slow_engine_buffers_the_deficit_of_the_rest_of_the_reply() -> None:
    # Tortoise on a CPU: RTF 1.9, 6 s reply, first chunk 0.9 s: 5.1 s more take 9.7 s to make
    assert prebuffer_seconds(1.9, expected=6.0, first_chunk=0.9) == pytest.approx(5.1 * 0.9 + MARGIN)


def test_the_buffer_never_exceeds_the_reply() -> None:
    assert prebuffer_seconds(10.0, expected=2.0, first_chunk=0.5) == pytest.approx(2.0)
    assert prebuffer_seconds(0.1, expected=0.05, first_chunk=0.05) == pytest.approx(0.05)


def test_buffered_audio_covers_every_chunk_of_a_simulated_slow_reply() -> None:
    """Chunks of 0.5 s made at RTF 1.5: with the buffer each arrives before it is due to play;
    without it, every chunk after the first is late."""
    chunk, rtf, count = 0.5, 1.5, 12
    buffer = prebuffer_seconds(rtf, expected=chunk * count, first_chunk=chunk, settings=JitterSettings(margin_seconds=0))
    arrivals = [rtf * chunk * (k + 1) for k in range(count)]

    def late(start: float) -> int:
        return sum(arrive > start + k * chunk + 1e-9 for k, arrive in enumerate(arrivals))

    filled = arrivals[math.ceil(buffer / chunk - 1e-9) - 1]  # the chunk that fills the buffer
    assert late(filled) == 0
    assert late(arrivals[0]) == count - 1


def test_expected_length_comes_from_the_text() -> None:
    assert expected_seconds("x" * 28) == pytest.approx(2.0)
    assert expected_seconds("  two   words ") == pytest.approx(len("two words") / 14)


def test_rates_are_smoothed_per_engine() -> None:
    meter = RateMeter(JitterSettings(smoothing=0.5))
    assert meter.get("tortoise") is None
    meter.observe("tortoise", 4.0, 2.0)
    meter.observe("tortoise", 1.0, 1.0)
    assert meter.get("tortoise") == pytest.approx(1.5)
    meter.seed("tortoise", 9.0)  # a start-up measurement never overrides what was measured here
    meter.seed("piper", 0.1)
    assert meter.get("tortoise") == pytest.approx(1.5) and meter.get("piper") == pytest.approx(0.1)
    meter.observe(None, 1.0, 1.0)
    meter.observe("espeak", 1.0, 0.0)
    assert meter.get("espeak") is None


def test_bad_settings_are_refused() -> None:
    for bad in ({"margin_seconds": -1}, {"chars_per_second": 0}, {"smoothing": 0}):
        with pytest.raises(ValueError):
            JitterSettings(**bad)
