"""A virtual room for barge-in: the assistant's reply leaks back into its microphone.

On the private PulseAudio of `virtual_pulse.py` the player plays to "speaker"; module-loopback
copies "speaker.monitor" into "room" at `leak` volume (with its latency), and whatever is played
into "room" (a person saying "stop") is heard by the microphone "mic" too. With `aec` the
audio server's module-echo-cancel (webrtc) sits between them: the player plays to
"speaker_aec", the assistant records "mic_aec". Used by tests/test_bargein_pulse.py and
bench/bargein.py.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent / "audio"))
from virtual_pulse import VirtualPulse  # noqa: E402

from assistant.audio.clip import Audio  # noqa: E402


def speech_end_seconds(samples: np.ndarray, rate: int, dbfs: float = -40.0) -> float:
    """Where the last 10 ms window louder than `dbfs` ends: the end of the word in a clip."""
    window = rate // 100
    n = len(samples) // window
    levels = np.sqrt(np.mean(np.square(samples[: n * window].reshape(n, window), dtype=np.float64), axis=1))
    loud = np.nonzero(levels > 10 ** (dbfs / 20))[0]
    return float((loud[-1] + 1) * window / rate) if len(loud) else 0.0


class Room:
    """The virtual room; use as a context manager (starts and stops its own PulseAudio)."""

    def __init__(self, workdir: Path, *, leak: float = 0.3, aec: bool = False, latency_ms: int = 60) -> None:
        """`leak`: the reply's amplitude in the microphone relative to what is played (0.3 = -10 dB)."""
        self.pulse = VirtualPulse(workdir)
        self.leak = leak
        self.aec = aec
        self.latency_ms = latency_ms

    def __enter__(self) -> Room:
        pulse = self.pulse
        pulse.start()
        try:
            pulse.pactl("load-module", "module-loopback", "source=speaker.monitor", "sink=room",
                        f"latency_msec={self.latency_ms}")
            for line in pulse.pactl("list", "short", "sink-inputs").stdout.splitlines():
                fields = line.split("\t")
                if len(fields) > 3 and fields[3] == "module-loopback.c":
                    # PulseAudio percentages are cubic: amplitude = (percent / 100) ** 3
                    pulse.pactl("set-sink-input-volume", fields[0], f"{round(100 * self.leak ** (1 / 3))}%")
            if self.aec:
                pulse.pactl("load-module", "module-echo-cancel", "source_master=mic", "sink_master=speaker",
                            "aec_method=webrtc", "source_name=mic_aec", "sink_name=speaker_aec")
            pulse.activate()
            if self.aec:
                os.environ["PULSE_SOURCE"], os.environ["PULSE_SINK"] = "mic_aec", "speaker_aec"
        except BaseException:
            pulse.stop()
            pulse.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.pulse.deactivate()
        self.pulse.stop()
        self.pulse.cleanup()

    def say(self, wav: Path) -> float:
        """Play a clip into the room (a person speaking); returns time.monotonic() at the start."""
        started = time.monotonic()
        self.pulse.play(wav, "room")
        return started


@dataclass
class Session:
    """What happened while one reply played."""

    events: list[dict] = field(default_factory=list)
    reply_started: float = 0.0
    said_at: list[float] = field(default_factory=list)
    """time.monotonic() when each clip started playing into the room."""
    interrupted_at: list[float] = field(default_factory=list)
    """time.monotonic() when the reply had been stopped (the player's stop() returned)."""
    played_seconds: float = 0.0
    """How long the reply played (to its end, or to the interruption)."""

    def kinds(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]


def play_reply(room: Room, recognizer, commands, reply: Audio, *, say: list[tuple[float, Path]] = (),
               settings=None, timeout: float | None = None, warm_seconds: float = 1.5) -> Session:
    """Listen on the room's microphone while `reply` plays to its speaker, saying each clip of
    `say` into the room `at` seconds after the reply starts; returns when the reply has ended or
    been cut (and a second has passed for the last events)."""
    from assistant.audio import MicrophoneSource
    from assistant.handlers import Dispatcher
    from assistant.loop import ListenLoop, LoopSettings
    from assistant.playback import DevicePlayer

    player = DevicePlayer("pulse")
    session = Session()

    def interrupt() -> None:
        player.stop()
        session.interrupted_at.append(time.monotonic())

    dispatcher = Dispatcher(commands, announce=lambda text: None, cancel=player.stop)
    source = MicrophoneSource("pulse")
    loop = ListenLoop(source, recognizer, dispatcher, settings=settings or LoopSettings(),
                      speak=lambda text: None, is_speaking=lambda: player.is_playing,
                      on_event=session.events.append, interrupt=interrupt, played=player.played)
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        time.sleep(warm_seconds)  # the microphone stream is running before the reply starts
        session.reply_started = time.monotonic()
        player.play(reply)
        pending = sorted(say, key=lambda item: item[0])
        deadline = session.reply_started + (timeout or reply.duration + 5)
        while time.monotonic() < deadline:
            now = time.monotonic() - session.reply_started
            while pending and pending[0][0] <= now:
                session.said_at.append(room.say(pending.pop(0)[1]))
            if not pending and not player.is_playing:
                break
            time.sleep(0.01)
        session.played_seconds = time.monotonic() - session.reply_started
        time.sleep(1.0)
    finally:
        player.stop()
        loop.stop()
        runner.join(timeout=10)
        dispatcher.close()
    return session
