"""Listening benchmark.  Run: .venv/bin/python bench/listen.py [--quick] [--recognition free,guided]

Default: the spoken benchmark set (bench/speechset.py: commands of commands.yaml and of the test
fixture grammar, chatter, near-misses and noise, five voices, clean and white/babble noise at 10
and 5 dB SNR; never used by the tests) through the real `ListenLoop` (webrtcvad segmenter ->
Whisper tiny.en -> matcher), one loop per clip, with a recorder in place of the handlers (the
benchmark must not start timers or switch lights; the handler's own time is not measured).
Printed, per condition and recognition path: correct action (intent and every slot) %, wrong
action %, nothing %, Whisper ms per command (median / p90), how often the second pass ran, end of
speech -> handler start (silence window included); for chatter, near-misses and noise how often
anything fired; per voice; "stop"; then a subset streamed at the pace of speech (complete
commands, and commands with a 0.5 s pause inside, which must come out whole) with the measured
end of speech -> handler start; CPU per second of audio and peak RSS. `--json` keeps every
clip's outcome.

`--recognition free,guided` runs each path on every clip in turn (interleaved, so the load on
this shared machine slows both alike) and prints them side by side. The path is handed to the
recognizer as `RecognizerSettings(recognition=...)` once that option exists (issue 10); until then only
`free` (today's policy: short-context pass, full window when not exactly a command) runs, and
asking for `guided` says so and exits.

`--committed`: the older comparison on the committed test speech (tests/audio): openai-whisper's
`transcribe()` (the ~420 ms baseline) against our full-window decoding, the short-context pass
alone and the loop's two passes, with intent matching, VAD cost and end of speech -> handler
start through the whole loop (silence excluded) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

AUDIO = ROOT / "tests" / "audio"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def cut(name: str) -> list:
    from assistant.audio import WavFileSource
    from assistant.vad import VadSegmenter

    segmenter = VadSegmenter()
    found = [s for frame in WavFileSource(AUDIO / name).frames() if (s := segmenter.feed(frame))]
    last = segmenter.flush()
    return found + ([last] if last else [])


def spoken_commands(commands) -> list[tuple[str, object, tuple]]:
    """(said, segment, expected (intent, slots)) for every command segment of the committed speech."""
    manifest = json.loads((AUDIO / "manifest.json").read_text())["files"]
    out = []
    for name, info in manifest.items():
        if info["kind"] == "command":
            said = [info["text"]]
        elif info["kind"] == "long":
            said = [part["text"] for part in info["segments"]]
        else:
            continue
        for text, segment in zip(said, cut(name)):
            match = commands.match(text)
            if match is not None:
                out.append((text, segment, (match.intent, match.slots)))
    return out


def vad_cost() -> tuple[float, float]:
    from assistant.audio import WavFileSource
    from assistant.vad import VadSegmenter

    frames = list(WavFileSource(AUDIO / "long_mixed.wav").frames())
    seconds = len(frames) * 0.03
    best = float("inf")
    for _ in range(3):
        segmenter = VadSegmenter()
        started = time.perf_counter()
        for frame in frames:
            segmenter.feed(frame)
        best = min(best, time.perf_counter() - started)
    return best * 1000 / seconds, seconds


def committed(args: argparse.Namespace) -> int:
    """The committed-speech comparison of Whisper decodings (the README's "Listening" numbers)."""
    os.environ.setdefault("ASSISTANT_HOME", tempfile.mkdtemp(prefix="assistant-bench-"))

    import torch
    import whisper

    from assistant.asr import WhisperASR, WhisperSettings
    from assistant.asr.weights import fetch_whisper
    from assistant.handlers import Dispatcher
    from assistant.intents import load_commands
    from assistant.asr.recognizer import Recognizer
    from assistant.loop import ListenLoop

    commands = load_commands(ROOT / "commands.yaml")
    checkpoint = fetch_whisper()
    clips = spoken_commands(commands)
    vad_ms_per_s, vad_seconds = vad_cost()

    asr = WhisperASR(WhisperSettings(model=str(checkpoint), device="cpu"))
    probe = Recognizer(asr, commands)
    prompt = probe.prompt
    baseline_model = whisper.load_model(str(checkpoint), device="cpu")

    def baseline(segment) -> tuple[str, float]:
        started = time.perf_counter()
        text = baseline_model.transcribe(segment.audio, language="en", fp16=False, temperature=0.0,
                                         condition_on_previous_text=False, without_timestamps=True)["text"]
        return text.strip(), (time.perf_counter() - started) * 1000

    def one_pass(short: bool, use_prompt: bool):
        def run(segment) -> tuple[str, float]:
            result = asr.transcribe(segment.audio, prompt=prompt if use_prompt else None, short_context=short)
            return result.text, result.duration_ms
        return run

    second_passes = 0

    def two_passes(segment) -> tuple[str, float]:
        nonlocal second_passes
        result = probe.recognize(segment.audio)
        second_passes += result.passes - 1
        return result.text, result.asr_ms

    configs = [
        ("openai-whisper `transcribe()` (baseline)", baseline),
        ("ours, full 30 s window (the second pass)", one_pass(False, False)),
        ("ours, short context + vocabulary prompt alone", one_pass(True, True)),
        ("**listen loop: short pass, full window when not exactly a command**", two_passes),
    ]
    baseline(clips[0][1])  # warm the baseline like the resident model was warmed
    # Interleaved (each clip through every configuration in turn), so that other work on this
    # shared machine slows all configurations alike instead of whichever ran at that moment.
    times: dict[str, list[float]] = {label: [] for label, _ in configs}
    right: dict[str, int] = {label: 0 for label, _ in configs}
    match_ms: list[float] = []
    for round_index in range(args.rounds):
        for _, segment, expected in clips:
            for label, run in configs:
                text, ms = run(segment)
                times[label].append(ms)
                if round_index == 0:
                    started = time.perf_counter()
                    match = commands.match(text) if text else None
                    match_ms.append((time.perf_counter() - started) * 1000)
                    right[label] += (match.intent, match.slots) == expected if match else 0
    rows = [(label, statistics.median(times[label]), percentile(times[label], 95), right[label]) for label, _ in configs]

    latencies: list[float] = []
    asr_in_loop: list[float] = []
    for name in sorted(p.name for p in AUDIO.glob("*.wav") if p.name not in ("long_mixed.wav", "silence.wav", "noise.wav")):
        from assistant.audio import WavFileSource

        dispatcher = Dispatcher(commands, announce=lambda text: None)
        loop = ListenLoop(WavFileSource(AUDIO / name), Recognizer(asr, commands), dispatcher, speak=lambda text: None,
                          on_event=lambda event: None)
        loop.run()
        dispatcher.close()
        latencies += loop.stats.latency_ms
        asr_in_loop += loop.stats.asr_ms
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    base = rows[0][1]
    print(f"Listening: {len(clips)} spoken commands (Piper voice, 0.4-1.5 s of speech each, cut by the VAD), "
          f"Whisper tiny.en on CPU ({torch.get_num_threads()} threads), {args.rounds} rounds")
    print()
    print("| Whisper decoding | median ms per command | p95 ms | vs baseline | right intent + slots |")
    print("|---|---:|---:|---:|---:|")
    for label, median, p95, right in rows:
        print(f"| {label} | {median:.0f} | {p95:.0f} | {median / base:.2f}x | {right}/{len(clips)} |")
    print()
    print(f"The two-pass loop decoded {second_passes} of {len(clips) * args.rounds} commands a second time.")
    print()
    print("| stage | value |")
    print("|---|---:|")
    print(f"| VAD + segmenter per second of audio ({vad_seconds:.0f} s file) | {vad_ms_per_s:.3f} ms |")
    print(f"| intent match per transcript (median / p95) | {statistics.median(match_ms):.2f} / {percentile(match_ms, 95):.2f} ms |")
    print(f"| end of speech -> handler start, whole loop, default settings (median / p95, {len(latencies)} commands) "
          f"| {statistics.median(latencies):.0f} / {percentile(latencies, 95):.0f} ms |")
    print(f"| of which Whisper (median) | {statistics.median(asr_in_loop):.0f} ms |")
    print("| silence that confirms the end of speech (excluded above) | 720 ms |")
    print(f"| peak RSS (tiny.en loaded twice: ours and the baseline's) | {peak_rss_mb:.0f} MiB |")
    return 0

# -- the spoken benchmark set -------------------------------------------------------------------

RECOGNITIONS = ("free", "guided")
FRAME_S = 0.03


def recognizer_settings(recognition: str):
    """The recognizer's settings for a recognition path ("free" or "guided")."""
    from assistant.asr.recognizer import RecognizerSettings

    return RecognizerSettings(recognition=recognition)


class ClipSource:
    """A clip as 30 ms frames. `realtime`: each frame is handed over when its last sample would
    have been heard (as a microphone does), so times measured against `started` are what a
    speaker waits. `delivered` counts the frames handed over (read when the segmenter closes a
    segment, it gives the stream second of the close)."""

    def __init__(self, audio: np.ndarray, realtime: bool) -> None:
        from assistant.audio import float_to_pcm16

        self.realtime = realtime
        self.state = "open"
        self.delivered = 0
        self.started = 0.0
        self._pcm = float_to_pcm16(audio)
        self._closed = threading.Event()

    def frames(self):
        from assistant.audio.sources import split_frames

        self.started = time.perf_counter()
        for index, frame in enumerate(split_frames(self._pcm)):
            if self.realtime:
                delay = self.started + (index + 1) * FRAME_S - time.perf_counter()
                if delay > 0 and self._closed.wait(delay):
                    return
            if self._closed.is_set():
                return
            self.delivered = index + 1
            yield frame
        self.state = "closed"

    def close(self) -> None:
        self._closed.set()
        self.state = "closed"


class RecordingDispatcher:
    """Stands in for the handlers: notes which action would start and when, runs nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, dict, tuple | None]] = []
        self.segment: tuple | None = None  # (start, end) of the segment being recognised

    def handle(self, match):
        from assistant.handlers.dispatcher import HandlerOutcome

        self.calls.append((time.perf_counter(), match.intent, dict(match.slots), self.segment))
        return HandlerOutcome(intent=match.intent, ok=True, reply=None, error=None)

    def confirmation(self, match) -> None:
        """No question: a risky command (`confirm:`) counts as the action it would ask about."""
        return None


def _folded(slots: dict) -> dict:
    return {k: " ".join(v.casefold().strip(" .,!?").split()) if isinstance(v, str) else v for k, v in slots.items()}


def score(actions: list[tuple[str, dict]], expected: tuple[str, dict] | None) -> str:
    """"correct" (exactly the expected action, once), "wrong" (any other action) or "none".

    Text slots are compared as the handlers use them, case and edge punctuation aside: the
    shopping list stores "orange juice" whether Whisper wrote "Orange juice" or "orange juice"."""
    if not actions:
        return "none"
    if expected is not None and len(actions) == 1:
        (intent, slots), (want, want_slots) = actions[0], expected
        if intent == want and _folded(slots) == _folded(want_slots):
            return "correct"
    return "wrong"


def run_clip(item, asr, commands, recognition: str, realtime: bool) -> dict:
    """One clip through a fresh ListenLoop: what fired, Whisper time, end of speech -> handler."""
    from assistant.asr.recognizer import Recognizer
    from assistant.loop import ListenLoop

    source = ClipSource(item.audio(), realtime)
    dispatcher = RecordingDispatcher()
    closed_at: dict[tuple, float] = {}  # segment (start, end) -> stream second it was closed
    transcripts: list[str] = []
    latencies: dict[tuple, float] = {}
    early: dict[tuple, bool] = {}  # closed at the first pause as a complete command (issue 11)

    def on_event(event: dict) -> None:
        kind = event["event"]
        if kind == "speech":  # capture thread, right after the frame that closed the segment
            closed_at[(event["start"], event["end"])] = source.delivered * FRAME_S
        elif kind == "transcript":  # worker thread, before the intent of the same segment
            dispatcher.segment = (event["start"], event["end"])
            transcripts.append(event["text"])
        elif kind == "intent":
            latencies[dispatcher.segment] = event["latency_ms"]
            early[dispatcher.segment] = bool(event.get("early", False))

    recognizer = Recognizer(asr, commands, recognizer_settings(recognition))
    loop = ListenLoop(source, recognizer, dispatcher, on_event=on_event)
    cpu = time.process_time()
    loop.run()
    cpu = time.process_time() - cpu
    actions = [(intent, slots) for _, intent, slots, _ in dispatcher.calls]
    expected = (item.plan.intent, item.plan.slots) if item.plan.intent else None
    verdict = score(actions, expected)
    eos: list[float] = []
    for when, _, _, segment in dispatcher.calls:
        if realtime:  # measured: handler start - the moment the last word ended
            eos.append((when - source.started - item.speech_end) * 1000)
        elif segment in closed_at and not early.get(segment):
            # stream time from the last word to the close + the loop's own latency; a command closed
            # early at a pause closes when the worker says so, which only real time can show
            eos.append((closed_at[segment] - item.speech_end) * 1000 + latencies.get(segment, 0.0))
    return {
        "id": item.plan.id, "kind": item.plan.kind, "condition": item.plan.condition, "voice": item.plan.voice,
        "grammar": item.plan.grammar, "text": item.plan.text, "recognition": recognition, "realtime": realtime,
        "expected": expected, "actions": actions, "verdict": verdict, "transcripts": transcripts,
        "asr_ms": sum(loop.stats.asr_ms) if loop.stats.asr_ms else None, "whisper_runs": len(loop.stats.asr_ms),
        "second_passes": loop.stats.second_passes, "eos_ms": eos,
        "early": sum(early.values()), "cpu_s": cpu, "audio_s": item.seconds,
        "errors": loop.stats.errors,
    }


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else "-"


def _ms(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.0f} / {percentile(values, 90):.0f}" if values else "-"


def command_row(label: str, recognition: str, rows: list[dict]) -> str:
    n = len(rows)
    count = {v: sum(r["verdict"] == v for r in rows) for v in ("correct", "wrong", "none")}
    asr = [r["asr_ms"] for r in rows if r["asr_ms"] is not None]
    second = sum(r["second_passes"] > 0 for r in rows)
    eos = [r["eos_ms"][0] for r in rows if r["verdict"] == "correct" and r["eos_ms"]]
    return (f"| {label} | {recognition} | {n} | {_pct(count['correct'], n)} | {_pct(count['wrong'], n)} | "
            f"{_pct(count['none'], n)} | {_ms(asr)} | {_pct(second, len(asr))} | {_ms(eos)} |")


COMMAND_HEADER = ("| condition | recognition | commands | correct action % | wrong action % | nothing % "
                  "| Whisper ms median / p90 | second pass % | end of speech -> handler ms median / p90 |\n"
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|")


def report(results: list[dict], recognitions: list[str], args: argparse.Namespace, items: list, started: float,
           listen_rss: dict[str, tuple[float, int, int]]) -> None:
    import torch

    from bench import speechset

    fast = [r for r in results if not r["realtime"]]
    paced = [r for r in results if r["realtime"]]
    by = lambda rows, **want: [r for r in rows if all(r[k] == v for k, v in want.items())]  # noqa: E731
    n_commands = len({r["id"].rsplit("-", 1)[0] for r in fast if r["kind"] == "command"})
    load = os.getloadavg()
    print(f"Listening on the spoken benchmark set ({'quick' if args.quick else 'full'}: {len(items)} clips, "
          f"{sum(i.seconds for i in items) / 60:.1f} min of audio; {n_commands} distinct spoken commands in "
          f"{len(speechset.COMMAND_CONDITIONS)} conditions), Whisper tiny.en on CPU ({torch.get_num_threads()} threads), "
          f"one ListenLoop per clip, default segmenter (0.7 s silence). Load average at the end "
          f"{load[0]:.1f} / {load[1]:.1f} (a shared 2-core machine: timings are noisy). Run took "
          f"{(time.perf_counter() - started) / 60:.1f} min.")
    print()
    print("Commands, per condition (end of speech -> handler: the silence that closes the command "
          "included; estimated from stream time + the loop's latency, clips fed flat out; commands closed "
          "early at a pause are timed only in real time, below):")
    print()
    print(COMMAND_HEADER)
    for condition in speechset.COMMAND_CONDITIONS:
        for recognition in recognitions:
            print(command_row(condition, recognition, by(fast, kind="command", condition=condition, recognition=recognition)))
    for recognition in recognitions:
        noisy = [r for r in by(fast, kind="command", recognition=recognition) if r["condition"] != speechset.CLEAN]
        print(command_row("**all noisy**", recognition, noisy))
    print()
    print("Not commands (anything that fires is a wrong action):")
    print()
    print("| set | condition | recognition | clips | fired % | Whisper ms median / p90 | transcribed % |")
    print("|---|---|---|---:|---:|---:|---:|")
    for kind in ("chatter", "near-miss"):
        for condition in speechset.OTHER_CONDITIONS:
            for recognition in recognitions:
                rows = by(fast, kind=kind, condition=condition, recognition=recognition)
                fired = sum(r["verdict"] == "wrong" for r in rows)
                heard = sum(bool(r["transcripts"]) for r in rows)
                print(f"| {kind} | {condition} | {recognition} | {len(rows)} | {_pct(fired, len(rows))} | "
                      f"{_ms([r['asr_ms'] for r in rows])} | {_pct(heard, len(rows))} |")
    for recognition in recognitions:
        rows = by(fast, kind="noise", recognition=recognition)
        fired = sum(r["verdict"] == "wrong" for r in rows)
        heard = sum(bool(r["transcripts"]) for r in rows)
        print(f"| noise alone | white, babble at -40/-30/-20 dBFS | {recognition} | {len(rows)} | "
              f"{_pct(fired, len(rows))} | {_ms([r['asr_ms'] for r in rows])} | {_pct(heard, len(rows))} |")
    print()
    print("Commands per voice (all conditions):")
    print()
    print(COMMAND_HEADER.replace("| condition |", "| voice |", 1))
    for voice in [v.name for v in speechset.VOICES]:
        for recognition in recognitions:
            print(command_row(voice, recognition, by(fast, kind="command", voice=voice, recognition=recognition)))
    print()
    print('"stop" (one per voice):')
    print()
    print(COMMAND_HEADER.replace("| condition |", '| "stop" |', 1))
    for label, want in (("clean", {"condition": speechset.CLEAN}), ("all conditions", {})):
        for recognition in recognitions:
            rows = [r for r in by(fast, kind="command", recognition=recognition, **want) if r["text"] == "stop"]
            print(command_row(label, recognition, rows))
    print()
    print("Streamed at the pace of speech (measured: the moment the last word ended -> handler start):")
    print()
    print("| clips | recognition | n | correct action % | wrong % | nothing % | end of speech -> handler ms "
          "median / p90 | max | closed early at a pause % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, label in (("command", "complete commands (clean)"), ("pause", "commands with a 0.5 s pause inside")):
        for recognition in recognitions:
            rows = by(paced, kind=kind, recognition=recognition)
            n = len(rows)
            eos = [r["eos_ms"][0] for r in rows if r["verdict"] == "correct" and r["eos_ms"]]
            closed_early = sum(r["early"] > 0 for r in rows)
            count = {v: sum(r["verdict"] == v for r in rows) for v in ("correct", "wrong", "none")}
            print(f"| {label} | {recognition} | {n} | {_pct(count['correct'], n)} | {_pct(count['wrong'], n)} | "
                  f"{_pct(count['none'], n)} | {_ms(eos)} | {max(eos) if eos else float('nan'):.0f} | "
                  f"{_pct(closed_early, n)} |")
    print()
    print("| cost | recognition | value |")
    print("|---|---|---:|")
    for recognition in recognitions:
        rows = by(fast, recognition=recognition)
        cpu, audio = sum(r["cpu_s"] for r in rows), sum(r["audio_s"] for r in rows)
        print(f"| CPU seconds per second of audio (clips fed flat out, whole process) | {recognition} | "
              f"{cpu / audio:.3f} |")
    for recognition, (rss_mb, fired, played) in sorted(listen_rss.items()):
        print(f"| peak RSS of `assistant listen --input` over the {played} clean commands.yaml clips in one file "
              f"(its own process; {fired} actions fired) | {recognition} | {rss_mb:.0f} MiB |")
    print(f"| peak RSS of this benchmark process (one Whisper; a loop and its thread per clip) | all | "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB |")
    print(f"| loop errors | all | {sum(r['errors'] for r in results)} |")


PEAK_RSS_WRAPPER = """
import sys
from assistant.cli import main
try:
    code = main(sys.argv[1:])
finally:
    peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(f"VmHWM_KB {peak}", file=sys.stderr)
sys.exit(code)
"""
"""Runs the CLI and reports its own peak RSS from /proc (the kernel's high-water mark of this
program's memory). getrusage(RUSAGE_CHILDREN) would not do: a child's ru_maxrss starts from
the parent's size at fork and survives exec."""


def assistant_listen_rss(items: list, checkpoint: Path, recognition: str) -> tuple[float, int, int]:
    """(peak RSS MiB, actions fired, clips) of `assistant listen` in a child process over the clean
    commands.yaml clips joined into one WAV: the process users run, with its one worker thread
    (this benchmark's own RSS also carries a loop and a thread per clip)."""
    import subprocess

    from assistant.audio import write_wav

    clips = [i for i in items if i.plan.kind == "command" and i.plan.condition == "clean" and i.plan.grammar == "commands"]
    with tempfile.TemporaryDirectory(prefix="assistant-bench-rss-") as folder:
        wav = Path(folder) / "commands.wav"
        write_wav(wav, np.concatenate([clip.audio() for clip in clips]), 16000)
        command = [sys.executable, "-c", PEAK_RSS_WRAPPER, "listen", "--input", str(wav), "--model", str(checkpoint),
                   "--compute-device", "cpu", "--commands", str(ROOT / "commands.yaml"), "--no-speak", "--events", "jsonl",
                   "--recognition", recognition]
        env = {**os.environ, "ASSISTANT_HOME": folder, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    peaks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("VmHWM_KB ")]
    if done.returncode != 0 or not peaks:
        raise RuntimeError(f"assistant listen failed ({done.returncode}): {done.stderr[-2000:]}")
    fired = sum(json.loads(line).get("event") == "intent" for line in done.stdout.splitlines() if line.startswith("{"))
    return int(peaks[-1]) / 1024, fired, len(clips)


def speech_set(args: argparse.Namespace) -> int:
    """The spoken benchmark set through the listen loop (see the module docstring)."""
    import subprocess

    from bench import speechset

    recognitions = [r.strip() for r in args.recognition.split(",") if r.strip()]
    unknown = [r for r in recognitions if r not in RECOGNITIONS]
    if unknown or not recognitions:
        raise SystemExit(f"--recognition takes {', '.join(RECOGNITIONS)} (comma-separated), got {args.recognition!r}")
    for recognition in recognitions:
        recognizer_settings(recognition)  # refuses "guided" before anything heavy is loaded, while it does not exist
    sizes = speechset.QUICK if args.quick else speechset.FULL
    if not (speechset.cached_folder(sizes) / "manifest.json").is_file():
        # built in a child process: Piper loaded here would count in this process's peak RSS
        subprocess.run([sys.executable, str(ROOT / "bench" / "speechset.py")] + (["--quick"] if args.quick else []),
                       check=True)
    items = speechset.build(sizes)
    # a persistent home: tiny.en is converted once (in a child: the conversion's peak is not ours)
    os.environ.setdefault("ASSISTANT_HOME", str(ROOT / "bench" / ".cache" / "home"))
    checkpoint = Path(subprocess.run(
        [sys.executable, "-c", "from assistant.asr.weights import fetch_whisper; print(fetch_whisper())"],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.strip().splitlines()[-1])

    from assistant.asr import WhisperASR, WhisperSettings

    grammars = speechset.load_grammars()
    asr = WhisperASR(WhisperSettings(model=str(checkpoint), device="cpu"))
    started = time.perf_counter()
    results: list[dict] = []
    fast = [i for i in items if i.plan.kind != "pause"] if not args.realtime_only else []
    paced = [i for i in items if i.plan.realtime] if not args.no_realtime else []
    total = (len(fast) + len(paced)) * len(recognitions)
    for realtime, clips in ((False, fast), (True, paced)):
        for item in clips:
            for recognition in recognitions:
                results.append(run_clip(item, asr, grammars[item.plan.grammar], recognition, realtime))
                if len(results) % 25 == 0:
                    print(f"  {len(results)}/{total} clips, {(time.perf_counter() - started) / 60:.1f} min",
                          file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    listen_rss = {recognition: assistant_listen_rss(items, checkpoint, recognition) for recognition in recognitions}
    report(results, recognitions, args, items, started, listen_rss)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small set (~140 clips instead of ~380)")
    parser.add_argument("--recognition", default="free",
                        help="recognition paths, comma-separated: free, guided (guided once the loop has it)")
    parser.add_argument("--no-realtime", action="store_true", help="skip the clips streamed at the pace of speech")
    parser.add_argument("--realtime-only", action="store_true", help="only the clips streamed at the pace of speech")
    parser.add_argument("--json", metavar="PATH", help="write every clip's outcome here")
    parser.add_argument("--committed", action="store_true",
                        help="the older comparison of Whisper decodings on the committed test speech")
    parser.add_argument("--rounds", type=int, default=1, help="--committed: passes over the commands per configuration")
    args = parser.parse_args(argv)
    return committed(args) if args.committed else speech_set(args)


if __name__ == "__main__":
    raise SystemExit(main())
