"""The assistant's durable state: one SQLite database in the data folder (`state.sqlite3`).

What lives here: pending timers (label, due wall-clock time, the intent that set them) and the
data of handlers (the shopping list example keeps its list under one key). Everything a reply
acknowledges ("Timer set for 40 minutes", "Added milk") is committed before the reply is made.

Why SQLite from the standard library, in WAL mode with `synchronous=FULL`, rather than a journal
file of our own: a COMMIT is atomic and, with FULL, the write-ahead log is fsync'ed before COMMIT
returns, so after `kill -9` or a power cut the database holds either the state before or the
state after each transaction, never half of one; its recovery code, frame checksums and locking
are tested far beyond what a home-made journal would be; several processes (`serve`, `assistant
chat`) can share the file safely (file locks plus a busy timeout); and `PRAGMA quick_check` tells a
damaged file from a good one, which is what lets a damaged file be set aside instead of being
overwritten. The folder is fsync'ed after the file is created so the file's name survives a power
cut too.

A state file that cannot be read is never overwritten: it is renamed (with its `-wal` file) to
`state.sqlite3.unreadable-<UTC time>`, logged, kept in `problems` (health, doctor) and recorded in
the fresh database, so the next reply that reads that data can say it could not be read (once per
key). A single value that does not decode is set aside the same way inside the database (renamed to
`<key>.unreadable-<time>`).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from assistant import paths

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
_CORRUPT = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL,
    announce TEXT NOT NULL,
    seconds REAL NOT NULL,
    due REAL NOT NULL,
    intent TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS set_aside (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT,
    moved_to TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS told (set_aside INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (set_aside, key));
"""


class StoreError(Exception):
    """The state cannot be opened or written at all (permissions, full disk): not a damaged file."""


@dataclass(frozen=True)
class SetAside:
    """Data that could not be read and was moved aside instead of being overwritten."""

    key: str | None
    """The value's key, or None when the whole state file was unreadable."""
    moved_to: str
    reason: str
    at: str
    """ISO 8601, UTC."""

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "moved_to": self.moved_to, "reason": self.reason, "at": self.at}


@dataclass(frozen=True)
class StoredTimer:
    id: int
    label: str
    """What the timer is, as said: "40 minutes"."""
    announce: str
    """What to say when it fires."""
    seconds: float
    """Its whole duration."""
    due: float
    """When it fires, Unix time (wall clock: it must mean the same after a restart)."""
    intent: str
    """The intent that set it."""


@dataclass(frozen=True)
class Outcome:
    """A value read (and maybe changed) in one transaction, with the notice to give about it."""

    value: Any
    lost: SetAside | None
    """Set when this key's earlier data could not be read and nobody was told yet."""


def default_path() -> Path:
    return paths.data_dir() / "state.sqlite3"


def _stamp(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_corruption(exc: BaseException) -> bool:
    """True for "this file is damaged / not a database", false for locks, permissions, full disk."""
    return isinstance(exc, sqlite3.DatabaseError) and getattr(exc, "sqlite_errorcode", None) in _CORRUPT


class Store:
    """Thread-safe: one connection, one lock (writes are few and tiny; SQLite serialises them anyway)."""

    def __init__(self, path: Path | None = None, *, wall: Callable[[], float] = time.time) -> None:
        """Open (or create) the state at `path`; a damaged file is set aside. Raises StoreError."""
        self.path = Path(path) if path is not None else default_path()
        self._wall = wall
        self._lock = threading.RLock()
        self.problems: list[SetAside] = []
        """Set-asides that happened in this process (health, doctor)."""
        self._db: sqlite3.Connection | None = None
        with self._lock:
            self._open()

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state folder {self.path.parent}: {exc}") from exc
        reason = None
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            if not (is_corruption(exc) or isinstance(exc, _Unusable)):
                raise StoreError(f"cannot open the state file {self.path}: {exc}") from exc
            reason = str(exc)
        if reason is not None:
            moved = self._move_aside_file(reason)
            try:
                self._db = self._connect()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot create a fresh state file {self.path}: {exc}") from exc
            self._record(None, str(moved), reason)

    def _connect(self) -> sqlite3.Connection:
        created = not self.path.exists()
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode})")
            db.execute("PRAGMA synchronous = FULL")
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise _Unusable("integrity check failed: " + "; ".join(str(row[0]) for row in check[:3]))
            db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif not str(row[0]).isdigit() or int(row[0]) > SCHEMA_VERSION:
                raise _Unusable(f"schema version {row[0]!r} is not one this assistant knows ({SCHEMA_VERSION})")
            self._check_tables(db)
        except BaseException:
            db.close()
            raise
        if created:
            _fsync_dir(self.path.parent)
        return db

    @staticmethod
    def _check_tables(db: sqlite3.Connection) -> None:
        """A file with our table names but other columns (hand-made, another program's) is unusable."""
        want = {"timers": {"id", "label", "announce", "seconds", "due", "intent", "created"},
                "kv": {"key", "value", "updated"}, "set_aside": {"id", "key", "moved_to", "reason", "at"},
                "told": {"set_aside", "key"}}
        for table, columns in want.items():
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if not columns <= have:
                raise _Unusable(f"table {table} lacks columns {', '.join(sorted(columns - have))}")

    def _move_aside_file(self, reason: str) -> Path:
        stamp = _stamp(self._wall())
        target = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.unreadable-{stamp}-{n}")
        for suffix in ("-wal", "-shm", ""):  # the main file last: a crash in between leaves it in place
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                os.replace(source, target.with_name(target.name + suffix))
        _fsync_dir(self.path.parent)
        log.error("the state file %s cannot be read (%s); it was moved to %s and a new one started",
                  self.path, reason, target)
        return target

    def _record(self, key: str | None, moved_to: str, reason: str, db: sqlite3.Connection | None = None) -> SetAside:
        record = SetAside(key, moved_to, reason, _iso(self._wall()))
        self.problems.append(record)
        (db or self._conn).execute("INSERT INTO set_aside (key, moved_to, reason, at) VALUES (?, ?, ?, ?)",
                                   (key, moved_to, reason, record.at))
        return record

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"the state store {self.path} is closed")
        return self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a damaged file found mid-run is set aside and the work retried once."""
        with self._lock:
            for attempt in (1, 2):
                db = self._conn
                try:
                    db.execute("BEGIN IMMEDIATE")
                except sqlite3.DatabaseError as exc:
                    if attempt == 1 and is_corruption(exc):
                        self._recover(exc)
                        continue
                    raise StoreError(f"cannot write {self.path}: {exc}") from exc
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException as exc:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.DatabaseError):
                        raise StoreError(f"cannot write {self.path}: {exc}") from exc
                    raise
                return

    def _recover(self, exc: BaseException) -> None:
        self.close()
        moved = self._move_aside_file(str(exc))
        self._db = self._connect()
        self._record(None, str(moved), str(exc))

    # -- timers ----------------------------------------------------------------------------------

    def add_timer(self, label: str, announce: str, seconds: float, due: float, intent: str) -> int:
        with self._write() as db:
            cursor = db.execute("INSERT INTO timers (label, announce, seconds, due, intent, created) VALUES (?, ?, ?, ?, ?, ?)",
                                (label, announce, seconds, due, intent, self._wall()))
            return int(cursor.lastrowid or 0)

    def remove_timer(self, timer_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM timers WHERE id = ?", (timer_id,))

    def clear_timers(self) -> int:
        with self._write() as db:
            return db.execute("DELETE FROM timers").rowcount

    def timers(self) -> list[StoredTimer]:
        """Pending timers, soonest first."""
        with self._lock:
            rows = self._conn.execute("SELECT id, label, announce, seconds, due, intent FROM timers ORDER BY due, id").fetchall()
        return [StoredTimer(int(r[0]), str(r[1]), str(r[2]), float(r[3]), float(r[4]), str(r[5])) for r in rows]

    # -- handler data ------------------------------------------------------------------------------

    def transact(self, key: str, change: Callable[[Any], Any] | None = None, default: Any = None) -> Outcome:
        """Read `key` (JSON), apply `change` (old value -> new value; None only reads) and commit.

        The returned notice (`lost`) is given once: the same transaction marks it told, so the
        reply that says "could not be read" and the change it reports are committed together.
        """
        with self._write() as db:
            value, lost = self._read(db, key, default)
            if change is not None:
                value = change(value)
                db.execute("INSERT INTO kv (key, value, updated) VALUES (?, ?, ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                           (key, json.dumps(value, ensure_ascii=False), self._wall()))
            if lost is not None:
                self._mark_told(db, key)
            return Outcome(value, lost)

    def take_notice(self, key: str) -> SetAside | None:
        """The untold set-aside for `key` (marked told), e.g. timers lost with an unreadable file."""
        with self._write() as db:
            lost = self._untold(db, key)
            if lost is not None:
                self._mark_told(db, key)
            return lost

    def _read(self, db: sqlite3.Connection, key: str, default: Any) -> tuple[Any, SetAside | None]:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        value = default
        if row is not None:
            try:
                value = json.loads(row[0])
            except (TypeError, ValueError) as exc:
                aside = f"{key}.unreadable-{_stamp(self._wall())}"
                db.execute("UPDATE kv SET key = ? WHERE key = ?", (aside, key))
                log.error("state %s: the value of %r cannot be read (%s); kept as %r", self.path, key, exc, aside)
                self._record(key, f"{self.path} key {aside}", f"not JSON: {exc}", db)
        return value, self._untold(db, key)

    @staticmethod
    def _untold(db: sqlite3.Connection, key: str) -> SetAside | None:
        row = db.execute(
            "SELECT key, moved_to, reason, at FROM set_aside s WHERE (s.key IS NULL OR s.key = ?) "
            "AND NOT EXISTS (SELECT 1 FROM told t WHERE t.set_aside = s.id AND t.key = ?) ORDER BY id DESC LIMIT 1",
            (key, key)).fetchone()
        return SetAside(row[0], str(row[1]), str(row[2]), str(row[3])) if row else None

    @staticmethod
    def _mark_told(db: sqlite3.Connection, key: str) -> None:
        db.execute("INSERT OR IGNORE INTO told (set_aside, key) SELECT id, ? FROM set_aside WHERE key IS NULL OR key = ?",
                   (key, key))

    # -- reporting -----------------------------------------------------------------------------

    def set_asides(self) -> list[SetAside]:
        """Every set-aside this state file records, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT key, moved_to, reason, at FROM set_aside ORDER BY id").fetchall()
        return [SetAside(r[0], str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def health(self) -> dict[str, Any]:
        """For /v1/health: where the state is and what could not be read in this run."""
        return {"path": str(self.path), "set_aside": [p.to_json() for p in self.problems]}

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class _Unusable(sqlite3.DatabaseError):
    """A readable SQLite file that is not (or no longer) our state: treated like a damaged one."""


_shared: dict[Path, Store] = {}
_shared_lock = threading.Lock()


def shared_store(path: Path | None = None) -> Store:
    """The process's one Store for `path` (default: the data folder's), opened on first use.

    The service's timers and the handlers (a `python:` handler module imports this) use the same
    object, so a set-aside seen by either shows in health. Raises StoreError.
    """
    key = (Path(path) if path is not None else default_path()).resolve()
    with _shared_lock:
        store = _shared.get(key)
        if store is None or store._db is None:
            store = _shared[key] = Store(key)
        return store
