"""Voices: folders of short reference clips that Tortoise imitates.

A voice is `voices/<name>/*.wav` (also .flac/.ogg; any sample rate, mono or not). The project
ships some in its `voices/` folder; `add_voice` puts the user's own in the data directory
(`paths.data_dir()/voices`), which wins over a shipped voice of the same name. Clips are
resampled to the 22.05 kHz Tortoise wants when loaded. Their conditioning latents are computed
once and cached (see `assistant.tts.tortoise.latents`); `assistant.tts.tortoise.engine.compute_latents`
does that ahead of time.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from assistant import paths
from assistant.tts.tortoise.config import CONDITIONING_SAMPLE_RATE
from assistant.tts.tortoise.torchaudio_compat import resample


PROJECT_VOICES_DIR = Path(__file__).resolve().parents[2] / "voices"
DEFAULT_VOICE = "dotrice"
CLIP_SUFFIXES = (".wav", ".flac", ".ogg")
MIN_CLIP_SECONDS = 0.5
MAX_CLIP_SECONDS = 60.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class VoiceError(ValueError):
    """A voice or clip the user named cannot be used; the message says why."""


def user_voices_dir() -> Path:
    return paths.data_dir() / "voices"


def voices_dirs() -> list[Path]:
    """Where voices are looked up, first match wins: the user's, then the project's."""
    return [user_voices_dir(), PROJECT_VOICES_DIR]


def read_clip(path: Path, sample_rate: int = CONDITIONING_SAMPLE_RATE) -> torch.Tensor:
    """A clip as mono float32 samples at `sample_rate` (1-D tensor); VoiceError if unreadable."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise VoiceError(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise VoiceError(f"{path}: empty audio file")
    mono = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    return resample(mono, int(rate), sample_rate).clamp(-1.0, 1.0)


@dataclass(frozen=True)
class Voice:
    name: str
    folder: Path
    clips: tuple[Path, ...]

    def digest(self) -> str:
        """sha256 over the clips' names and bytes: any change to a clip changes it."""
        hasher = hashlib.sha256()
        for clip in self.clips:
            hasher.update(clip.name.encode() + b"\0")
            hasher.update(hashlib.sha256(clip.read_bytes()).digest())
        return hasher.hexdigest()

    def load_clips(self) -> list[torch.Tensor]:
        return [read_clip(clip) for clip in self.clips]

    def seconds(self) -> float:
        import soundfile

        return sum(soundfile.info(str(clip)).duration for clip in self.clips)


def _clips_in(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CLIP_SUFFIXES))


def list_voices() -> list[Voice]:
    """Every voice with at least one clip, sorted by name (user voices shadow shipped ones)."""
    found: dict[str, Voice] = {}
    for root in voices_dirs():
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and folder.name not in found and _NAME_RE.match(folder.name):
                clips = _clips_in(folder)
                if clips:
                    found[folder.name] = Voice(folder.name, folder, clips)
    return [found[name] for name in sorted(found)]


def get_voice(name: str) -> Voice:
    for voice in list_voices():
        if voice.name == name:
            return voice
    known = ", ".join(v.name for v in list_voices()) or "none"
    raise VoiceError(f"unknown voice {name!r} (known: {known}); add one with `assistant voices add NAME CLIP...`")


def check_clip(path: Path) -> float:
    """Duration of a usable reference clip; VoiceError explaining what is wrong otherwise."""
    if not path.is_file():
        raise VoiceError(f"{path}: no such file")
    if path.suffix.lower() not in CLIP_SUFFIXES:
        raise VoiceError(f"{path}: clips must be {', '.join(CLIP_SUFFIXES)} files")
    samples = read_clip(path)
    seconds = len(samples) / CONDITIONING_SAMPLE_RATE
    if seconds < MIN_CLIP_SECONDS:
        raise VoiceError(f"{path}: {seconds:.2f} s is too short (at least {MIN_CLIP_SECONDS} s; 6-10 s works best)")
    if seconds > MAX_CLIP_SECONDS:
        raise VoiceError(f"{path}: {seconds:.0f} s is too long (at most {MAX_CLIP_SECONDS:.0f} s; 6-10 s works best)")
    if float(samples.abs().max()) < 1e-4:
        raise VoiceError(f"{path}: the clip is silent")
    return seconds


def add_voice(name: str, clips: Sequence[str | Path], *, replace: bool = False) -> Voice:
    """Create a user voice from clips (copied unchanged). All clips are checked before anything
    is written, and the folder appears atomically, so a bad clip leaves no half-made voice."""
    if not _NAME_RE.match(name):
        raise VoiceError(f"voice name {name!r}: use 1-64 letters, digits, '-' or '_'")
    if not clips:
        raise VoiceError("give at least one clip (two or more 6-10 s clips work best)")
    sources = [Path(c).expanduser() for c in clips]
    for source in sources:
        check_clip(source)
    root = user_voices_dir()
    target = root / name
    if target.exists() and not replace:
        raise VoiceError(f"voice {name!r} already exists in {root} (pass replace=True / --replace to overwrite)")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        for index, source in enumerate(sources, start=1):
            shutil.copyfile(source, staging / f"{index:02d}-{source.stem[:40]}{source.suffix.lower()}")
        if target.exists():
            old = root / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Voice(name, target, _clips_in(target))
