"""The unit files: rendered with real paths, checked by `systemd-analyze verify` (no warnings)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.service.units import (
    PROJECT_ROOT, InstallError, UnitOptions, default_unit_path, install, next_steps, render, systemd_quote,
)

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze missing: scripts/setup.sh --test installs Debian's systemd")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def verify(unit: Path, user: bool, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    args = ["systemd-analyze"]
    if user:
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)  # a user manager needs one to start
        args.append("--user")
    return subprocess.run([*args, "verify", str(unit)], capture_output=True, text=True, env=env, timeout=60)


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read_string(text)
    return parser


@needs_systemd
@pytest.mark.parametrize("kind", ["user", "system"])
def test_generated_units_pass_systemd_analyze_verify(kind: str, tmp_path: Path) -> None:
    unit = install(UnitOptions(kind=kind, serve_args=("--port", "8765")), tmp_path / "assistant.service")
    result = verify(unit, kind == "user", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # systemd 252 exits 0 on unknown keys: no warnings either


@needs_systemd
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above means something: a unit with a typo does produce output."""
    text = render(UnitOptions()).replace("WatchdogSec=", "WatchdogSecs=")
    unit = tmp_path / "assistant.service"
    unit.write_text(text)
    assert "Unknown key" in verify(unit, True, tmp_path).stderr


@pytest.mark.parametrize("kind", ["user", "system"])
def test_units_are_notify_with_watchdog_restart_and_reload(kind: str) -> None:
    service = parse(render(UnitOptions(kind=kind)))["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) >= 10
    assert service["Restart"] == "on-failure"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["NoNewPrivileges"] == "yes"
    assert "MemoryDenyWriteExecute" not in service  # PyTorch/numba JIT need W+X pages
    assert "Environment=MALLOC_ARENA_MAX=2" in render(UnitOptions(kind=kind)).splitlines()  # steadier RSS (soak)


def test_exec_start_uses_the_venv_python_unresolved_and_absolute_paths(tmp_path: Path) -> None:
    commands = tmp_path / "my commands.yaml"
    commands.write_text("language: en\nintents: {}\n")
    assert UnitOptions().python == Path(sys.executable)  # the interpreter running `service install`
    venv_python = tmp_path / "venv" / "bin" / "python"  # a venv's python is a symlink to the system one
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    options = UnitOptions(python=venv_python, workdir=PROJECT_ROOT, commands=commands, serve_args=("--port", "9000"))
    service = parse(render(options))["Service"]
    assert service["ExecStart"] == f'{venv_python} -m assistant serve --commands "{commands}" --port 9000'
    assert service["WorkingDirectory"] == str(PROJECT_ROOT)


def test_user_unit_keeps_audio_reachable_and_system_unit_is_sandboxed() -> None:
    user = parse(render(UnitOptions(kind="user")))
    assert "ProtectSystem" not in user["Service"] and "PrivateUsers" not in user["Service"]
    assert user["Install"]["WantedBy"] == "default.target"
    system = parse(render(UnitOptions(kind="system", user="alice")))
    assert system["Service"]["User"] == "alice" and system["Service"]["ProtectSystem"] == "strict"
    assert "char-alsa rw" in render(UnitOptions(kind="system"))
    assert system["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_quoting() -> None:
    assert systemd_quote("/opt/venv/bin/python") == "/opt/venv/bin/python"
    assert systemd_quote("/home/me/My Files/c.yaml") == '"/home/me/My Files/c.yaml"'
    assert systemd_quote("100%") == "100%%"
    assert systemd_quote("$HOME") == "$$HOME"


def test_bad_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="no such commands file"):
        render(UnitOptions(commands=tmp_path / "missing.yaml"))
    with pytest.raises(InstallError, match="absolute path"):
        render(UnitOptions(commands=Path("commands.yaml")))
    with pytest.raises(InstallError, match="unknown unit kind"):
        render(UnitOptions(kind="session"))


def test_default_locations_and_next_steps(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert default_unit_path("user") == tmp_path / "config" / "systemd" / "user" / "assistant.service"
    assert default_unit_path("system") == Path("/etc/systemd/system/assistant.service")
    assert next_steps("user", default_unit_path("user"))[:2] == [
        "systemctl --user daemon-reload", "systemctl --user enable --now assistant.service"]
    assert next_steps("system", default_unit_path("system"))[0] == "sudo systemctl daemon-reload"


def test_service_install_cli_writes_the_unit_and_prints_the_commands(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ASSISTANT_HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "assistant", "service", "install", "--user", "--port", "8799"],
                            capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "config" / "systemd" / "user" / "assistant.service"
    assert f"wrote {unit}" in result.stdout
    assert "systemctl --user enable --now assistant.service" in result.stdout
    assert "--port 8799" in parse(unit.read_text())["Service"]["ExecStart"]
