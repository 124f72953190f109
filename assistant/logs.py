"""Logging set-up shared by every command.

Logs go to stderr without timestamps when stderr is the journal (systemd adds its own), with
timestamps otherwise, so `--events jsonl` output on stdout stays machine-readable.
"""

from __future__ import annotations

import logging
import os
import sys


def setup(level: str = "INFO") -> None:
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt, stream=sys.stderr, force=True)
