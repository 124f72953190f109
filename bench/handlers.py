"""Time from a match to its reply, per handler type, on the shipped commands.yaml.

    .venv/bin/python bench/handlers.py [--rounds N]

Prints median and p95 in milliseconds. The `run` row includes starting examples/lightctl
(a Python script: interpreter start-up dominates), the `http` row a request to a local
http.server, the `python` row a call in a worker thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.handlers import Dispatcher  # noqa: E402
from assistant.intents import IntentMatch, load_commands  # noqa: E402


class _Ok(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        return None

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        payload = json.dumps({"state": "on"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def measure(dispatcher: Dispatcher, match: IntentMatch, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        outcome = dispatcher.handle(match)
        times.append((time.perf_counter() - start) * 1000)
        assert outcome.ok, outcome.error
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("ASSISTANT_HOME", tempfile.mkdtemp(prefix="bench-handlers-"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = Path(tempfile.mkdtemp(prefix="bench-handlers-"))
    (folder / "commands.yaml").write_text(
        (ROOT / "commands.yaml").read_text().replace("http://127.0.0.1:8123/", f"http://127.0.0.1:{server.server_address[1]}/")
    )
    (folder / "examples").symlink_to(ROOT / "examples")
    dispatcher = Dispatcher(load_commands(folder / "commands.yaml"))
    cases = [
        ("reply + builtin (time)", IntentMatch("GetTime", {}, "")),
        ("builtin timer_set", IntentMatch("TimerSet", {"minutes": 5}, "")),
        ("python (shopping list add)", IntentMatch("ShoppingListAdd", {"item": "milk"}, "")),
        ("run (examples/lightctl)", IntentMatch("Lights", {"room": "kitchen", "state": "on"}, "")),
        ("http (POST to local server)", IntentMatch("SceneActivate", {"scene": "movie"}, "")),
    ]
    print(f"{'handler':32} {'median ms':>10} {'p95 ms':>10}   ({args.rounds} rounds)")
    for name, match in cases:
        median, p95 = measure(dispatcher, match, args.rounds)
        print(f"{name:32} {median:10.2f} {p95:10.2f}")
    dispatcher.close()
    server.shutdown()


if __name__ == "__main__":
    main()
