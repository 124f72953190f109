"""Barge-in benchmark: which echo check works, how fast "stop" cuts a reply, how often a reply
cuts itself. Prints tables (docs/bargein.md).

1. "gate": the echo checks compared on a simulated room (numpy only): Piper chatter as the reply,
   convolved with exponential-decay room responses, "stop" (made here by Piper at another rate:
   not the test fixture) mixed over it at 0 and -6 dB against the echo.
2. "room": the real path on a private virtual PulseAudio (tests/bargein_room.py): the reply
   (espeak-ng, made here) plays to the speaker and leaks into the microphone by module-loopback;
   "stop" is played into the room at random moments; real tiny.en. Reaction = the player's stop()
   returned minus the end of the word as played (paplay's own start-up latency included, so it
   errs long). Each cut is broken down from the loop's barge-in event (the silence window, the
   wait behind other work, each Whisper pass, the player's stop), and a recorder on the
   speaker's monitor says how long the reply was still heard after stop() returned (buffered
   audio). Then replies play alone and every barge-in is a self-trigger, extrapolated per hour.

  .venv/bin/python bench/bargein.py [--trials 8] [--alone-minutes 2] [--leak 0.15] [--aec]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "audio")]

from assistant.audio import write_wav  # noqa: E402
from assistant.audio.clip import Audio  # noqa: E402
from assistant.audio.wav import read_wav  # noqa: E402
from assistant.echo import EchoGate, EchoSettings, rms  # noqa: E402
from assistant.playback.reference import PlayedLevels  # noqa: E402

REPLY_TEXTS = [
    "Here is the forecast for the rest of the week. Tomorrow starts cloudy with a chance of light rain "
    "in the morning, clearing by the afternoon with highs around eighteen degrees.",
    "Your shopping list has eggs, bread, two kinds of cheese, tomatoes, coffee, washing powder and "
    "something for the cat. Do you want me to read the notes as well?",
    "The timer for the pasta has four minutes left, the one for the oven has twelve, and the reminder "
    "to call your sister is set for seven in the evening.",
]
F = 480


def piper_stop(rate: float = 1.15) -> np.ndarray:
    from generate import load_voice  # tests/audio/generate.py
    from piper import SynthesisConfig

    from assistant.audio import resample

    voice = load_voice()
    chunks = list(voice.synthesize("Stop!", syn_config=SynthesisConfig(length_scale=rate)))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return resample(audio, chunks[0].sample_rate, 16000)


def espeak(text: str, out: Path) -> Audio:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(out), text], check=True)
    samples, rate = read_wav(out)
    return Audio(samples.astype(np.float32), rate)


# -- 1. the echo checks on a simulated room ----------------------------------------------------

def gate_table(stop: np.ndarray) -> None:
    import webrtcvad

    reply, _ = read_wav(ROOT / "tests" / "audio" / "long_mixed.wav")
    rng = np.random.default_rng(7)
    vad = webrtcvad.Vad(3)

    def room_ir(rt60: float) -> np.ndarray:
        t = np.arange(4000) / 16000
        h = rng.standard_normal(4000) * np.exp(-6.9 * t / rt60)
        h[0] = 3
        return h / np.sqrt((h ** 2).sum())

    def frames_of(mic: np.ndarray, ref: np.ndarray, label: np.ndarray) -> list[tuple[float, float, float, bool, bool]]:
        out, lag = [], int(0.3 * 16000)
        for i in range(0, len(mic) - F, F):
            frame, win = mic[i:i + F], ref[max(0, i - lag):i + F]
            peak = max(rms(win[j:j + F]) for j in range(0, max(1, len(win) - F + 1), F // 2))
            corr = 0.0
            if len(win) >= F and rms(frame) > 1e-4:
                c = np.correlate(win, frame, "valid")
                e = np.sqrt(np.convolve(win ** 2, np.ones(F), "valid") * np.sum(frame ** 2)) + 1e-9
                corr = float(np.max(np.abs(c) / e))
            pcm = (np.clip(frame, -1, 1) * 32767).astype("<i2").tobytes()
            out.append((rms(frame), peak, corr, vad.is_speech(pcm, 16000), bool(label[i:i + F].mean() > 0.5)))
        return out

    print("\n## echo checks, simulated room (speech frames of the echo let through; 'stop' placements caught)")
    print("| RT60 s | echo dB | method | echo frames passed | stop caught at 0 dB | stop caught at -6 dB |")
    print("|---|---|---|---|---|---|")
    for rt60 in (0.05, 0.3, 0.6):
        for echo_db in (-6, 0):
            echo = np.convolve(reply, room_ir(rt60))[:len(reply)] * 10 ** (echo_db / 20)
            caught = {m: {} for m in ("level ratio", "correlation", "quiet only")}
            gate = EchoGate(PlayedLevels(), EchoSettings(learn_frames=30))
            alone = frames_of(echo + rng.standard_normal(len(echo)) * 1e-3, reply, np.zeros(len(echo)))
            passed = {"level ratio": 0, "correlation": 0, "quiet only": 0}
            for level, peak, corr, speech, _ in alone:
                echo_frame = gate.judge(level, peak)
                if speech:
                    passed["level ratio"] += not echo_frame
                    passed["correlation"] += corr < 0.6
                    passed["quiet only"] += peak < 10 ** (-50 / 20)
            total = sum(1 for f in alone if f[3])
            for user_db in (0, -6):
                hits = {m: 0 for m in passed}
                places = np.arange(2.0, 38.0, 3.0)
                for at in places:
                    mic = echo.copy()
                    s = np.convolve(stop, room_ir(rt60))[:len(stop)] * 10 ** ((echo_db + user_db) / 20) / max(rms(stop), 1e-6) * rms(reply)
                    j = int(at * 16000)
                    mic[j:j + len(s)] += s[: len(mic) - j]
                    label = np.zeros(len(mic), bool)
                    loud = np.nonzero(np.abs(stop) > 0.01)[0]
                    label[j + loud[0]: j + loud[-1]] = True
                    g = EchoGate(PlayedLevels(), EchoSettings(learn_frames=30))
                    for level, peak, _, _, _ in alone[:300]:
                        g.judge(level, peak)  # the room as learnt before the person speaks
                    counts = {m: 0 for m in passed}
                    for level, peak, corr, speech, lab in frames_of(mic, reply, label):
                        heard = not g.judge(level, peak)
                        if speech and lab:
                            counts["level ratio"] += heard
                            counts["correlation"] += corr < 0.6
                            counts["quiet only"] += peak < 10 ** (-50 / 20)
                    for m in hits:
                        hits[m] += counts[m] >= 5
                for m in hits:
                    caught[m][user_db] = f"{hits[m]}/{len(places)}"
            for m in passed:
                print(f"| {rt60} | {echo_db} | {m} | {passed[m]}/{total} ({100 * passed[m] / max(total, 1):.1f}%) "
                      f"| {caught[m][0]} | {caught[m][-6]} |")


# -- 2. the virtual room ---------------------------------------------------------------------

class SinkTap:
    """Records the speaker's monitor (what leaves the speaker) in 10 ms blocks stamped with
    time.monotonic() at arrival (parec's 10 ms latency makes them err late by about that)."""

    BLOCK = 160

    def __init__(self, pulse) -> None:
        import threading

        self.blocks: list[tuple[float, float]] = []
        self._proc = subprocess.Popen(
            ["parec", "-d", "speaker.monitor", "--raw", "--format=s16le", "--rate=16000", "--channels=1",
             "--latency-msec=10"], env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import time

        while True:
            data = self._proc.stdout.read(2 * self.BLOCK)
            if not data:
                return
            samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768
            self.blocks.append((time.monotonic(), rms(samples)))

    def heard_after(self, at: float, dbfs: float = -50.0) -> float:
        """Seconds the speaker still sounded after `at` (the end of its last loud block; 0: none)."""
        loud = [t for t, level in self.blocks if t > at and level > 10 ** (dbfs / 20)]
        return max(0.0, loud[-1] - at) if loud else 0.0

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)
        self._thread.join(timeout=5)


def room_tables(stop: np.ndarray, trials: int, alone_minutes: float, leak: float, aec: bool) -> None:
    from asr_support import COMMANDS, real_checkpoint
    from bargein_room import Room, play_reply, speech_end_seconds

    from assistant.asr import WhisperASR, WhisperSettings
    from assistant.asr.recognizer import Recognizer
    from assistant.intents import load_commands
    from assistant.loop import LoopSettings

    work = Path(tempfile.mkdtemp(prefix="bench-bargein-"))
    stop_wav = work / "stop.wav"
    write_wav(stop_wav, stop, 16000)
    word_end = speech_end_seconds(stop, 16000)
    replies = [espeak(text, work / f"reply{i}.wav") for i, text in enumerate(REPLY_TEXTS)]
    commands = load_commands(COMMANDS)
    recognizer = Recognizer(WhisperASR(WhisperSettings(model=str(real_checkpoint()), device="cpu")), commands)
    rng = np.random.default_rng(3)
    reactions, loop_ms, missed, rows = [], [], 0, []
    with Room(work / "pulse", leak=leak, aec=aec) as room:
        for trial in range(trials):
            reply = replies[trial % len(replies)]
            at = float(rng.uniform(2.0, reply.duration - 2.0))
            tap = SinkTap(room.pulse)
            try:
                session = play_reply(room, recognizer, commands, reply, say=[(at, stop_wav)])
            finally:
                tap.close()
            if not session.interrupted_at:
                missed += 1
                continue
            reaction = (session.interrupted_at[0] - (session.said_at[0] + word_end)) * 1000
            reactions.append(reaction)
            event = session.kinds("barge-in")[0]
            loop_ms.append(event["eos_to_stop_ms"])
            rows.append((at, reaction, event, tap.heard_after(session.interrupted_at[0]) * 1000,
                         len(session.kinds("barge-in-ignored"))))
        played, triggers = 0.0, 0
        while played < alone_minutes * 60:
            for reply in replies:
                session = play_reply(room, recognizer, commands, reply, warm_seconds=0.5)
                played += min(session.played_seconds, reply.duration)
                triggers += len(session.interrupted_at)
    where = f"leak {leak} ({20 * np.log10(leak):.1f} dB){', module-echo-cancel webrtc' if aec else ', no server echo canceller'}"
    where += f", in-loop canceller {'on' if LoopSettings().echo.cancel else 'off'}"
    print(f"\n## virtual room, {where}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| stop spoken over a reply: cut | {len(reactions)}/{trials} |")
    if reactions:
        p95 = float(np.percentile(reactions, 95))
        print(f"| end of 'stop' -> reply stopped, median / p95 ms | {statistics.median(reactions):.0f} / {p95:.0f} |")
        print(f"| loop's own: VAD end of speech -> stop, median ms | {statistics.median(loop_ms):.0f} |")
    print(f"| replies played alone | {played / 60:.1f} min |")
    print(f"| self-triggers | {triggers} (-> {triggers * 60 / max(played / 60, 1e-9):.1f} per hour, extrapolated) |")
    if rows:
        print("\n## where the time goes, per cut (ms; 'word end -> speech end': paplay's start, capture, the VAD)")
        print("| stop at s | word end -> stop() returned | word end -> loop's speech end | heard at | silence window "
              "| queued | Whisper passes | recognise | player stop() | still heard after stop() | ignored in that reply |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for at, reaction, e, heard, ignored in rows:
            passes = " + ".join(f"{ms:.0f}" for ms in e["pass_ms"])
            print(f"| {at:.1f} | {reaction:.0f} | {reaction - e['eos_to_stop_ms']:.0f} | {e['at']} | {e['window_ms']:.0f} "
                  f"| {e['queued_ms']:.0f} | {passes} | {e['recognise_ms']:.0f} | {e['interrupt_ms']:.0f} | {heard:.0f} "
                  f"| {ignored} |")
        med = statistics.median
        print(f"| median | {med(r[1] for r in rows):.0f} | {med(r[1] - r[2]['eos_to_stop_ms'] for r in rows):.0f} | "
              f"| {med(r[2]['window_ms'] for r in rows):.0f} | {med(r[2]['queued_ms'] for r in rows):.0f} | "
              f"| {med(r[2]['recognise_ms'] for r in rows):.0f} | {med(r[2]['interrupt_ms'] for r in rows):.0f} "
              f"| {med(r[3] for r in rows):.0f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--alone-minutes", type=float, default=2.0)
    parser.add_argument("--leak", type=float, default=0.15)
    parser.add_argument("--aec", action="store_true")
    parser.add_argument("--skip-gate", action="store_true")
    parser.add_argument("--skip-room", action="store_true")
    args = parser.parse_args()
    stop = piper_stop()
    if not args.skip_gate:
        gate_table(stop)
    if not args.skip_room:
        room_tables(stop, args.trials, args.alone_minutes, args.leak, args.aec)


if __name__ == "__main__":
    main()
