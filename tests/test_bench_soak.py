"""The soak (bench/soak.py) on a short program: the real VAD, loop, dispatcher, store, reloader,
Speaker and FileSink, with an oracle standing in for Whisper (it hears the text of the clip
being played) and a fixed-length fake voice, so every count is known exactly. A soak whose
counting broke (replies, audio seconds, timers on the stream clock, reloads) fails here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.asr import Transcript  # noqa: E402
from assistant.audio.clip import Audio  # noqa: E402
from assistant.tts import Speech, SpeechSettings  # noqa: E402
from bench import soak  # noqa: E402

REPLY_SECONDS = 0.25


class OracleASR:
    """Hears the clip the program is playing when the segment is at least as long as the clip's
    speech (a command cut at its mid-sentence pause is heard as nothing, as a partial command
    would match nothing); `drop` is never heard."""

    def __init__(self, drop: str | None = None) -> None:
        self.source: soak.ProgramSource | None = None
        self.drop = drop
        self._spans: dict[int, int] = {}

    def vocabulary_prompt(self, words):
        return None

    def _span(self, clip: soak.Clip) -> int:
        if id(clip) not in self._spans:
            loud = np.nonzero(np.abs(clip.samples) > 0.02)[0]
            self._spans[id(clip)] = int(loud[-1] - loud[0]) if len(loud) else 0
        return self._spans[id(clip)]

    def transcribe(self, audio, prompt=None, short_context=None):
        clip = self.source.current if self.source is not None else None
        text = ""
        if clip is not None and clip.kind != "noise" and clip.text != self.drop and len(audio) >= self._span(clip):
            text = clip.text
        return Transcript(text=text, segments=[{"text": text}], duration_ms=1.0)


class FixedVoice:
    """Every reply is REPLY_SECONDS of a quiet tone."""

    name = "espeak"
    deterministic = True

    def synthesize(self, text, voice=None):
        rate = 16000
        t = np.arange(int(REPLY_SECONDS * rate)) / rate
        return Audio((0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)

    def stream(self, text, voice=None):
        yield self.synthesize(text, voice)


def run_soak(tmp_path, hours: float, reload_minutes: float, drop: str | None = None) -> soak.Report:
    options = soak.SoakOptions(hours=hours, seed=3, reload_minutes=reload_minutes, sample_minutes=5, warmup_minutes=0,
                               max_growth_mb=1e6, settle_timeout=30)
    speech = Speech(SpeechSettings(engine="espeak", fallback=("espeak",)), factories={"espeak": FixedVoice})
    asr = OracleASR(drop)
    run = soak.Soak(options, asr, speech, home=tmp_path)
    asr.source = run.source
    return run.run()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))


def test_every_count_adds_up(tmp_path) -> None:
    report = run_soak(tmp_path, hours=0.4, reload_minutes=10)
    assert report.failures() == []
    assert len(report.expected) >= 40 and report.matched == len(report.expected) == len(report.recognised)
    assert report.handled == len(report.recognised) and not report.handler_failures
    # replies: every one said (loop replies and timer announcements) was spoken into the file
    assert report.said == report.reply_events + report.timers_announced == report.spoken > 0
    assert report.cut == report.speech_failed == 0
    assert report.audio_written == pytest.approx(REPLY_SECONDS * report.spoken)
    assert report.chunks == report.spoken
    assert report.wav is not None and report.wav.stat().st_size > 44
    # timers run on the stream clock: 5-minute timers fire within the 24 simulated minutes
    assert report.timers_set >= 3 and report.timers_fired >= 1
    assert report.timers_announced == report.timers_fired
    assert report.timers_set == report.timers_cancelled + report.timers_fired + report.timers_pending
    assert 0 <= report.max_lateness < 10
    # a hot reload every 10 simulated minutes, each checked
    assert report.reloads == 2 and report.reload_problems == []
    assert report.settle_timeouts == 0 and not report.errors and not report.loop_errors and not report.crashes
    assert [s.reloads for s in report.samples][-1] == 2
    assert report.samples[-1].timers_fired == report.timers_fired


def test_a_missed_command_fails_the_soak(tmp_path) -> None:
    report = run_soak(tmp_path, hours=0.1, reload_minutes=0, drop="cancel the timer")
    missed = report.expected.count("TimerCancel")
    assert missed >= 1 and report.matched == len(report.expected) - missed
    misses = report.misses()
    assert len(misses) == missed and all("'cancel the timer' (TimerCancel) heard as nothing" in m for m in misses)
    assert any("were not recognised" in problem for problem in report.failures())


def test_failures_name_what_does_not_add_up() -> None:
    report = soak.Report(soak.SoakOptions(), reply_events=3, timers_announced=1, spoken=3, timers_set=2,
                         timers_fired=1, timers_cancelled=0, timers_pending=0)
    problems = report.failures()
    assert any("4 replies said, 3 spoken" in p for p in problems)
    assert any("timers do not add up" in p for p in problems)
    assert not any("fired but" in p for p in problems)
