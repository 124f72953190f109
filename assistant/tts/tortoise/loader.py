"""Building Tortoise's models from its real classes and loading weights strictly.

tortoise-tts's own `TextToSpeech` objects hard-code full model sizes, load weights with
`strict=False` (a missing key silently leaves random weights), look for weights through a hub
download helper, and move models to "cuda" regardless of the chosen device. We construct the
same classes with sizes from `ModelSizes`, load each file from a plain models directory,
refuse missing keys, and place everything on the device the user chose.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from assistant import paths
from assistant.tts.base import TTSUnavailable
from assistant.tts.tortoise.config import WEIGHT_FILES, ModelSizes
from assistant.tts.tortoise.torchaudio_compat import ensure_torchaudio

log = logging.getLogger(__name__)


class TortoiseUnavailable(TTSUnavailable):
    """Tortoise cannot run: weights missing or unusable. The Speech facade falls back on this."""


class TortoiseWeightsError(TortoiseUnavailable):
    """A weights file exists but does not fit the model (missing keys, wrong shapes, corrupt)."""


def default_models_dir() -> Path:
    return paths.models_dir() / "tortoise"


def missing_weights(models_dir: Path) -> list[str]:
    """Weight files the models directory lacks (empty list: complete)."""
    return [name for name in WEIGHT_FILES.values() if not (Path(models_dir) / name).is_file()]


def weights_identity(models_dir: Path, part: str) -> str:
    """Cheap identity of one weights file: name, size and modification time.

    Hashing gigabytes on every start would cost more than the latents it protects; replacing a
    file (fetch, copy) changes its size or mtime, which is what invalidation needs.
    """
    path = Path(models_dir) / WEIGHT_FILES[part]
    stat = path.stat()
    return f"{WEIGHT_FILES[part]}:{stat.st_size}:{stat.st_mtime_ns}"


def import_tortoise() -> None:
    """Import tortoise with torchaudio available and streaming generation installed.

    Two warnings tortoise's code triggers on every load or reply are silenced (by exact message):
    its models use the older weight_norm API, and its streaming generator configures generation
    the way transformers 4.31 calls deprecated. Neither is actionable for a user.
    """
    warnings.filterwarnings("ignore", message=r"`torch\.nn\.utils\.weight_norm` is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message="You have modified the pretrained model configuration", category=UserWarning)
    ensure_torchaudio()
    from tortoise.models.stream_generator import init_stream_support

    init_stream_support()


# Keys tortoise's checkpoints may carry that our classes do not have: GPT-2 attention mask buffers
# older transformers versions saved. Anything else unexpected is logged.
_BENIGN_UNEXPECTED = (".attn.bias", ".attn.masked_bias")


def load_state_strict(module: torch.nn.Module, path: Path, *, unwrap: str | None = None) -> None:
    """Load a state dict and fail on missing keys or shape mismatches (never leave random weights)."""
    try:
        # mmap: tensors are read straight into the model's parameters, so the state dict is never a
        # second in-memory copy of the weights (1.7 GB for the GPT at full size)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises RuntimeError, pickle/zip errors, EOFError for truncation
        raise TortoiseWeightsError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    if unwrap is not None:
        if not isinstance(state, dict) or unwrap not in state:
            raise TortoiseWeightsError(f"{path}: expected a checkpoint with a {unwrap!r} entry")
        state = state[unwrap]
    if not isinstance(state, dict):
        raise TortoiseWeightsError(f"{path}: not a state dict")
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # size mismatches raise even when strict=False
        raise TortoiseWeightsError(f"{path}: weights do not fit the configured model sizes: {exc}") from exc
    if result.missing_keys:
        shown = ", ".join(result.missing_keys[:5])
        more = f" (and {len(result.missing_keys) - 5} more)" if len(result.missing_keys) > 5 else ""
        raise TortoiseWeightsError(f"{path}: {len(result.missing_keys)} weights missing: {shown}{more}")
    unexpected = [k for k in result.unexpected_keys if not k.endswith(_BENIGN_UNEXPECTED)]
    if unexpected:
        log.warning("%s: ignoring %d unexpected keys (e.g. %s)", path, len(unexpected), unexpected[0])


def build_model(part: str, sizes: ModelSizes) -> torch.nn.Module:
    """One Tortoise model, randomly initialised, in eval mode on the CPU."""
    import_tortoise()
    kwargs: dict[str, Any] = dict(getattr(sizes, part))
    if part == "autoregressive":
        from tortoise.models.autoregressive import UnifiedVoice

        return UnifiedVoice(**kwargs).eval()
    if part == "hifigan":
        from tortoise.models.hifigan_decoder import HifiganGenerator

        return HifiganGenerator(**kwargs).eval()
    if part == "diffusion":
        from tortoise.models.diffusion_decoder import DiffusionTts

        return DiffusionTts(**kwargs).eval()
    if part == "clvp":
        from tortoise.models.clvp import CLVP

        return CLVP(**kwargs).eval()
    if part == "vocoder":
        from tortoise.models.vocoder import UnivNetGenerator

        vocoder = UnivNetGenerator(**kwargs)
        vocoder.eval()  # UnivNetGenerator.eval returns None, unlike nn.Module.eval
        return vocoder
    raise ValueError(f"unknown Tortoise model part {part!r}")


def save_state(part: str, module: torch.nn.Module, models_dir: Path) -> Path:
    """Write a model's weights in the layout the published files use (vocoder wrapped in model_g)."""
    path = Path(models_dir) / WEIGHT_FILES[part]
    state = module.state_dict()
    torch.save({"model_g": state} if part == "vocoder" else state, path)
    return path


def load_model(part: str, models_dir: Path, sizes: ModelSizes, device: str, *, kv_cache: bool = True) -> torch.nn.Module:
    """Build one model, load its weights strictly and put it on `device`, ready for inference."""
    path = Path(models_dir) / WEIGHT_FILES[part]
    if not path.is_file():
        raise TortoiseUnavailable(f"Tortoise weights missing: {path} (run `assistant models fetch tortoise`)")
    with torch.random.fork_rng(devices=[]):  # random init is overwritten; keep the global RNG as it was
        model = build_model(part, sizes)
    load_state_strict(model, path, unwrap="model_g" if part == "vocoder" else None)
    if part == "autoregressive":
        # kv-cache: 3-4x faster generation than tortoise's default (kv_cache=False).
        model.post_init_gpt2_config(use_deepspeed=False, kv_cache=kv_cache, half=False)
    if part == "vocoder":
        model.eval(inference=True)  # folds weight norm into the weights, as tortoise does after loading
    else:
        model.eval()
    return model.to(device)


@dataclass
class TortoiseModels:
    """The loaded models of one models directory on one device; each part loads on first use.

    The fast path needs only the autoregressive model and HiFiGAN; diffusion, CLVP and the
    vocoder (several GB at full size) load only when the classic path first runs.
    """

    models_dir: Path
    sizes: ModelSizes
    device: str
    half: bool
    _parts: dict[str, torch.nn.Module] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _tokenizer: Any = None
    _mel: Any = None
    _univnet_stft: Any = None

    def get(self, part: str) -> torch.nn.Module:
        with self._lock:
            if part not in self._parts:
                log.info("loading Tortoise %s from %s on %s", part, self.models_dir, self.device)
                self._parts[part] = load_model(part, self.models_dir, self.sizes, self.device)
            return self._parts[part]

    @property
    def loaded_parts(self) -> tuple[str, ...]:
        return tuple(self._parts)

    @property
    def autoregressive(self) -> torch.nn.Module:
        return self.get("autoregressive")

    @property
    def hifigan(self) -> torch.nn.Module:
        return self.get("hifigan")

    @property
    def diffusion(self) -> torch.nn.Module:
        return self.get("diffusion")

    @property
    def clvp(self) -> torch.nn.Module:
        return self.get("clvp")

    @property
    def vocoder(self) -> torch.nn.Module:
        return self.get("vocoder")

    @property
    def tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                import_tortoise()
                from tortoise.utils.tokenizer import VoiceBpeTokenizer

                self._tokenizer = VoiceBpeTokenizer()
            return self._tokenizer

    @property
    def conditioning_mel(self) -> torch.nn.Module:
        """Tortoise's 22.05 kHz, 80-band normalised mel for the autoregressive conditioning."""
        with self._lock:
            if self._mel is None:
                import_tortoise()
                from tortoise.models.arch_util import TorchMelSpectrogram

                self._mel = TorchMelSpectrogram()
            return self._mel

    @property
    def univnet_stft(self) -> torch.nn.Module:
        """The 24 kHz, 100-band STFT of the diffusion conditioning, built once (tortoise rebuilds it,
        with a numpy pseudo-inverse, for every clip of every call)."""
        with self._lock:
            if self._univnet_stft is None:
                import_tortoise()
                from tortoise.utils.audio import TacotronSTFT

                self._univnet_stft = TacotronSTFT(1024, 256, 1024, 100, 24000, 0, 12000).to(self.device)
            return self._univnet_stft

    def part_identity(self, part: str) -> str:
        """Weights file identity plus the sizes it was built with (for latent cache keys)."""
        sizes = json.dumps(getattr(self.sizes, part), sort_keys=True)
        digest = hashlib.sha256(sizes.encode()).hexdigest()[:12]
        return f"{weights_identity(self.models_dir, part)}:{digest}"


def open_models(models_dir: Path, device: str, half: bool, sizes: ModelSizes | None = None) -> TortoiseModels:
    """A lazily loading model set; fails at once when weight files are missing."""
    models_dir = Path(models_dir)
    missing = missing_weights(models_dir)
    if missing:
        raise TortoiseUnavailable(
            f"Tortoise weights missing in {models_dir}: {', '.join(missing)} (run `assistant models fetch tortoise`)"
        )
    if sizes is None:
        try:
            sizes = ModelSizes.for_models_dir(models_dir)
        except ValueError as exc:
            raise TortoiseWeightsError(str(exc)) from exc
    return TortoiseModels(models_dir, sizes, device, half)
