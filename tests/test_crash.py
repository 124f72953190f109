"""Crash tests: a real `assistant serve` killed with SIGKILL in the middle of its writes.

Each round starts the service on the same data folder, sets timers, adds shopping-list items
and renders replies (reply-cache writes) from several client threads at once, kills the process
at a random moment, then checks before and after the next start: the state file opens without
being set aside, every timer and item a reply acknowledged is there, and every reply a
`/v1/speak` answer completed is a readable cache entry. The service runs without Whisper
(`--no-mic --no-transcribe`) and with espeak-ng, so a start takes a couple of seconds.

ASSISTANT_CRASH_ROUNDS=40 runs a longer series (docs/reliability.md gives the suite's 4-kill figures).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from assistant.store import Store
from assistant.tts.base import Audio
from assistant.tts.cache import ReplyCache
from assistant.tts.speech import Speech, SpeechSettings

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("ASSISTANT_CRASH_ROUNDS", "4"))

pytestmark = [pytest.mark.timeout(60 + 30 * ROUNDS),
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")]


def start(home: Path, notify: Path) -> tuple[subprocess.Popen, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.unlink(missing_ok=True)
    sock.bind(str(notify))
    sock.settimeout(60)
    env = {**os.environ, "ASSISTANT_HOME": str(home), "NOTIFY_SOCKET": str(notify), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--no-mic", "--no-transcribe", "--no-speak", "--port", "0",
         "--engine", "espeak", "--commands", str(ROOT / "commands.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            message = sock.recv(4096).decode()
            found = re.search(r"STATUS=.*API (http://\S+)", message)
            if "READY=1" in message and found:
                return proc, found.group(1)
    except BaseException:
        proc.kill()
        raise
    finally:
        sock.close()


def post(url: str, payload: dict) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


class Load:
    """Client threads writing through the service; `acked` holds what a complete reply confirmed."""

    def __init__(self, url: str, round_no: int) -> None:
        self.url = url
        self.round = round_no
        self.stop = threading.Event()
        self.acked: dict[str, set] = {"timers": set(), "items": set(), "speak": set()}
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(kind,), daemon=True) for kind in self.acked]

    def _run(self, kind: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                if kind == "timers":
                    minutes = (self.round * 37 + n) % 170 + 10
                    _, body = post(self.url + "/v1/intent", {"text": f"set a timer for {minutes} minutes", "run": True})
                    if json.loads(body)["outcome"]["reply"] == f"Timer set for {minutes} minutes.":
                        self._ack(kind, minutes)
                elif kind == "items":
                    item = f"thing{self.round}x{n}"
                    _, body = post(self.url + "/v1/intent", {"text": f"add {item} to my shopping list", "run": True})
                    if json.loads(body)["outcome"]["reply"] == f"Added {item} to your shopping list.":
                        self._ack(kind, item)
                else:
                    text = f"Crash round {self.round}, reply {n}."
                    status, body = post(self.url + "/v1/speak", {"text": text})
                    if status == 200 and Audio.from_wav_bytes(body).samples.size:
                        self._ack(kind, text)
            except (OSError, urllib.error.URLError, ValueError):
                return  # the service was killed mid-request: that request was never acknowledged

    def _ack(self, kind: str, value: object) -> None:
        with self._lock:
            self.acked[kind].add(value)


def reply_key(text: str, cache: ReplyCache):
    """The cache key the service uses for `text` (same settings as `serve --engine espeak`)."""
    speech = Speech(SpeechSettings(engine="espeak"), cache=cache)
    return next(speech._candidates(text, None, None))[3]


def test_kill_9_during_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    home, notify = tmp_path / "home", tmp_path / "notify.sock"
    state = home / "data" / "state.sqlite3"
    cache = ReplyCache(root=home / "cache" / "replies")
    rng = random.Random(14)
    pending_timers: set[int] = set()
    items: set[str] = set()
    spoken: set[str] = set()
    timers_acked = 0
    proc, url = start(home, notify)
    try:
        for round_no in range(ROUNDS):
            load = Load(url, round_no)
            for thread in load.threads:
                thread.start()
            time.sleep(rng.uniform(0.3, 2.0))  # a random point in the stream of writes
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            load.stop.set()
            for thread in load.threads:
                thread.join(30)
            assert all(load.acked.values()), f"round {round_no}: some kind of write never completed: {load.acked}"
            pending_timers |= load.acked["timers"]
            timers_acked += len(load.acked["timers"])
            items |= load.acked["items"]
            spoken |= load.acked["speak"]

            # the files as the kill left them: the store opens without setting anything aside
            store = Store(state)
            assert store.problems == []
            assert {int(t.label.split()[0]) for t in store.timers()} >= pending_timers
            assert set(store.transact("shopping").value or []) >= items
            store.close()
            for entry in cache.root.glob("[0-9a-f]*.wav"):
                Audio.from_wav_bytes(entry.read_bytes())  # every entry under a real name is whole
            for text in spoken:
                assert reply_key(text, cache) in cache, f"acknowledged reply {text!r} is not cached"

            proc, url = start(home, notify)
            health = json.loads(urllib.request.urlopen(url + "/v1/health", timeout=30).read())
            assert health["state"]["set_aside"] == [] and health["status"] == "ok"
            labels = {int(t["label"].split()[0]) for t in json.loads(urllib.request.urlopen(url + "/v1/timers", timeout=30).read())["timers"]}
            assert labels >= pending_timers  # restored and scheduled again
            reply = json.loads(post(url + "/v1/intent", {"text": "what's on my shopping list", "run": True})[1])["outcome"]["reply"]
            assert all(item in reply for item in items)
            # keep the timer set small: cancel (acknowledged), so the next rounds start clean
            reply = json.loads(post(url + "/v1/intent", {"text": "cancel all timers", "run": True})[1])["outcome"]["reply"]
            assert "cancelled" in reply
            pending_timers.clear()
        print(f"\ncrash rounds: {ROUNDS}; acknowledged writes all found: timers {timers_acked}, shopping items "
              f"{len(items)}, replies cached {len(spoken)}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in stderr, stderr[-3000:]
