"""systemd unit files for the assistant: filled in from the templates in `systemd/` and installed.

The templates hold everything that does not depend on the machine; installing fills in the
absolute paths systemd needs (it has no PATH lookup for the virtual environment and no idea
where the checkout lives): the venv's python (not resolved: resolving the venv's symlink would
run the system python without our packages), the working directory, the commands file.
"""

from __future__ import annotations

import getpass
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from assistant import paths

PROJECT_ROOT = Path(__file__).resolve().parents[2]
UNITS_DIR = PROJECT_ROOT / "systemd"
UNIT_NAME = "assistant.service"
TEMPLATES = {"user": "assistant.service", "system": "assistant-system.service"}


class InstallError(RuntimeError):
    """The unit cannot be written as asked; the message says what to do."""


@dataclass(frozen=True)
class UnitOptions:
    kind: str = "user"
    """"user" (default: the audio server runs per user) or "system"."""
    python: Path = field(default_factory=lambda: Path(sys.executable))
    workdir: Path = PROJECT_ROOT
    commands: Path = PROJECT_ROOT / "commands.yaml"
    serve_args: tuple[str, ...] = ()
    """Extra `assistant serve` arguments (--host, --port, --token-file, --input ...)."""
    user: str = field(default_factory=getpass.getuser)
    home: Path = field(default_factory=Path.home)


def systemd_quote(arg: str) -> str:
    """Quote one ExecStart argument: double quotes when needed, `%` and `$` escaped (systemd
    expands specifiers and environment variables in command lines)."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and not any(ch in escaped for ch in " \t\"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_start(options: UnitOptions) -> str:
    argv = [str(options.python), "-m", "assistant", "serve", "--commands", str(options.commands), *options.serve_args]
    return " ".join(systemd_quote(arg) for arg in argv)


def render(options: UnitOptions, template_dir: Path = UNITS_DIR) -> str:
    if options.kind not in TEMPLATES:
        raise InstallError(f"unknown unit kind {options.kind!r}: use user or system")
    for name, value in (("python", options.python), ("working directory", options.workdir), ("commands file", options.commands)):
        if not value.is_absolute():
            raise InstallError(f"the {name} must be an absolute path for systemd, got {value}")
    if not options.commands.is_file():
        raise InstallError(f"{options.commands}: no such commands file (pass --commands FILE)")
    template = template_dir / TEMPLATES[options.kind]
    try:
        text = template.read_text()
    except OSError as exc:
        raise InstallError(f"cannot read the unit template {template}: {exc}") from exc
    values = {
        "@EXECSTART@": exec_start(options),
        "@WORKDIR@": str(options.workdir),
        "@USER@": options.user,
        "@HOME@": str(options.home),
        "@DATADIR@": systemd_quote(str(paths.data_dir())),
        "@CACHEDIR@": systemd_quote(str(paths.cache_dir())),
    }
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def default_unit_path(kind: str) -> Path:
    if kind == "system":
        return Path("/etc/systemd/system") / UNIT_NAME
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user" / UNIT_NAME


def install(options: UnitOptions, target: Path | None = None) -> Path:
    """Write the unit (atomically: a half-written unit must never be loaded) and return its path."""
    target = target or default_unit_path(options.kind)
    text = render(options)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(target)
    except PermissionError as exc:
        hint = " (run it with sudo, or pass --output FILE)" if options.kind == "system" else ""
        raise InstallError(f"cannot write {target}: permission denied{hint}") from exc
    return target


def next_steps(kind: str, target: Path) -> list[str]:
    """The commands to run after installing, in order."""
    if kind == "system":
        return [
            "sudo systemctl daemon-reload",
            "sudo systemctl enable --now assistant.service",
            "systemctl status assistant.service",
            "journalctl -u assistant.service -f",
            "sudo systemctl reload assistant.service   # re-read commands.yaml (SIGHUP)",
        ]
    return [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now assistant.service",
        "systemctl --user status assistant.service",
        "journalctl --user -u assistant.service -f",
        "systemctl --user reload assistant.service   # re-read commands.yaml (SIGHUP)",
        f"loginctl enable-linger {shlex.quote(getpass.getuser())}   # optional: start at boot, before you log in",
    ]
