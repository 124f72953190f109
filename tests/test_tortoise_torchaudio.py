"""The pure-torch torchaudio stand-in tortoise imports: mel and resampling against references."""

from __future__ import annotations

import importlib.util
import math
import sys
import types

import librosa
import numpy as np
import pytest
import torch

from assistant.tts.tortoise import torchaudio_compat as ta


def test_mel_equals_librosa_reference():
    # tortoise's conditioning mel: 22.05 kHz, n_fft 1024, hop 256, 80 HTK bands to 8 kHz, slaney norm.
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(22050).astype(np.float32) * 0.1
    ours = ta.MelSpectrogram(
        sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, f_min=0, f_max=8000, n_mels=80,
        power=2, normalized=False, norm="slaney",
    )(torch.from_numpy(wave)).numpy()
    reference = librosa.feature.melspectrogram(
        y=wave.astype(np.float64), sr=22050, n_fft=1024, hop_length=256, win_length=1024, window="hann",
        center=True, pad_mode="reflect", power=2.0, n_mels=80, fmin=0, fmax=8000, htk=True, norm="slaney",
    )
    assert ours.shape == reference.shape == (80, 1 + 22050 // 256)
    # float32 STFT vs float64: relative error well under 1e-4 of the spectrum's scale
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-4 * reference.max())


def test_mel_keeps_batch_dimensions():
    mel = ta.MelSpectrogram(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=80, norm="slaney")
    assert mel(torch.zeros(2, 3, 4096)).shape == (2, 3, 80, 17)


def test_resample_sine_matches_analytic_and_length():
    rate_in, rate_out, freq = 22050, 24000, 440.0
    t_in = np.arange(rate_in) / rate_in
    out = ta.resample(torch.from_numpy(np.sin(2 * math.pi * freq * t_in)).float(), rate_in, rate_out).numpy()
    assert len(out) == math.ceil(rate_in * rate_out / rate_in)
    expected = np.sin(2 * math.pi * freq * np.arange(len(out)) / rate_out)
    interior = slice(200, -200)  # the edges see zero padding
    assert np.max(np.abs(out[interior] - expected[interior])) < 2e-3


def test_resample_identity_and_bad_rates():
    wave = torch.randn(100)
    assert ta.resample(wave, 16000, 16000) is wave
    with pytest.raises(ValueError):
        ta.resample(wave, 0, 16000)


@pytest.fixture
def no_torchaudio_loaded():
    """sys.modules without any torchaudio; whatever was there is put back afterwards."""
    names = [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]
    saved = {n: sys.modules.pop(n) for n in names}
    yield
    for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_stand_in_is_registered_when_the_import_fails_and_is_findable(no_torchaudio_loaded):
    sys.modules["torchaudio"] = None  # makes `import torchaudio` raise ImportError, like a missing or CUDA-only wheel
    assert ta.ensure_torchaudio() == "stand-in"
    import torchaudio

    assert torchaudio.transforms.MelSpectrogram is ta.MelSpectrogram
    assert torchaudio.functional.resample is ta.resample
    # transformers probes find_spec("torchaudio"); a module without __spec__ makes that raise
    assert importlib.util.find_spec("torchaudio") is not None
    assert ta.ensure_torchaudio() == "stand-in"  # idempotent


def test_a_real_torchaudio_is_used_when_it_imports(no_torchaudio_loaded, tmp_path, monkeypatch):
    (tmp_path / "torchaudio.py").write_text('__version__ = "2.11.0"\n')  # an installed, working torchaudio
    monkeypatch.syspath_prepend(str(tmp_path))
    assert ta.ensure_torchaudio() == "real"
    assert sys.modules["torchaudio"].__file__ == str(tmp_path / "torchaudio.py")
    assert ta.ensure_torchaudio() == "real"  # and once imported, it is recognised as real


def test_an_already_imported_torchaudio_is_left_alone(no_torchaudio_loaded):
    real = types.ModuleType("torchaudio")
    real.__version__ = "2.11.0"
    sys.modules["torchaudio"] = real
    assert ta.ensure_torchaudio() == "real"
    assert sys.modules["torchaudio"] is real


def test_save_load_round_trip(tmp_path):
    wave = torch.sin(torch.linspace(0, 100, 8000)).unsqueeze(0) * 0.5
    ta.save(tmp_path / "x.wav", wave, 16000)
    loaded, rate = ta.load(tmp_path / "x.wav")
    assert rate == 16000 and loaded.shape == (1, 8000)
    assert torch.max(torch.abs(loaded - wave)) < 1e-4
