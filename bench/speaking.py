"""Speaking in real time: engine speeds, the live policy's time to first audio and gaps, Whisper's
wait behind TTS with and without the model scheduler, the self-check's cost. Prints Markdown
tables (docs/speaking.md).

Run: .venv/bin/python bench/speaking.py [--tortoise-width 64] [--skip-playback]
Tortoise here is the tiny random-weight build (tortoise's real classes, `ModelSizes.tiny(width)`,
audio is noise and its length random up to `max_mel_tokens`): its speed depends on `width`, not
on the published model's. Whisper is the real tiny.en. Playback goes to a virtual PulseAudio
sink (tests/audio/virtual_pulse.py) recorded through its monitor; gaps > 20 ms are counted in
the recording. A temporary ASSISTANT_HOME is used. The sentences below are the benchmark's own
(no test fixture audio is used).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "audio"))

LIVE_REPLY = "The front door is locked. The porch light is off. I will remind you at nine."
LONG_REPLY = ("Here is your morning summary. It is cloudy with a chance of rain later today. You have three "
              "meetings, the first one at ten. Your package should arrive this afternoon.")
PRERENDER = ["Done.", "The heating is on.", "Your alarm is set.", "I could not reach the printer.",
             "The garage door is closed.", "Music paused."]
COMMAND = "switch off the hallway lamp"
RECORD_RATE = 16000
COMMANDS = 20
"""Commands transcribed while the long replies stream and pre-rendering runs."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def build_tortoise(home: Path, width: int):
    from assistant.tts.tortoise import TortoiseEngine, TortoiseSettings
    from assistant.tts.tortoise.config import ModelSizes
    from assistant.tts.tortoise.latents import LatentCache
    from assistant.tts.tortoise.tiny import write_random_models

    models = write_random_models(home / f"models-{width}", ModelSizes.tiny(width))
    settings = TortoiseSettings(max_mel_tokens=160)
    engine = TortoiseEngine(settings, models_dir=models, device="cpu", latent_cache=LatentCache(home / "latents"))
    engine.load()
    return engine


def engines(home: Path, width: int) -> dict:
    from assistant.tts.espeak import EspeakEngine
    from assistant.tts.piper import PiperEngine

    return {"tortoise": build_tortoise(home, width), "piper": PiperEngine(), "espeak": EspeakEngine()}


def make_speech(built: dict, home: Path, tag: str, **settings):
    from assistant.tts.cache import ReplyCache
    from assistant.tts.speech import Speech, SpeechSettings

    return Speech(SpeechSettings(**settings), factories={n: (lambda e=e: e) for n, e in built.items()},
                  cache=ReplyCache(home / f"replies-{tag}"))


# -- 1. speeds -------------------------------------------------------------------------------

def bench_speeds(built: dict, home: Path) -> tuple[list[tuple[str, str]], dict[str, float]]:
    speech = make_speech(built, home, "speeds")
    speeds = speech.measure_speeds()
    rows = [(f"{name} real-time factor (short reply, warm)", f"{rtf:.2f}") for name, rtf in speeds.items()]
    rows.append(("live engine chosen by keeps-up (RTF < 0.7)", str(speech.live_engine())))
    return rows, speeds


# -- 2. live reply: time to first audio and gaps on the virtual sink ---------------------------

class Recorder:
    def __init__(self, pulse, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["parecord", "--device=speaker.monitor", f"--rate={RECORD_RATE}", "--channels=1", "--format=s16le",
             "--file-format=wav", "--latency-msec=20", str(path)],
            env=pulse.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while f"{RECORD_RATE}Hz" not in pulse.pactl("list", "short", "source-outputs").stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("parecord did not connect")
            time.sleep(0.05)
        time.sleep(0.2)

    def finish(self) -> np.ndarray:
        time.sleep(0.5)
        self.proc.terminate()
        self.proc.wait(timeout=5)
        with wave.open(str(self.path)) as wav:
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def gaps_over_20ms(samples: np.ndarray, window: int = RECORD_RATE // 200) -> int:
    """Silent stretches (> 20 ms) between the first and last sound. Speech has its own pauses
    between words, so the count is compared between players on the same audio, not read alone."""
    levels = np.array([np.sqrt(np.mean(samples[i:i + window] ** 2)) for i in range(0, len(samples) - window, window)])
    loud = levels > 0.01
    if not loud.any():
        return 0
    first, last = int(np.argmax(loud)), len(loud) - 1 - int(np.argmax(loud[::-1]))
    gaps = run = 0
    for flag in loud[first:last + 1]:
        if flag:
            gaps += run * window / RECORD_RATE > 0.02
            run = 0
        else:
            run += 1
    return gaps


class Capturing:
    """The Speech as the Speaker sees it, keeping the chunks it streams (the audio's own pauses)."""

    def __init__(self, speech) -> None:
        self._speech = speech
        self.chunks: list = []

    def stream(self, *args, **kwargs):
        for chunk in self._speech.stream(*args, **kwargs):
            self.chunks.append(chunk)
            yield chunk

    def __getattr__(self, name: str):
        return getattr(self._speech, name)


def own_gaps(chunks: list) -> int:
    """Pauses > 20 ms already in the rendered audio (between words): not the player's doing."""
    from assistant.audio.clip import Audio

    return gaps_over_20ms(Audio.concat(chunks).resampled(RECORD_RATE).samples) if chunks else 0


def live_reply(speech, player, framed: bool) -> dict:
    """One live reply through the Speaker (framed: jitter buffer) or the old chunk-by-chunk path."""
    from assistant.playback.speaker import Speaker

    started = time.monotonic()
    speech = Capturing(speech)
    if framed:
        speaker = Speaker(speech, player)
        speaker.say(LIVE_REPLY)
        speaker.wait(300)
        player.wait(300)
        speaker.close()
        first = player.stats.started_at[-1] - started
    else:
        first = None
        for chunk in speech.stream(LIVE_REPLY, live=True):
            if first is None:
                first = time.monotonic() - started
            player.play(chunk)
        player.wait(300)
    return {"first": first, "engine": speech.stats.last_engine, "own_gaps": own_gaps(speech.chunks)}


class Slowed:
    """Tortoise held back to a real-time factor of `rtf` (as the published model is on a CPU:
    ~1.9), to show the live policy and the jitter buffer where they matter."""

    def __init__(self, engine, rtf: float) -> None:
        self.engine, self.rtf, self.name, self.settings = engine, rtf, engine.name, engine.settings

    def synthesize(self, text: str, voice: str | None = None, **overrides):
        started = time.perf_counter()
        audio = self.engine.synthesize(text, voice, **overrides)
        time.sleep(max(0.0, self.rtf * audio.duration - (time.perf_counter() - started)))
        return audio

    def stream(self, text: str, voice: str | None = None):
        started = time.perf_counter()
        for chunk in self.engine.stream(text, voice):
            time.sleep(max(0.0, self.rtf * chunk.duration - (time.perf_counter() - started)))
            yield chunk
            started = time.perf_counter()


def bench_live(built: dict, home: Path, speeds: dict[str, float]) -> list[tuple[str, str]]:
    from virtual_pulse import PulseUnavailable, VirtualPulse

    from assistant.playback import DevicePlayer

    try:
        pulse = VirtualPulse(home / "pulse")
        pulse.start()
    except PulseUnavailable as exc:
        return [("live reply playback", f"skipped: {exc}")]
    pulse.activate()
    rows = []
    try:
        warm = DevicePlayer("pulse")
        recorder = Recorder(pulse, home / "warm.wav")
        warm.play(built["espeak"].synthesize("warm up"))
        warm.wait(10)
        recorder.finish()
        slowed = {**built, "tortoise": Slowed(built["tortoise"], 1.9)}
        cases = [("tortoise", "configured", built, speeds), ("tortoise", "keeps-up", built, speeds),
                 ("tortoise slowed to RTF 1.9", "configured", slowed, {**speeds, "tortoise": 1.9}),
                 ("tortoise slowed to RTF 1.9", "keeps-up", slowed, {**speeds, "tortoise": 1.9}),
                 ("piper", "configured", built, speeds), ("espeak", "configured", built, speeds)]
        for index, (engine, policy, chosen, measured) in enumerate(cases):
            for framed in (False, True):
                speech = make_speech(chosen, home, f"live-{index}-{framed}", engine=engine.split()[0], live_policy=policy)
                speech.speeds.update(measured)
                player = DevicePlayer("pulse")
                recorder = Recorder(pulse, home / f"live-{index}-{framed}.wav")
                result = live_reply(speech, player, framed)
                heard = recorder.finish()
                player_label = "jitter buffer" if framed else "old: chunk by chunk"
                underruns = f", underruns {player.stats.underruns}" if framed else ""
                rows.append((f"3-sentence live reply, {engine} first, policy {policy}, {player_label}",
                             f"spoken by {result['engine']}: first audio {result['first']:.2f} s, gaps > 20 ms "
                             f"{gaps_over_20ms(heard) - result['own_gaps']:+d} vs the rendered audio{underruns}"))
    finally:
        pulse.deactivate()
        pulse.stop()
        pulse.cleanup()
    return rows


# -- 3. Whisper's wait behind TTS ---------------------------------------------------------------

@contextlib.contextmanager
def plain_lock():
    """The scheduler behaving like the old MODEL_LOCK: first come first served, no pauses."""
    from assistant.scheduler import SCHEDULER, ModelScheduler, Priority

    SCHEDULER._acquire = lambda work, priority: ModelScheduler._acquire(SCHEDULER, work, Priority.LIVE)  # type: ignore[method-assign]
    SCHEDULER.pause_background = contextlib.nullcontext  # type: ignore[method-assign]
    try:
        yield
    finally:
        del SCHEDULER._acquire
        del SCHEDULER.pause_background


def contended_waits(built: dict, home: Path, asr, command: np.ndarray, tag: str) -> tuple[list[float], list[float]]:
    """A long live reply streams (tortoise) while pre-rendering runs (tortoise) and a command is
    transcribed every 0.3 s; returns Whisper's waits and the live reply's chunk intervals."""
    from assistant.scheduler import SCHEDULER, Priority, Wait, work_priority

    speech = make_speech(built, home, f"wait-{tag}", engine="tortoise", live_policy="configured")
    waits: list[float] = []

    def observe(wait: Wait) -> None:
        if wait.work == "asr":  # only the command thread transcribes here
            waits.append(wait.seconds)

    remove = SCHEDULER.add_observer(observe)
    done = threading.Event()
    intervals: list[float] = []

    def live() -> None:  # long replies, one after the other, until the commands are done
        while not done.is_set():
            with SCHEDULER.pause_background(), work_priority(Priority.LIVE):
                last = time.perf_counter()
                for _ in built["tortoise"].stream(LONG_REPLY):
                    now = time.perf_counter()
                    intervals.append(now - last)
                    last = now
            time.sleep(0.2)

    def commands() -> None:
        for _ in range(COMMANDS):
            with SCHEDULER.pause_background():
                asr.transcribe(command)
            time.sleep(0.3)
        done.set()

    speech.prerender([f"{text} ({n})" for n in range(3) for text in PRERENDER])
    time.sleep(0.5)  # pre-rendering under way
    threads = [threading.Thread(target=live), threading.Thread(target=commands)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    remove()
    speech.wait_prerendered(600)
    return waits[-COMMANDS:], intervals


def bench_waits(built: dict, home: Path, asr, command: np.ndarray) -> list[tuple[str, str]]:
    rows = []
    for label, context in (("plain lock (before)", plain_lock), ("scheduler (after)", contextlib.nullcontext)):
        with context():
            waits, intervals = contended_waits(built, home, asr, command, label.split()[0])
        rows.append((f"Whisper wait behind TTS, {label}: median / p95 / max ({len(waits)} commands)",
                     f"{statistics.median(waits) * 1000:.0f} / {pct(waits, 0.95) * 1000:.0f} / {max(waits) * 1000:.0f} ms"))
        rows.append((f"  live Tortoise chunk interval meanwhile, {label}: median / max",
                     f"{statistics.median(intervals) * 1000:.0f} / {max(intervals) * 1000:.0f} ms"))
    return rows


# -- 4. self-check cost ---------------------------------------------------------------------------

def bench_selfcheck(built: dict, home: Path, asr) -> list[tuple[str, str]]:
    from assistant.assemble import enable_selfcheck

    timings = {}
    for checked in (False, True):
        speech = make_speech({"piper": built["piper"]}, home, f"check-{checked}", engine="piper", fallback=("piper",))
        if checked:
            enable_selfcheck(speech, asr)
        started = time.perf_counter()
        speech.prerender(PRERENDER)
        speech.wait_prerendered(600)
        timings[checked] = (time.perf_counter() - started) / len(PRERENDER)
        report = speech.replies_report()
    return [
        ("pre-render per reply, Piper, no self-check", f"{timings[False] * 1000:.0f} ms"),
        ("pre-render per reply, Piper, self-checked by tiny.en", f"{timings[True] * 1000:.0f} ms"),
        ("self-check cost per reply (difference)", f"{(timings[True] - timings[False]) * 1000:.0f} ms"),
        ("self-check: replies checked / failed", f"{report['checked']} / {len(report['failed'])}"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tortoise-width", type=int, default=64, help="GPT width of the random-weight Tortoise")
    parser.add_argument("--skip-playback", action="store_true", help="leave out the virtual-sink playback rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-speaking-") as tmp:
        home = Path(tmp)
        os.environ["ASSISTANT_HOME"] = str(home)
        from assistant.asr import WhisperASR, WhisperSettings
        from assistant.asr.weights import fetch_whisper

        fetch_whisper()
        asr = WhisperASR(WhisperSettings(device="cpu"))
        built = engines(home, args.tortoise_width)
        command = built["piper"].synthesize(COMMAND).resampled(16000).samples
        command = np.concatenate([np.zeros(4800, np.float32), command, np.zeros(4800, np.float32)])
        rows, speeds = bench_speeds(built, home)
        sections = [lambda: bench_waits(built, home, asr, command), lambda: bench_selfcheck(built, home, asr)]
        if not args.skip_playback:
            sections.insert(0, lambda: bench_live(built, home, speeds))
        for section in sections:
            found = section()
            for name, value in found:  # progress on stderr: a later failure keeps these
                print(f"{name}: {value}", file=sys.stderr)
            rows += found
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"| {'-' * width} | ----- |")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
