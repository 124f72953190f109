"""Hot reload of commands.yaml: on file change (polled) and on SIGHUP.

The new file is validated in full by `load_commands` before anything changes; a bad file leaves
the running intents untouched and its `FILE:LINE:COL: message` goes to the log and to health
(`last_error`). Polling (mtime, size, then a sha256 of the content) rather than inotify: one
stat per second costs nothing, needs no dependency, and also sees editors that replace the file
by renaming a new one over it (an inotify watch on the old inode would miss that). A change is
applied only once the file has looked the same on two polls in a row, so a save caught halfway
is not reported as an error.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.intents import CommandsError, CommandSet, load_commands

log = logging.getLogger(__name__)

Fingerprint = tuple[int, int]  # (mtime_ns, size)
Apply = Callable[[CommandSet, CommandSet], None]
"""Called with (new, old) after a successful reload."""


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    reason: str
    error: str | None = None
    intents: int = 0


def _fingerprint(path: Path) -> Fingerprint | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class CommandsReloader:
    """Owns the active CommandSet of a running service and swaps it when the file changes."""

    def __init__(self, path: str | Path, current: CommandSet, *, apply: Sequence[Apply] = (),
                 load: Callable[[Path], CommandSet] = load_commands,
                 on_result: Callable[[ReloadResult], None] | None = None) -> None:
        """`apply`: callbacks that install a new set (loop, dispatcher, pre-rendering), in order.
        `on_result`: told about every attempt (metrics, systemd status)."""
        self.path = Path(path)
        self.current = current
        self.last_error: str | None = None
        self._apply = list(apply)
        self._load = load
        self._on_result = on_result
        self._lock = threading.Lock()
        self._seen = _fingerprint(self.path)
        self._pending: Fingerprint | None = None
        self._digest = _digest(self.path)

    def poll(self) -> ReloadResult | None:
        """Reload when the file changed and has settled; None when there was nothing to do."""
        now = _fingerprint(self.path)
        if now == self._seen:
            self._pending = None
            return None
        if now is None:
            if self._pending != (-1, -1):
                self._pending = (-1, -1)
                message = f"{self.path}: the commands file is gone; keeping the current intents"
                log.error("%s", message)
                self.last_error = message
            return None
        if now != self._pending:
            self._pending = now  # changed since the last look: wait for it to settle
            return None
        self._pending = None
        self._seen = now
        if _digest(self.path) == self._digest:
            log.debug("%s touched but unchanged", self.path)
            return None
        return self.reload("file changed")

    def reload(self, reason: str = "SIGHUP") -> ReloadResult:
        """Validate and install the file now; on any error the current intents stay."""
        with self._lock:
            self._seen = _fingerprint(self.path)
            digest = _digest(self.path)
            try:
                new = self._load(self.path)
            except CommandsError as exc:
                return self._failed(reason, str(exc))
            except (OSError, UnicodeDecodeError) as exc:
                return self._failed(reason, f"{self.path}: cannot read: {exc}")
            except Exception as exc:  # noqa: BLE001 - a loader bug must not take the service down
                log.exception("loading %s crashed", self.path)
                return self._failed(reason, f"{self.path}: {type(exc).__name__}: {exc}")
            old, self.current = self.current, new
            self._digest = digest
            self.last_error = None
            for apply in self._apply:
                try:
                    apply(new, old)
                except Exception:  # noqa: BLE001 - e.g. pre-rendering failing must not undo the reload
                    log.exception("applying the reloaded commands (%s) failed", getattr(apply, "__name__", apply))
            log.info("reloaded %s (%s): %d intents", self.path, reason, len(new.intents))
            return self._report(ReloadResult(True, reason, None, len(new.intents)))

    def _failed(self, reason: str, error: str) -> ReloadResult:
        self.last_error = error
        log.error("reload (%s) rejected, keeping the %d current intents: %s", reason, len(self.current.intents), error)
        return self._report(ReloadResult(False, reason, error, len(self.current.intents)))

    def _report(self, result: ReloadResult) -> ReloadResult:
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:  # noqa: BLE001
                log.exception("reload result callback failed")
        return result


def new_static_replies(new: Any, old: Any) -> list[str]:
    """Static replies of `new` that `old` did not have (the ones worth pre-rendering now)."""
    before = set(old.static_replies())
    return [text for text in new.static_replies() if text not in before]


def install_commands(new: Any, old: Any, *, dispatcher: Any, recognizer: Any = None, speech: Any = None) -> None:
    """What a successful reload changes in a running assistant (the service's `apply`, also
    bench/soak.py's): the dispatcher's intents, the recognizer's (its vocabulary prompt and
    decoding guide), then pre-rendering of the static replies `new` brought (with `speech`)."""
    dispatcher.replace_commands(new)
    if recognizer is not None:
        recognizer.replace_commands(new)
    if speech is not None:
        fresh = new_static_replies(new, old)
        if fresh:
            speech.prerender(fresh)
