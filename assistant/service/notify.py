"""The systemd notify protocol (sd_notify), written here because it is a few lines.

A `Type=notify` service tells systemd how it is doing by sending newline-separated
`KEY=VALUE` datagrams to the Unix socket named in `NOTIFY_SOCKET` (a path, or an abstract
socket when it starts with `@`). `READY=1` ends start-up (we send it only once the models are
loaded and warm, so dependants never see a half-started assistant), `WATCHDOG=1` proves the
main loop is alive (systemd restarts us when pings stop for `WatchdogSec`), `STATUS=` is the
one-line state `systemctl status` shows, `RELOADING=1` and `STOPPING=1` mark those phases.

Outside systemd (no `NOTIFY_SOCKET`) every call is a cheap no-op, so the same code runs from a
terminal. A failing send is logged once and never raised: the assistant must not die because
the manager's socket went away.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | None:
    """The address to `sendto` for a `NOTIFY_SOCKET` value: `@name` is Linux's abstract
    namespace (a leading NUL byte); only absolute paths and abstract names are valid."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends sd_notify messages to the socket systemd gave us (or does nothing without one)."""

    def __init__(self, notify_socket: str | None = None) -> None:
        """`notify_socket`: the `NOTIFY_SOCKET` value; None reads the environment."""
        raw = os.environ.get("NOTIFY_SOCKET", "") if notify_socket is None else notify_socket
        self.address = socket_address(raw) if raw else None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket; not notifying systemd", raw)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one datagram of `KEY=VALUE` lines; True when it was delivered."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self.address.replace("\0", "@"), exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        """`RELOADING=1` with the CLOCK_MONOTONIC timestamp systemd (>= 253) requires with it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading commands")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to ping, in seconds: half of `WATCHDOG_USEC` (systemd's own advice), or None
    when the watchdog is off or meant for another process (`WATCHDOG_PID` names someone else)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1e6 / 2


LivenessCheck = Callable[[], str | None]
"""Returns None when its part is alive, else a short reason (logged, and pings stop)."""


class Watchdog:
    """Pings systemd from the main loop, but only while every liveness check passes.

    The pings come from the thread that supervises everything; each `tick()` first asks the
    checks (e.g. "the listen loop consumed audio recently"). A stuck part therefore stops the
    pings, and systemd kills and restarts the service after `WatchdogSec`, which is the point.
    """

    def __init__(self, notifier: Notifier, interval: float | None, checks: Sequence[LivenessCheck] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.interval = interval
        self.checks = list(checks)
        self._clock = clock
        self._last_ping = float("-inf")
        self.failing: str | None = None

    @property
    def enabled(self) -> bool:
        return self.interval is not None and self.notifier.enabled

    def tick(self) -> bool:
        """Ping if due and healthy; True when a ping was sent."""
        if not self.enabled:
            return False
        reason = self._first_failure()
        if reason is not None:
            if reason != self.failing:
                log.error("watchdog: %s; no longer pinging systemd (it will restart the service)", reason)
            self.failing = reason
            return False
        if self.failing is not None:
            log.info("watchdog: healthy again")
            self.failing = None
        now = self._clock()
        assert self.interval is not None
        if now - self._last_ping < self.interval:
            return False
        self._last_ping = now
        return self.notifier.watchdog()

    def _first_failure(self) -> str | None:
        for check in self.checks:
            try:
                reason = check()
            except Exception as exc:  # noqa: BLE001 - a broken check counts as unhealthy, loudly
                reason = f"liveness check failed: {type(exc).__name__}: {exc}"
            if reason:
                return reason
        return None
