"""A private PulseAudio daemon with virtual devices: a real capture path without a sound card.

Devices: null sinks "speaker" and "room", and a source "mic" remapped from "room.monitor", so
whatever `play(file)` sends to "room" is what a program recording from "mic" hears. With
PULSE_SERVER and PULSE_SOURCE=mic in the environment, sounddevice (PortAudio -> ALSA's pulse
plugin) records from "mic". The daemon is this object's own child process: stopping it never
touches any other PulseAudio.

Use from tests:  sys.path.insert(0, "<repo>/tests/audio"); from virtual_pulse import VirtualPulse
    with VirtualPulse(tmp_path) as pulse:
        subprocess.run([...], env=pulse.env)        # or pulse.activate() for this process
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


class PulseUnavailable(RuntimeError):
    """PulseAudio is not installed or will not start here (the caller skips its tests)."""


class VirtualPulse:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        if not shutil.which("pulseaudio") or not shutil.which("pactl") or not shutil.which("paplay"):
            raise PulseUnavailable("pulseaudio/pactl/paplay not installed (Debian: pulseaudio pulseaudio-utils)")
        # A short path of its own: a unix socket path must fit in 107 bytes, pytest's tmp_path may not.
        self.runtime = Path(tempfile.mkdtemp(prefix="vpulse-"))
        self.socket = self.runtime / "native"
        self.proc: subprocess.Popen | None = None
        self._keepers: list[subprocess.Popen] = []
        self._saved_env: dict[str, str | None] = {}

    @property
    def env(self) -> dict[str, str]:
        """The environment for a client process: this server, recording from "mic"."""
        env = dict(os.environ)
        env.update(self.client_env())
        return env

    def client_env(self) -> dict[str, str]:
        return {"PULSE_SERVER": f"unix:{self.socket}", "PULSE_SOURCE": "mic", "PULSE_SINK": "speaker"}

    # -- daemon ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.runtime, 0o700)
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HOME=str(self.workdir), XDG_RUNTIME_DIR=str(self.runtime), PULSE_RUNTIME_PATH=str(self.runtime))
        for key in ("PULSE_SERVER", "PULSE_SOURCE", "PULSE_SINK"):
            env.pop(key, None)
        log = open(self.workdir / "pulseaudio.log", "ab")
        self.proc = subprocess.Popen(
            [
                "pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "-n",
                "--log-target=stderr",
                "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                "-L", "module-null-sink sink_name=speaker",
                "-L", "module-null-sink sink_name=room",
                "-L", "module-remap-source source_name=mic master=room.monitor",
            ],
            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PulseUnavailable(f"pulseaudio exited with {self.proc.returncode}: {self.log_tail()}")
            if self.pactl("info", check=False).returncode == 0:
                self._keep_sinks_ticking()
                return
            time.sleep(0.1)
        self.stop()
        raise PulseUnavailable(f"pulseaudio did not answer within 15 s: {self.log_tail()}")

    def _keep_sinks_ticking(self) -> None:
        """An idle null sink sleeps up to 2 s between renders, so the first recording of its
        monitor (and of "mic") gets nothing for ~2 s. A low-latency reader kept on each
        monitor makes its sink render every 20 ms: recorders then hear audio within ~0.1 s."""
        ready = []
        for monitor in ("room.monitor", "speaker.monitor"):
            keeper = subprocess.Popen(
                ["parec", "-d", monitor, "--raw", "--rate=16000", "--channels=1", "--latency-msec=20"],
                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            )
            self._keepers.append(keeper)
            event = threading.Event()
            threading.Thread(target=self._drain, args=(keeper, event), daemon=True).start()
            ready.append((monitor, event))
        for monitor, event in ready:
            if not event.wait(10):
                self.stop()
                raise PulseUnavailable(f"no audio from {monitor} within 10 s: {self.log_tail()}")

    @staticmethod
    def _drain(keeper: subprocess.Popen, ready: threading.Event) -> None:
        while keeper.stdout.read(960):
            ready.set()

    def stop(self) -> None:
        """Stop the daemon this object started (and only that one), and its monitor readers."""
        for keeper in self._keepers:
            if keeper.poll() is None:
                keeper.terminate()
            keeper.wait(timeout=5)
        self._keepers.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self) -> str:
        path = self.workdir / "pulseaudio.log"
        return path.read_text(errors="replace")[-800:] if path.exists() else ""

    # -- controls -------------------------------------------------------------------------------

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10, check=check)

    def play(self, wav: Path, device: str = "room") -> subprocess.Popen:
        """Start playing a WAV into a sink ("room" = what "mic" hears); returns the paplay process."""
        return subprocess.Popen(["paplay", f"--device={device}", str(wav)], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def unplug_mic(self) -> None:
        """Unload the "mic" source: to its recorders, the microphone just disappeared."""
        for line in self.pactl("list", "short", "modules").stdout.splitlines():
            fields = line.split("\t")
            if len(fields) > 2 and fields[1] == "module-remap-source" and "source_name=mic" in fields[2]:
                self.pactl("unload-module", fields[0])

    def plug_mic(self) -> None:
        self.pactl("load-module", "module-remap-source", "source_name=mic", "master=room.monitor")

    def sources(self) -> list[str]:
        return [line.split("\t")[1] for line in self.pactl("list", "short", "sources").stdout.splitlines() if "\t" in line]

    # -- this process -------------------------------------------------------------------------

    def activate(self) -> None:
        """Point this process's PortAudio at the daemon: set the client variables, and
        re-initialise PortAudio if sounddevice was already imported (it lists devices once)."""
        for key, value in self.client_env().items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        self._reinit_portaudio()

    def deactivate(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        self._reinit_portaudio()

    @staticmethod
    def _reinit_portaudio() -> None:
        sd = sys.modules.get("sounddevice")
        if sd is not None:
            sd._terminate()
            sd._initialize()

    def __enter__(self) -> "VirtualPulse":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the runtime folder (after the last stop; start() may be called again before)."""
        shutil.rmtree(self.runtime, ignore_errors=True)
