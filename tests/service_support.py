"""Shared by the service tests: a commands file whose handlers fail in every way a real one can."""

from __future__ import annotations

from pathlib import Path

FAULTY_COMMANDS = """\
language: en
intents:
  Hello:
    sentences: [hello there]
    reply: "Hi."
  Fail:
    sentences: [fail now]
    handler: {run: ["sh", "-c", "echo broken >&2; exit 3"], timeout: 5}
    reply: "Done."
  Hang:
    sentences: [hang now]
    handler: {run: ["sleep", "30"], timeout: 1}
    reply: "Done."
  Crash:
    sentences: [crash now]
    handler: {python: "faulty:crash"}
    reply: "Done."
"""

FAULTY_MODULE = '''\
def crash():
    raise RuntimeError("handler bug")
'''


def write_faulty_commands(folder: Path) -> Path:
    (folder / "faulty.py").write_text(FAULTY_MODULE)
    path = folder / "commands.yaml"
    path.write_text(FAULTY_COMMANDS)
    return path
