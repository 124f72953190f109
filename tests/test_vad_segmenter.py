"""The end-of-speech state machine, one setting at a time: frames in as a string
("#" speech, "." silence, "m" muted), events out. Frame = 30 ms."""

from __future__ import annotations

import pytest

from assistant.vad import Segmenter, SegmenterSettings, SpeechEnded, SpeechPaused, SpeechStarted

# Settings in whole frames, so each pattern below reads exactly.
F = 0.03


def frames(n: int) -> float:
    return n * F


def base(**overrides) -> SegmenterSettings:
    values = dict(
        speech_seconds=frames(3), gap_seconds=0.0, silence_seconds=frames(4), blip_seconds=0.0,
        max_seconds=frames(100), min_seconds=0.0, mute_tail_seconds=0.0, pause_seconds=0.0,
    )
    values.update(overrides)
    return SegmenterSettings(**values)


def run(pattern: str, settings: SegmenterSettings, flush: bool = True) -> list:
    seg = Segmenter(settings, frame_seconds=F)
    events = []
    for ch in pattern.replace(" ", ""):
        events += seg.process(ch == "#", muted=ch == "m")
    if flush:
        events += seg.flush()
    return events


def ended(events: list) -> list[tuple[int, int, str]]:
    return [(e.start_frame, e.end_frame, e.reason) for e in events if isinstance(e, SpeechEnded)]


def test_defaults_match_the_home_assistant_like_values():
    s = SegmenterSettings()
    assert (s.aggressiveness, s.speech_seconds, s.silence_seconds, s.preroll_seconds, s.max_seconds, s.min_seconds) == (3, 0.3, 0.7, 0.5, 15.0, 1.0)
    seg = Segmenter(s)
    assert (seg.speech_frames, seg.silence_frames, seg.max_frames, seg.min_frames) == (10, 24, 500, 34)


def test_speech_seconds_is_the_speech_needed_to_start():
    s = base()
    assert run("## ....", s) == []
    events = run("... ### ....", s)
    assert events[0] == SpeechStarted(start_frame=3, detected_frame=5)
    assert ended(events) == [(3, 6, "silence")]
    assert run("..#####....", base(speech_seconds=frames(6))) == []
    assert ended(run("..######....", base(speech_seconds=frames(6)))) == [(2, 8, "silence")]


def test_webrtcvad_warm_up_burst_does_not_start_a_command():
    """webrtcvad calls the first 90-120 ms of noise speech: the default 0.3 s must ignore it."""
    assert run("####" + "." * 60, SegmenterSettings()) == []


def test_gap_seconds_tolerates_short_drops_while_starting():
    # "stop" under mode 3: s, two dropped frames, "top"
    assert run("#..## ....", base(speech_seconds=frames(3))) == []
    events = run("#..## ....", base(speech_seconds=frames(3), gap_seconds=frames(2)))
    assert events[0] == SpeechStarted(start_frame=0, detected_frame=4)
    assert ended(events) == [(0, 5, "silence")]
    # a longer gap restarts the count from the next speech frame
    events = run("#...## ....", base(speech_seconds=frames(3), gap_seconds=frames(2)))
    assert events == []
    events = run("#...### ....", base(speech_seconds=frames(3), gap_seconds=frames(2)))
    assert events[0] == SpeechStarted(start_frame=4, detected_frame=6)


def test_silence_seconds_ends_the_command_exactly():
    s = base(silence_seconds=frames(4))
    assert ended(run("### ...", s, flush=False)) == []
    events = run("### ....", s, flush=False)
    assert ended(events) == [(0, 3, "silence")]
    assert events[-1].closed_frame == 6


def test_silence_seconds_down_to_a_quarter_second():
    seg = Segmenter(base(silence_seconds=0.25), frame_seconds=F)
    assert seg.silence_frames == 9  # 0.27 s: never less than asked
    events = run("#####" + "." * 9, base(silence_seconds=0.25), flush=False)
    assert ended(events) == [(0, 5, "silence")]
    assert ended(run("#####" + "." * 8, base(silence_seconds=0.25), flush=False)) == []


def test_a_pause_shorter_than_the_silence_does_not_cut_the_command():
    s = base(silence_seconds=frames(4))
    assert ended(run("##### ... ##### ....", s)) == [(0, 13, "silence")]
    assert ended(run("##### .... ##### ....", s)) == [(0, 5, "silence"), (9, 14, "silence")]


def test_blip_seconds_keeps_clicks_from_holding_a_command_open():
    # one-frame speech blips every 3 frames: without blip tolerance the command never ends
    noisy_tail = "..#" * 10 + "...."
    assert ended(run("#####" + noisy_tail, base(silence_seconds=frames(4)), flush=False)) == [(0, 35, "silence")]
    events = run("#####" + noisy_tail, base(silence_seconds=frames(4), blip_seconds=frames(1)), flush=False)
    assert ended(events) == [(0, 5, "silence")]
    assert events[-1].closed_frame == 8
    # speech longer than a blip is speech: it resets the silence countdown
    events = run("##### ..## ....", base(silence_seconds=frames(4), blip_seconds=frames(1)))
    assert ended(events) == [(0, 9, "silence")]


def test_max_seconds_cuts_a_command_that_never_stops():
    s = base(max_seconds=frames(10))
    events = run("#" * 25, s)
    assert ended(events) == [(0, 10, "max_length"), (10, 20, "max_length"), (20, 25, "end_of_input")]


def test_min_seconds_keeps_a_command_open_after_an_early_hesitation():
    s = base(silence_seconds=frames(4), min_seconds=frames(12))
    # "turn on ... the lights": the pause after the first word is longer than the silence
    assert ended(run("#### ..... #### ....", s)) == [(0, 13, "silence")]
    assert ended(run("#### ..... #### ....", base(silence_seconds=frames(4)))) == [(0, 4, "silence"), (9, 13, "silence")]


def test_min_seconds_never_drops_a_one_word_command():
    events = run("#### " + "." * 20, base(min_seconds=frames(12), silence_seconds=frames(4)), flush=False)
    assert ended(events) == [(0, 4, "silence")]
    assert events[-1].closed_frame == 11  # held until min_seconds from the start


def test_mute_ignores_speech_while_the_assistant_talks():
    s = base()
    assert run("mmmmmmmmmm ....", s) == []
    # muted frames in the middle of speech end the command by silence
    assert ended(run("##### mmmm ....", s)) == [(0, 5, "silence")]


def test_mute_tail_seconds_ignores_the_echo_after_speaking():
    s = base(mute_tail_seconds=frames(3))
    assert run("mmm ### ....", s) == []  # the echo right after the reply
    assert ended(run("mmm ...### ....", s)) == [(6, 9, "silence")]
    assert ended(run("mmm ### ....", base(mute_tail_seconds=0.0))) == [(3, 6, "silence")]


def test_flush_ends_a_command_in_progress_at_its_last_speech():
    events = run("...####..", base(silence_seconds=frames(5)))
    assert ended(events) == [(3, 7, "end_of_input")]
    assert run("..##", base()) == []  # not enough speech to start: nothing


def test_a_new_command_after_the_last_one_ended():
    s = base()
    events = run("### .... ### ....", s)
    assert ended(events) == [(0, 3, "silence"), (7, 10, "silence")]
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded, SpeechStarted, SpeechEnded]


@pytest.mark.parametrize(
    "overrides",
    [
        {"aggressiveness": 4},
        {"aggressiveness": -1},
        {"speech_seconds": 0},
        {"silence_seconds": -0.1},
        {"max_seconds": 0},
        {"preroll_seconds": -1},
        {"postroll_seconds": -1},
        {"min_seconds": -1},
        {"mute_tail_seconds": -0.5},
        {"gap_seconds": -0.1},
        {"blip_seconds": -0.1},
        {"speech_seconds": 2.0, "max_seconds": 1.0},
    ],
)
def test_invalid_settings_are_rejected(overrides):
    with pytest.raises(ValueError):
        SegmenterSettings(**overrides)


def paused(events: list) -> list[tuple[int, int, int]]:
    return [(e.start_frame, e.end_frame, e.frame) for e in events if isinstance(e, SpeechPaused)]


def test_pause_seconds_reports_the_first_pause_once_per_pause():
    s = base(silence_seconds=frames(6), pause_seconds=frames(2))
    events = run("### .. . ## .. .... ", s)
    # speech 0-2, pause at frame 4 (2 silent frames); resumes 6-7; pause again at 9; ends at 13
    assert paused(events) == [(0, 3, 4), (0, 8, 9)]
    assert ended(events) == [(0, 8, "silence")]
    assert paused(run("### " + "." * 10, base(silence_seconds=frames(6)))) == []  # 0 = off


def test_complete_ends_the_command_at_its_pause_even_before_min_seconds():
    s = base(silence_seconds=frames(20), pause_seconds=frames(2), min_seconds=frames(50))
    seg = Segmenter(s, frame_seconds=F)
    events = []
    for ch in "###..":
        events += seg.process(ch == "#")
    (pause,) = [e for e in events if isinstance(e, SpeechPaused)]
    assert seg.complete(pause.start_frame, pause.end_frame) == [SpeechEnded(0, 3, 4, "complete")]
    assert not seg.in_command
    assert seg.complete(pause.start_frame, pause.end_frame) == []  # already ended: left alone
    later = []
    for ch in "....####":
        later += seg.process(ch == "#")
    assert later == [SpeechStarted(start_frame=9, detected_frame=11)]  # the next command starts afresh


def test_complete_cuts_speech_that_resumed_after_the_pause_and_ignores_other_commands():
    s = base(silence_seconds=frames(20), pause_seconds=frames(2))
    seg = Segmenter(s, frame_seconds=F)
    for ch in "###..##":
        seg.process(ch == "#")
    assert seg.complete(1, 3) == []  # not this command's start
    (end,) = seg.complete(0, 3)
    assert (end.start_frame, end.end_frame, end.reason) == (0, 3, "complete")


def test_pause_must_be_shorter_than_the_silence_window():
    with pytest.raises(ValueError, match="pause_seconds"):
        SegmenterSettings(pause_seconds=0.7)
    with pytest.raises(ValueError, match="pause_seconds"):
        SegmenterSettings(pause_seconds=-0.1)
    assert SegmenterSettings(silence_seconds=0.25).pause_seconds < 0.25


def test_windows_sets_the_long_window_and_keeps_the_short_one_below_it():
    assert SegmenterSettings().windows(silence=0.25) == SegmenterSettings(silence_seconds=0.25, pause_seconds=0.125)
    assert SegmenterSettings().windows(silence=1.25).pause_seconds == SegmenterSettings().pause_seconds
    assert SegmenterSettings().windows(pause=0).pause_seconds == 0
    assert SegmenterSettings().windows() == SegmenterSettings()


def run_barge(pattern: str, settings: SegmenterSettings) -> list:
    """"b" speech and "_" silence while a reply plays (barge-in mode); "#"/"." as usual."""
    seg = Segmenter(settings, frame_seconds=F)
    events = []
    for ch in pattern.replace(" ", ""):
        events += seg.process(ch in "#b", barge_in=ch in "b_")
    return events


def test_barge_in_mode_hears_speech_and_marks_its_commands():
    """While a reply plays (barge_in, not muted) speech counts; the command that starts then is
    a barge-in one, pauses after barge_in_pause_seconds (not pause_seconds) and says so."""
    s = base(pause_seconds=frames(3), barge_in_pause_seconds=frames(1), silence_seconds=frames(6))
    events = run_barge("__ bbbb __ ____", s)
    assert events[0] == SpeechStarted(2, 4)
    assert events[1] == SpeechPaused(2, 6, 6, barge_in=True)
    assert events[2] == SpeechEnded(2, 6, 11, "silence", barge_in=True)
    # the same speech outside a reply: the usual pause, and not a barge-in command
    events = run_barge(".. #### ......", s)
    assert events[1] == SpeechPaused(2, 6, 8, barge_in=False) and events[2].barge_in is False


def test_barge_in_commands_are_cut_at_their_own_length_limit():
    s = base(barge_in_max_seconds=frames(5), max_seconds=frames(100))
    assert ended(run_barge("b" * 7, s)) == [(0, 5, "max_length")]
    assert ended(run("#" * 12, s)) == [(0, 12, "end_of_input")]  # outside a reply: the usual limit


def test_muted_wins_over_barge_in():
    seg = Segmenter(base(), frame_seconds=F)
    assert [e for _ in range(10) for e in seg.process(True, muted=True, barge_in=True)] == []


@pytest.mark.parametrize("field", ["barge_in_pause_seconds", "barge_in_max_seconds"])
def test_barge_in_windows_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        SegmenterSettings(**{field: 0})
