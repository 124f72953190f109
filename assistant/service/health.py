"""What `/v1/health` reports: one object every part of the service writes its state into.

Kept apart from the HTTP code so the main loop, the listen loop's event callback, the reloader
and the API all record into the same place without knowing about each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class ErrorRecord:
    stage: str
    message: str
    at: str  # ISO 8601, UTC

    def to_json(self) -> dict[str, str]:
        return {"stage": self.stage, "message": self.message, "at": self.at}


class ServiceState:
    """Thread-safe state of a running service."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self.phase = "starting"
        """starting -> ready (-> reloading -> ready)* -> stopping."""
        self.models: dict[str, dict[str, Any]] = {}
        self.source: Any = None
        """The audio source (its `.state`: open, reopening, closed), None without a microphone."""
        self.source_kind = "none"
        self.microphone_error: str | None = None
        """Why the microphone could not be opened (the service retries), None when it could."""
        self.loop_running = False
        self.loop_restarts = 0
        self.commands_path = ""
        self.commands_count = 0
        self.reload_error: str | None = None
        self.store: Any = None
        """The durable store (`assistant.store.Store`), None when it could not be opened."""
        self.store_error: str | None = None
        """Why the store could not be opened (timers then last only as long as the process)."""
        self.speech: Any = None
        """The service's Speech (its `replies_report()`: pre-rendered, self-checked, failed)."""
        self._last_error: ErrorRecord | None = None
        self.errors = 0

    def uptime(self) -> float:
        return self._clock() - self._started

    def record_error(self, stage: str, message: str) -> None:
        record = ErrorRecord(stage, message, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        with self._lock:
            self._last_error = record
            self.errors += 1

    @property
    def last_error(self) -> ErrorRecord | None:
        with self._lock:
            return self._last_error

    def microphone_state(self) -> str:
        if self.microphone_error is not None:
            return "missing"
        if self.source is None:
            return "none"
        return str(getattr(self.source, "state", "unknown"))

    def status(self) -> str:
        if self.phase in ("starting", "stopping"):
            return self.phase
        degraded = (
            self.microphone_state() not in ("open", "none", "closed")
            or (self.source is not None and not self.loop_running and self.source_kind == "microphone")
            or self.reload_error is not None
            or self.store_error is not None
            or bool(self.store is not None and self.store.problems)
        )
        return "degraded" if degraded else "ok"

    def to_json(self) -> dict[str, Any]:
        last = self.last_error
        return {
            "status": self.status(),
            "phase": self.phase,
            "uptime_seconds": round(self.uptime(), 1),
            "models": {name: dict(info) for name, info in self.models.items()},
            "microphone": {"source": self.source_kind, "state": self.microphone_state(),
                           **({"error": self.microphone_error} if self.microphone_error else {})},
            "listen_loop": {"running": self.loop_running, "restarts": self.loop_restarts},
            "commands": {"path": self.commands_path, "intents": self.commands_count, "last_error": self.reload_error},
            "state": self.store.health() if self.store is not None else {"path": None, "error": self.store_error},
            "replies": (self.speech.replies_report() if self.speech is not None
                        else {"prerendered": 0, "checked": 0, "failed": []}),
            "last_error": last.to_json() if last else None,
            "errors": self.errors,
        }
