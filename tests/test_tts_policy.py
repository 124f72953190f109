"""The live-reply policy by measured speed: engines are timed on a short text; a live reply not in
the cache goes to the first engine that keeps up, pre-rendered and cached replies keep the
configured voice, and a configured voice that keeps up (a GPU) speaks live too."""

from __future__ import annotations

import time

import numpy as np
import pytest

from assistant.audio.clip import Audio
from assistant.tts.cache import ReplyCache
from assistant.tts.speech import Speech, SpeechSettings

RATE = 8000


class Timed:
    """An engine taking `rtf` seconds per second of audio (0.25 s of audio a call)."""

    def __init__(self, name: str, rtf: float) -> None:
        self.name = name
        self.rtf = rtf
        self.calls: list[str] = []

    def synthesize(self, text: str, voice: str | None = None) -> Audio:
        self.calls.append(text)
        time.sleep(0.25 * self.rtf)
        return Audio(np.full(RATE // 4, 0.1, np.float32), RATE)

    def stream(self, text: str, voice: str | None = None):
        yield self.synthesize(text, voice)


def make(tmp_path, tortoise_rtf: float, **settings) -> tuple[Speech, dict[str, Timed]]:
    engines = {"tortoise": Timed("tortoise", tortoise_rtf), "piper": Timed("piper", 0.0), "espeak": Timed("espeak", 0.0)}
    speech = Speech(SpeechSettings(**settings), factories={n: (lambda e=e: e) for n, e in engines.items()},
                    cache=ReplyCache(tmp_path / "replies"))
    return speech, engines


def test_speeds_are_measured_per_engine_on_a_warm_call(tmp_path) -> None:
    speech, engines = make(tmp_path, tortoise_rtf=2.0)
    speeds = speech.measure_speeds()
    assert set(speeds) == {"tortoise", "piper", "espeak"}
    assert speeds["tortoise"] == pytest.approx(2.0, abs=0.4) and speeds["piper"] < 0.2
    assert engines["tortoise"].calls == [SpeechSettings().speed_text] * 2  # warm-up, then timed
    assert speech.keeps_up("tortoise") is False and speech.keeps_up("piper") is True
    assert speech.live_engine() == "piper"


def test_a_live_reply_not_cached_uses_the_first_engine_that_keeps_up(tmp_path) -> None:
    speech, engines = make(tmp_path, tortoise_rtf=2.0)
    speech.measure_speeds()
    for engine in engines.values():
        engine.calls.clear()
    assert len(list(speech.stream("Lights on.", live=True))) == 1
    assert speech.stats.last_engine == "piper" and engines["piper"].calls == ["Lights on."]
    assert engines["tortoise"].calls == []
    # not live (the API, pre-rendering): the configured voice
    speech.synthesize("Lights on.")
    assert engines["tortoise"].calls == ["Lights on."]


def test_a_cached_take_in_the_configured_voice_is_played_live(tmp_path) -> None:
    speech, engines = make(tmp_path, tortoise_rtf=2.0)
    speech.measure_speeds()
    speech.prerender(["Timer set."])
    assert speech.wait_prerendered(10)
    engines["piper"].calls.clear()
    list(speech.stream("Timer set.", live=True))
    assert speech.stats.last_engine == "tortoise" and engines["piper"].calls == []
    assert engines["tortoise"].calls.count("Timer set.") == 1  # pre-rendered once, played from the cache


def test_a_configured_voice_that_keeps_up_speaks_live(tmp_path) -> None:
    speech, engines = make(tmp_path, tortoise_rtf=0.1)  # Tortoise on a GPU
    speech.measure_speeds()
    list(speech.stream("Lights on.", live=True))
    assert speech.stats.last_engine == "tortoise" and "Lights on." in engines["tortoise"].calls


def test_the_configured_policy_always_uses_the_configured_voice(tmp_path) -> None:
    speech, engines = make(tmp_path, tortoise_rtf=2.0, live_policy="configured")
    speech.measure_speeds()
    list(speech.stream("Lights on.", live=True))
    assert speech.stats.last_engine == "tortoise"


def test_without_measurements_the_chain_is_followed(tmp_path) -> None:
    speech, _ = make(tmp_path, tortoise_rtf=0.0)
    assert speech.live_order() == ["tortoise", "piper", "espeak"]
    speech.speeds.update({"tortoise": 3.0, "piper": 0.9, "espeak": 0.01})
    assert speech.live_order() == ["espeak", "piper", "tortoise"]  # none but espeak keeps up; then the fastest
    assert speech.live_order("tortoise") == ["espeak", "piper", "tortoise"]


def test_bad_policy_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="live-reply policy"):
        SpeechSettings(live_policy="fastest")
    with pytest.raises(ValueError, match="keep_up_rtf"):
        SpeechSettings(keep_up_rtf=0)
