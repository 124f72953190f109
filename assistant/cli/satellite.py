"""`assistant satellite`: this machine's microphone and speaker, the central assistant's models.

Light on purpose: it imports no torch, Whisper or Tortoise (the central `assistant serve
--wyoming` has them), so it runs on a small machine. `--events jsonl` prints one JSON object per
line on stdout (logs stay on stderr).
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("satellite", help="send what this microphone hears to a central assistant over Wyoming")
    parser.add_argument("--server", required=True, metavar="URI",
                        help="the central `assistant serve --wyoming`: tcp://HOST:PORT (e.g. tcp://192.168.1.5:10300)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="FILE.wav", help="send the commands in this WAV file, then exit")
    source.add_argument("--mic", metavar="DEVICE", help="microphone: index or part of its name (default: the system's)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--speak-to", metavar="FILE.wav", help="write the replies to this WAV file")
    output.add_argument("--output-device", metavar="DEVICE", help="speaker: index or part of its name")
    parser.add_argument("--free", action="store_true", help="free transcription instead of recognition guided by the commands")
    parser.add_argument("--events", choices=("text", "jsonl"), default="text", help="event output on stdout")
    parser.set_defaults(func=_satellite)


def _printer(kind: str):
    def show(event: dict) -> None:
        if kind == "jsonl":
            print(json.dumps(event), flush=True)
        elif event.get("event") == "exchange":
            outcome = event["error"] or (f"-> {event['reply']}" if event["reply"] else "(no reply)")
            print(f"{event['start']:7.2f}s  {event['transcript']!r} {outcome}", flush=True)
        elif event.get("event") in ("connected", "timer-started", "timer-finished", "timer-cancelled", "done"):
            print(" ".join(f"{k}={v}" for k, v in event.items()), flush=True)

    return show


def peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike getrusage's ru_maxrss,
    which keeps the parent's peak across fork and exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _satellite(args: argparse.Namespace) -> int:
    from assistant.audio import AudioDeviceError, AudioFormatError, open_source
    from assistant.playback import DevicePlayer, FileSink, PlaybackUnavailable
    from assistant.satellite import Satellite, SatelliteSettings

    if not args.server.startswith(("tcp://", "unix://")):
        print(f"assistant satellite: --server {args.server!r}: use tcp://HOST:PORT or unix:///PATH", file=sys.stderr)
        return 2
    try:
        source = open_source(args.input, int(args.mic) if args.mic and args.mic.isdigit() else args.mic)
    except (AudioFormatError, AudioDeviceError) as exc:
        print(f"assistant satellite: {exc}", file=sys.stderr)
        return 2
    try:
        if args.speak_to:
            player = FileSink(Path(args.speak_to))
        else:
            device = args.output_device
            player = DevicePlayer(int(device) if device and device.isdigit() else device)
    except PlaybackUnavailable as exc:
        print(f"assistant satellite: {exc} (or pass --speak-to FILE.wav)", file=sys.stderr)
        return 2
    satellite = Satellite(source, player, SatelliteSettings(server=args.server, guided=not args.free),
                          on_event=_printer(args.events))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: satellite.stop())
    failed = satellite.run()
    show = _printer(args.events)
    show({"event": "done", "exchanges": len(satellite.exchanges), "failed": failed, "connections": satellite.connections,
          "max_rss_mib": peak_rss_mib()})
    return 1 if failed else 0
