"""Reply cache: rendered reply audio on disk, so a known reply starts instantly.

Tortoise takes seconds per sentence; most replies ("Okay.", "The light is on.") repeat. Entries
are WAV files named by a hash of (engine, voice, text, settings), so a change to any of them is a
different entry and nothing stale is ever played. A take that passed the self-check gets a
`.passed` mark beside it (its WER), so it is not transcribed again after a restart. The folder has a byte cap; the least recently
used entries (by access time, which a hit refreshes) go first. Writes go to a temporary file
(fsync'ed) renamed into place (the folder fsync'ed), so a crash never leaves half a WAV under a
real name (a `.tmp-*` file that kill -9 leaves behind counts toward the cap and is evicted like an
entry); a file that is corrupt anyway (disk trouble, manual edits) is deleted and reported as a
miss, so the reply is simply rendered again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from assistant import paths
from assistant.audio.clip import Audio

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes the rendered sound."""

    engine: str
    voice: str | None
    text: str
    settings: str = ""

    def digest(self) -> str:
        payload = json.dumps([self.engine, self.voice, self.text, self.settings], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def default_cache_root() -> Path:
    return paths.cache_dir() / "replies"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ReplyCache:
    """Thread-safe: the background pre-renderer and live replies share one cache."""

    def __init__(self, root: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"reply cache size cap must be positive, got {max_bytes}")
        self.root = root if root is not None else default_cache_root()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._last_stamp = 0

    def _path(self, key: CacheKey) -> Path:
        return self.root / f"{key.digest()}.wav"

    @staticmethod
    def _mark_path(wav: Path) -> Path:
        return wav.with_suffix(".passed")

    def mark_passed(self, key: CacheKey, wer: float) -> None:
        """Remember that the cached take of `key` passed the self-check (with this WER), so a
        restart does not transcribe it again. Best effort, like `put`."""
        with self._lock:
            path = self._path(key)
            if not path.is_file():
                return
            try:
                self._mark_path(path).write_text(f"{wer:.4f}\n", encoding="ascii")
            except OSError as exc:
                log.warning("reply cache: cannot mark %r as checked (%s)", key.text, exc)

    def passed_wer(self, key: CacheKey) -> float | None:
        """The WER with which the cached take of `key` passed the self-check; None: never checked
        (or the take was replaced since)."""
        try:
            return float(self._mark_path(self._path(key)).read_text(encoding="ascii"))
        except (OSError, ValueError):
            return None

    def _touch(self, path: Path) -> None:
        """Mark as most recently used; stamps strictly increase so order never ties."""
        stamp = max(time.time_ns(), self._last_stamp + 1000)
        self._last_stamp = stamp
        os.utime(path, ns=(stamp, stamp))

    def get(self, key: CacheKey) -> Audio | None:
        path = self._path(key)
        with self._lock:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                log.warning("reply cache: cannot read %s (%s); rendering instead", path, exc)
                return None
            try:
                audio = Audio.from_wav_bytes(data)
            except ValueError as exc:
                log.warning("reply cache: corrupt entry %s for %r (%s); rendering again", path.name, key.text, exc)
                path.unlink(missing_ok=True)
                self._mark_path(path).unlink(missing_ok=True)
                return None
            self._touch(path)
            return audio

    def __contains__(self, key: CacheKey) -> bool:
        return self._path(key).is_file()

    def put(self, key: CacheKey, audio: Audio) -> None:
        """Store `audio`; best effort: a full or read-only disk is logged, never the reply's end."""
        try:
            self._put(key, audio)
        except OSError as exc:
            log.warning("reply cache: cannot store %r in %s (%s)", key.text, self.root, exc)

    def _put(self, key: CacheKey, audio: Audio) -> None:
        data = audio.to_wav_bytes()
        if len(data) > self.max_bytes:
            log.info("reply cache: %r (%d bytes) is larger than the cap; not cached", key.text, len(data))
            return
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            path = self._path(key)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".wav")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                self._mark_path(path).unlink(missing_ok=True)  # a new take is not checked yet
                os.replace(tmp, path)
                _fsync_dir(self.root)  # the new name survives a power cut, not only the bytes
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._touch(path)
            self._evict(keep=path)

    def _evict(self, keep: Path) -> None:
        entries = []
        for path in self.root.glob("*.wav"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            self._mark_path(path).unlink(missing_ok=True)
            total -= size
            log.debug("reply cache: evicted %s (least recently used)", path.name)

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.root.glob("*.wav")) if self.root.is_dir() else 0

    def clear(self) -> None:
        with self._lock:
            for path in [*self.root.glob("*.wav"), *self.root.glob("*.passed")]:
                path.unlink(missing_ok=True)
