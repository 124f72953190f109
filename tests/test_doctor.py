"""`assistant doctor`: each problem found with its fix, exit status 1 on failures."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.service import doctor
from assistant.service.doctor import FAIL, OK, WARN, Finding, report, run_checks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_broken_commands_file_is_a_failure_with_its_position(tmp_path: Path) -> None:
    bad = tmp_path / "commands.yaml"
    bad.write_text("language: en\nintents:\n  Hello:\n    sentences: [\"open the {door}\"]\n")
    (finding,) = doctor.check_commands(bad)
    assert finding.status == FAIL and finding.detail.startswith(f"{bad}:4:")
    (finding,) = doctor.check_commands(ROOT / "commands.yaml")
    assert finding.status == OK and "intents" in finding.detail


def test_missing_tortoise_weights_are_a_warning_with_the_fetch_command() -> None:
    (finding,) = doctor.check_tortoise()
    assert finding.status == WARN and finding.fix == "assistant models fetch tortoise"


def tortoise_folder(home: Path, monkeypatch) -> Path:
    """Five small stand-in weight files, and a published-digest table that names them."""
    from assistant.tts import weights
    from assistant.tts.tortoise.config import WEIGHT_FILES

    folder = home / "data" / "models" / "tortoise"
    folder.mkdir(parents=True)
    table = {}
    for name in WEIGHT_FILES.values():
        (folder / name).write_bytes(name.encode() * 1000)
        table[name] = hashlib.sha256(name.encode() * 1000).hexdigest()
    monkeypatch.setattr(weights, "PUBLISHED_SHA256", table)
    return folder


def test_tortoise_weights_are_checked_against_the_published_digests(home: Path, monkeypatch) -> None:
    folder = tortoise_folder(home, monkeypatch)
    (verified,) = doctor.check_tortoise()
    assert verified.status == OK and verified.detail == f"5 weight files in {folder}, sha256 verified against the published files"
    (folder / "clvp2.pth").write_bytes(b"truncated")
    (folder / "vocoder.pth").write_bytes(b"fine-tuned")
    clvp, vocoder = doctor.check_tortoise()
    assert clvp.status == vocoder.status == WARN and clvp.fix == "assistant models fetch tortoise --force"
    assert clvp.detail.startswith(f"clvp2.pth in {folder} is not the published file "
                                  f"(sha256 {hashlib.sha256(b'truncated').hexdigest()[:16]}..., expected ")
    assert vocoder.detail.startswith("vocoder.pth ")
    (unchecked,) = doctor.check_tortoise(checksums=False)
    assert unchecked.status == OK and unchecked.detail.endswith("(not verified: --no-checksums)")


def test_the_published_digest_table_names_every_weight_file() -> None:
    from assistant.tts.tortoise.config import WEIGHT_FILES
    from assistant.tts.weights import PUBLISHED_SHA256

    assert set(PUBLISHED_SHA256) == set(WEIGHT_FILES.values())
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in PUBLISHED_SHA256.values())
    assert len(set(PUBLISHED_SHA256.values())) == len(PUBLISHED_SHA256)


def test_voices_without_latents_say_how_to_compute_them() -> None:
    findings = doctor.check_voices()
    assert findings and all(f.status == WARN and f.fix.startswith("assistant voices latents ") for f in findings)


def test_unwritable_data_folder_is_a_failure(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ASSISTANT_HOME", str(blocker / "home"))
    findings = doctor.check_dirs()
    assert [f.status for f in findings] == [FAIL, FAIL]
    assert "ASSISTANT_HOME" in findings[0].fix


def test_service_states(monkeypatch) -> None:
    assert doctor.check_service(lambda argv: (3, "failed\n"))[0].status == FAIL
    assert doctor.check_service(lambda argv: (0, "active\n"))[0].status == OK
    (finding,) = doctor.check_service(lambda argv: (3, "inactive\n"))
    assert finding.status == OK and "not installed" in finding.detail  # no unit file: nothing wrong


@pytest.mark.parametrize(("device", "detail"), [
    ("cpu", "no GPU: models run on the CPU"),
    ("cuda", "CUDA: Fake GPU 0, Fake GPU 1"),
    ("mps", "accelerator: mps"),
])
def test_gpu_check_reports_the_device(monkeypatch, device: str, detail: str) -> None:
    import torch

    import assistant.device

    monkeypatch.setattr(assistant.device, "resolve_device", lambda wanted: device if wanted == "auto" else pytest.fail(wanted))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"Fake GPU {index}")
    (finding,) = doctor.check_gpu()
    assert finding.status == OK and finding.detail.startswith(detail)


def test_gpu_check_on_this_machine() -> None:
    import torch

    (finding,) = doctor.check_gpu()
    assert finding.detail.startswith("CUDA: " if torch.cuda.is_available() else "no GPU")


def test_a_crashing_check_is_reported_not_raised() -> None:
    def broken() -> list[Finding]:
        raise ImportError("no module named sounddevice")

    findings = run_checks([("audio", broken), ("gpu", lambda: [Finding("gpu", OK, "cpu")])])
    assert [f.status for f in findings] == [FAIL, OK]
    assert "ImportError" in findings[0].detail


def test_report_lists_fixes_and_counts() -> None:
    text = report([Finding("whisper", FAIL, "no weights", "assistant models fetch whisper"),
                   Finding("tts", WARN, "no piper", "pip install"), Finding("gpu", OK, "cpu", "ignored")])
    assert "FAIL  whisper  no weights" in text and "fix: assistant models fetch whisper" in text
    assert "fix: ignored" not in text
    assert text.endswith("1 problem(s), 1 warning(s)")


def test_doctor_command_exits_1_and_names_the_fixes(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ASSISTANT_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "assistant", "doctor", "--commands", str(ROOT / "commands.yaml")],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fix: assistant models fetch whisper" in result.stdout
    assert "fix: assistant models fetch tortoise" in result.stdout
    assert "problem(s)" in result.stdout.splitlines()[-1]


def test_whisper_checkpoint_missing_then_fetched_then_corrupt() -> None:
    """Real tiny.en converted offline into the temporary home (seconds), then damaged."""
    from assistant.asr.weights import checkpoint_path, fetch_whisper

    (missing,) = doctor.check_whisper()
    assert missing.status == FAIL and missing.fix == "assistant models fetch whisper"
    fetch_whisper()
    (present,) = doctor.check_whisper()
    assert present.status == OK and "verified" in present.detail
    with checkpoint_path().open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\0" * 64)
    (corrupt,) = doctor.check_whisper()
    assert corrupt.status == FAIL and corrupt.fix == "assistant models fetch whisper --force"


def test_audio_devices_found_through_a_real_pulseaudio(tmp_path: Path) -> None:
    """With a (virtual) microphone present, the audio check lists it."""
    sys.path.insert(0, str(ROOT / "tests" / "audio"))
    from virtual_pulse import PulseUnavailable, VirtualPulse

    try:
        pulse = VirtualPulse(tmp_path / "pulse")
        pulse.start()
    except PulseUnavailable as exc:
        pytest.skip(f"PulseAudio unavailable: {exc}")
    try:
        env = {**pulse.env, "ASSISTANT_HOME": str(tmp_path / "home")}
        result = subprocess.run([sys.executable, "-m", "assistant", "doctor", "--no-checksums"],
                                capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        (line,) = [line for line in result.stdout.splitlines() if " audio " in line]
        assert line.startswith("ok") and "pulse" in line
    finally:
        pulse.stop()
        pulse.cleanup()


def test_state_file_checked_read_only_and_set_aside_files_reported(home: Path) -> None:
    from assistant.store import Store, default_path

    (finding,) = doctor.check_state()
    assert finding.status == OK and "no state file yet" in finding.detail
    store = Store()
    store.add_timer("5 minutes", "done", 300, 2e9, "TimerSet")
    store.close()
    (finding,) = doctor.check_state()
    assert finding.status == OK and "1 pending timer(s), integrity ok" in finding.detail

    path = default_path()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.write_bytes(b"not a database" * 100)
    (finding,) = doctor.check_state()
    assert finding.status == FAIL and "cannot be read" in finding.detail and "moves the file aside" in finding.fix
    assert path.read_bytes() == b"not a database" * 100  # doctor never touches it

    Store().close()  # what the service does at start: set it aside, begin anew
    ok, aside = doctor.check_state()
    assert ok.status == OK
    assert aside.status == WARN and ".unreadable-" in aside.detail and aside.fix.startswith("look inside")


def test_doctor_times_each_voice_and_says_which_speaks_live(tmp_path) -> None:
    import time as _time

    import numpy as np

    from assistant.audio.clip import Audio
    from assistant.service.doctor import OK, WARN, check_speed
    from assistant.tts.speech import Speech, SpeechSettings

    class Timed:
        def __init__(self, name: str, rtf: float) -> None:
            self.name, self.rtf = name, rtf

        def synthesize(self, text, voice=None):
            _time.sleep(0.25 * self.rtf)
            return Audio(np.zeros(2000, np.float32), 8000)

    engines = {"tortoise": Timed("tortoise", 2.0), "piper": Timed("piper", 0.0)}
    speech = Speech(SpeechSettings(fallback=("tortoise", "piper"), cache=False),
                    factories={n: (lambda e=e: e) for n, e in engines.items()})
    findings = check_speed(speech)
    assert [(f.status, f.detail.split(":")[0]) for f in findings] == [(WARN, "tortoise"), (OK, "piper")]
    assert "piper speaks the others" in findings[0].detail and "GPU" in findings[0].fix


def _pactl(modules: str, default: str = "", code: int = 0):
    def run(argv):
        if argv[:3] == ["pactl", "list", "short"]:
            return code, modules
        return 0, default + "\n"
    return run


def test_echo_cancel_active_missing_or_not_the_default_source() -> None:
    loaded = "7\tmodule-echo-cancel\tsource_master=mic aec_method=webrtc source_name=mic_aec sink_name=spk_aec\t\n"
    (finding,) = doctor.check_echo_cancel(_pactl(loaded, "mic_aec"))
    assert finding.status == OK and "mic_aec" in finding.detail
    (finding,) = doctor.check_echo_cancel(_pactl(loaded, "alsa_input.usb"))
    assert finding.status == WARN and finding.fix.startswith("pactl set-default-source mic_aec")
    (finding,) = doctor.check_echo_cancel(_pactl("1\tmodule-null-sink\tsink_name=speaker\t\n", "mic"))
    assert finding.status == WARN and "module-echo-cancel aec_method=webrtc" in finding.fix and "--no-barge-in" in finding.fix
    pipewire = "536870913\tlibpipewire-module-echo-cancel\tsource_name=ec_source\t\n"
    assert doctor.check_echo_cancel(_pactl(pipewire, "ec_source"))[0].status == OK
    (finding,) = doctor.check_echo_cancel(_pactl("", code=1))
    assert finding.status == OK and "level check" in finding.detail
