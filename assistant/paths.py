"""Where the assistant keeps what it downloads, converts and caches.

Kept in one place so the CLI, the service and `doctor` agree. `ASSISTANT_HOME` overrides the XDG
defaults as a whole (tests point it at a temporary folder so they never touch the user's files).
"""

from __future__ import annotations

import os
from pathlib import Path


def _home() -> Path | None:
    value = os.environ.get("ASSISTANT_HOME")
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Long-lived files that are expensive to recreate: model weights."""
    home = _home()
    if home is not None:
        return home / "data"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "assistant"


def cache_dir() -> Path:
    """Files that can be rebuilt at a cost: voice latents, rendered replies."""
    home = _home()
    if home is not None:
        return home / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assistant"


def models_dir() -> Path:
    return data_dir() / "models"
