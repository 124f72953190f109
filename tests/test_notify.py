"""sd_notify against a real Unix datagram socket, as systemd's manager would listen on it."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from assistant.service.notify import Notifier, Watchdog, socket_address, watchdog_interval


class NotifySocket:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name  # the NOTIFY_SOCKET value

    def messages(self, timeout: float = 0.2) -> list[dict[str, str]]:
        out = []
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
            self.sock.settimeout(0.01)


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield NotifySocket(sock, str(path))
    sock.close()


@pytest.fixture
def abstract_socket():
    name = f"assistant-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield NotifySocket(sock, "@" + name)
    sock.close()


def test_ready_status_stopping_reach_the_socket(notify_socket: NotifySocket) -> None:
    notifier = Notifier(notify_socket.name)
    assert notifier.enabled
    assert notifier.ready("listening; 12 intents")
    assert notifier.status("reloading\ncommands")
    assert notifier.stopping()
    got = notify_socket.messages()
    assert got[0] == {"READY": "1", "STATUS": "listening; 12 intents"}
    assert got[1] == {"STATUS": "reloading commands"}  # one line: systemd shows STATUS as one line
    assert got[2] == {"STOPPING": "1", "STATUS": "stopping"}


def test_reloading_carries_a_monotonic_timestamp(notify_socket: NotifySocket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(notify_socket.name).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    (message,) = notify_socket.messages()
    assert message["RELOADING"] == "1"
    assert before <= int(message["MONOTONIC_USEC"]) <= after


def test_abstract_socket_names(abstract_socket: NotifySocket) -> None:
    assert socket_address("@name") == "\0name"
    assert Notifier(abstract_socket.name).watchdog()
    assert abstract_socket.messages() == [{"WATCHDOG": "1"}]


def test_environment_is_read_when_no_socket_is_given(notify_socket: NotifySocket, monkeypatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.name)
    assert Notifier().ready()
    assert notify_socket.messages() == [{"READY": "1"}]


def test_without_systemd_everything_is_a_quiet_no_op(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.stopping()
    assert not Notifier("relative/path").enabled


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path, caplog) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert sum("cannot notify systemd" in r.message for r in caplog.records) == 1


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=4242) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_watchdog_pings_while_healthy_and_stops_when_a_part_stalls(notify_socket: NotifySocket) -> None:
    """The pings depend on the liveness checks: a stalled loop means no pings, so systemd restarts us."""
    last_progress = [time.monotonic()]

    def loop_alive() -> str | None:
        stalled = time.monotonic() - last_progress[0]
        return f"listen loop stalled for {stalled:.1f} s" if stalled > 0.3 else None

    dog = Watchdog(Notifier(notify_socket.name), interval=0.05, checks=[loop_alive])
    pings = 0
    deadline = time.monotonic() + 0.25
    while time.monotonic() < deadline:
        last_progress[0] = time.monotonic()  # the loop makes progress
        pings += dog.tick()
        time.sleep(0.01)
    assert pings >= 3
    assert len(notify_socket.messages()) == pings
    time.sleep(0.35)  # the loop stops making progress
    for _ in range(20):
        assert not dog.tick()
        time.sleep(0.01)
    assert notify_socket.messages(timeout=0.1) == []
    assert dog.failing and "stalled" in dog.failing
    last_progress[0] = time.monotonic()  # and recovers
    assert dog.tick()
    assert notify_socket.messages() == [{"WATCHDOG": "1"}]


def test_a_crashing_check_counts_as_unhealthy(notify_socket: NotifySocket) -> None:
    def broken() -> str | None:
        raise RuntimeError("boom")

    dog = Watchdog(Notifier(notify_socket.name), interval=0.0, checks=[broken])
    assert not dog.tick()
    assert "boom" in (dog.failing or "")
    assert notify_socket.messages(timeout=0.05) == []
