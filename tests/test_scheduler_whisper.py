"""A real Whisper (tiny.en) call overtakes pre-rendering queued before it: the command is
recognised as soon as the running model step ends, and the pre-render continues afterwards."""

from __future__ import annotations

import sys
import threading
import time
import traceback

import numpy as np
import pytest

from assistant.asr import WhisperASR, WhisperSettings
from assistant.audio import read_wav
from assistant.audio.clip import Audio
from assistant.scheduler import SCHEDULER, Priority, Wait
from assistant.tts.speech import Speech, SpeechSettings

from asr_support import AUDIO, real_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


class SteppingEngine:
    """A TTS engine that, like the real ones, takes the model slot per step (3 steps a reply)."""

    name = "espeak"

    def __init__(self) -> None:
        self.steps: list[str] = []

    def synthesize(self, text: str, voice: str | None = None) -> Audio:
        for step in range(3):
            with SCHEDULER.slot("tts", Priority.LIVE):
                self.steps.append(f"{text}#{step}")
        return Audio(np.zeros(2400, np.float32), 24000)

    def stream(self, text: str, voice: str | None = None):
        yield self.synthesize(text, voice)


def prerender_stacks() -> str:
    """Where the pre-render thread is, for a failure message."""
    frames = sys._current_frames()
    return "\n".join("".join(traceback.format_stack(frames[t.ident])) for t in threading.enumerate()
                     if t.name == "tts-prerender" and t.ident in frames) or "no pre-render thread"


def test_a_command_overtakes_a_queued_prerender(tmp_path) -> None:
    asr = WhisperASR(WhisperSettings(model=str(real_checkpoint()), device="cpu"))
    samples, _ = read_wav(AUDIO / "turn_on_kitchen_lights.wav")
    engine = SteppingEngine()
    speech = Speech(SpeechSettings(fallback=("espeak",), cache=False), factories={"espeak": lambda: engine})
    grants: list[Wait] = []
    remove = SCHEDULER.add_observer(grants.append)
    release, entered = threading.Event(), threading.Event()

    def live_step() -> None:  # a live reply's step is running when both arrive
        with SCHEDULER.slot("tts", Priority.LIVE):
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=live_step, daemon=True)
    holder.start()
    try:
        assert entered.wait(10)
        speech.prerender(["Lights on.", "Timer set."])
        deadline = time.monotonic() + 10
        while SCHEDULER.snapshot()["waiting"] != [("tts", "background")]:
            assert time.monotonic() < deadline, (SCHEDULER.snapshot(), prerender_stacks())
            time.sleep(0.005)
        heard: list[str] = []
        command = threading.Thread(target=lambda: heard.append(asr.transcribe(samples).text), daemon=True)
        command.start()
        while len(SCHEDULER.snapshot()["waiting"]) != 2:
            assert time.monotonic() < deadline, SCHEDULER.snapshot()
            time.sleep(0.005)
        release.set()
        command.join(60)
        assert speech.wait_prerendered(60)
    finally:
        release.set()
        remove()
    assert heard and "kitchen" in heard[0].lower()
    order = [(grant.work, grant.priority) for grant in grants]
    # the live step, then the command (although the pre-render asked first), then the pre-render
    assert order[:3] == [("tts", Priority.LIVE), ("asr", Priority.COMMAND), ("tts", Priority.BACKGROUND)]
    assert grants[1].behind == "tts"
    assert order[3:] == [("tts", Priority.BACKGROUND)] * 5
    assert engine.steps == [f"{text}#{step}" for text in ("Lights on.", "Timer set.") for step in range(3)]
