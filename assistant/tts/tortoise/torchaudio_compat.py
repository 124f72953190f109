"""A pure-torch stand-in for the few torchaudio functions tortoise-tts uses.

tortoise-tts imports torchaudio without declaring it, and no CPU torchaudio wheel exists for
torch 2.13 (the PyPI one is a CUDA build that fails to import here). Tortoise only needs
`transforms.MelSpectrogram` (HTK mel scale, slaney norm, power spectrum) and
`functional.resample` (windowed-sinc, Hann), plus `load`/`save` in its scripts. These are
ports of torchaudio 2.11's algorithms; `ensure_torchaudio()` registers them under the name
`torchaudio` only when the real package cannot be imported, so a working torchaudio always wins.
"""

from __future__ import annotations

import importlib.machinery
import math
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    resampling_method: str = "sinc_interp_hann",
) -> torch.Tensor:
    """Band-limited resampling over the last dimension (torchaudio's sinc_interp_hann kernel)."""
    if resampling_method not in ("sinc_interp_hann", "sinc_interpolation"):
        raise ValueError(f"resampling method {resampling_method!r} is not supported by the stand-in")
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_freq} -> {new_freq}")
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    dtype = waveform.dtype if waveform.is_floating_point() else torch.float32
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64, device=waveform.device)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64, device=waveform.device)[:, None, None] / new + idx
    t = (t * base).clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    scale = base / orig
    kernel = torch.where(t == 0, torch.ones_like(t), t.sin() / t) * window * scale
    kernel = kernel.to(dtype)
    shape = waveform.size()
    wav = waveform.to(dtype).reshape(-1, shape[-1])
    n, length = wav.shape
    wav = F.pad(wav, (width, width + orig))
    out = F.conv1d(wav[:, None], kernel, stride=orig).transpose(1, 2).reshape(n, -1)
    out = out[..., : int(math.ceil(new * length / orig))]
    return out.view(shape[:-1] + out.shape[-1:])


def hz_to_mel_htk(freq: float) -> float:
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int, norm: str | None
) -> torch.Tensor:
    """Triangular HTK-scale filters, shape (n_freqs, n_mels), as torchaudio.functional.melscale_fbanks."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_pts = torch.linspace(hz_to_mel_htk(f_min), hz_to_mel_htk(f_max), n_mels + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.clamp(torch.min(down, up), min=0)
    if norm == "slaney":
        fb = fb * (2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels])).unsqueeze(0)
    elif norm is not None:
        raise ValueError(f"mel norm {norm!r} is not supported by the stand-in")
    return fb


class MelSpectrogram(torch.nn.Module):
    """torchaudio.transforms.MelSpectrogram for the options tortoise uses (centred reflect-padded STFT)."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = None,
        pad: int = 0,
        n_mels: int = 128,
        power: float = 2.0,
        normalized: bool = False,
        center: bool = True,
        pad_mode: str = "reflect",
        norm: str | None = None,
        mel_scale: str = "htk",
    ) -> None:
        super().__init__()
        if mel_scale != "htk" or normalized or pad:
            raise ValueError("the torchaudio stand-in supports only mel_scale='htk', normalized=False, pad=0")
        self.n_fft = n_fft
        self.win_length = win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.power = power
        self.center = center
        self.pad_mode = pad_mode
        self.register_buffer("window", torch.hann_window(self.win_length))
        fb = mel_filterbank(n_fft // 2 + 1, f_min, f_max or sample_rate / 2, n_mels, sample_rate, norm)
        self.register_buffer("fb", fb)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        shape = waveform.shape
        spec = torch.stft(
            waveform.reshape(-1, shape[-1]),
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs().pow(self.power)
        mel = torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)
        return mel.reshape(shape[:-1] + mel.shape[-2:])


def load(path: str | Path, *args: object, **kwargs: object) -> tuple[torch.Tensor, int]:
    """(channels, frames) float32 tensor and sample rate, like torchaudio.load with defaults."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)


def save(path: str | Path, waveform: torch.Tensor, sample_rate: int, *args: object, **kwargs: object) -> None:
    """16-bit PCM WAV from a (channels, frames) or (frames,) float tensor."""
    import soundfile

    data = waveform.detach().cpu().float()
    data = data.unsqueeze(0) if data.dim() == 1 else data.reshape(-1, data.shape[-1])
    soundfile.write(str(path), data.clamp(-1, 1).numpy().T, int(sample_rate), subtype="PCM_16")


def build_module() -> types.ModuleType:
    """The stand-in package object with its two submodules, each with a `__spec__`.

    transformers probes `importlib.util.find_spec("torchaudio")`, which raises for a module in
    sys.modules whose `__spec__` is None.
    """
    root = types.ModuleType("torchaudio")
    root.__version__ = "0+assistant.standin"
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.MelSpectrogram = MelSpectrogram
    functional = types.ModuleType("torchaudio.functional")
    functional.resample = resample
    root.transforms = transforms
    root.functional = functional
    root.load = load
    root.save = save
    for module in (root, transforms, functional):
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    return root


def ensure_torchaudio() -> str:
    """Make `import torchaudio` work; returns which one is in use ("real" or "stand-in")."""
    current = sys.modules.get("torchaudio")
    if current is not None:
        return "stand-in" if current.__version__ == "0+assistant.standin" else "real"
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):  # OSError: the CUDA-only wheel fails on libc10_cuda.so
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            del sys.modules[name]
        root = build_module()
        sys.modules.update(
            {"torchaudio": root, "torchaudio.transforms": root.transforms, "torchaudio.functional": root.functional}
        )
        return "stand-in"
    return "real"
