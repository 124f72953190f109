"""The one error type for a bad commands file.

Every problem found while loading commands.yaml is reported as `FILE:LINE:COL: message`, the
format editors and compilers use, so a user can jump straight to the mistake. Lines and columns
are 1-based.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class CommandsError(Exception):
    path: Path | str
    line: int
    column: int
    message: str

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"
