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


def tiny_en_checkpoint(tmp_path_factory) -> Path:
    """Real Whisper tiny.en converted offline once per test session (shared by the modules)."""
    from assistant.asr.convert import convert
    from assistant.asr.weights import source_model_dir

    path = tmp_path_factory.getbasetemp() / "whisper" / "tiny.en.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        convert(source_model_dir(), partial)
        partial.replace(path)
    return path
