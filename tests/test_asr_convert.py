"""The CTranslate2 -> openai-whisper converter, on synthetic model.bin files written from a
random Whisper (exact round trip), on quantized weights, and on broken inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import whisper

from assistant.asr.convert import ConversionError, check_vocabulary, convert, main, read_ct2_model_bin
from assistant.asr.weights import source_model_dir
from asr_support import ct2_variables, random_whisper, write_ct2


@pytest.fixture(scope="module")
def model():
    return random_whisper(seed=1)


def _model_dir(tmp_path, variables, **kwargs):
    folder = tmp_path / "ct2"
    folder.mkdir()
    write_ct2(folder / "model.bin", variables, **kwargs)
    return folder


def test_round_trip_is_exact_and_loads_through_whisper(tmp_path, model):
    folder = _model_dir(tmp_path, ct2_variables(model))
    (folder / "config.json").write_text(json.dumps({"alignment_heads": [[0, 1]]}))
    out = tmp_path / "m.pt"
    info = convert(folder, out, dtype="float32")
    assert info.dims == {k: getattr(model.dims, k) for k in info.dims}
    assert info.spec == "WhisperSpec" and info.version == 6
    loaded = whisper.load_model(str(out), device="cpu")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert torch.load(out, weights_only=True)["alignment_heads"] == [[0, 1]]


def test_float16_output_and_model_bin_path(tmp_path, model):
    folder = _model_dir(tmp_path, ct2_variables(model))
    out = tmp_path / "m16.pt"
    convert(folder / "model.bin", out)
    state = torch.load(out, weights_only=True)["model_state_dict"]
    assert state["encoder.conv1.weight"].dtype == torch.float16
    assert torch.allclose(state["encoder.conv1.weight"].float(), model.state_dict()["encoder.conv1.weight"], atol=1e-3)


def test_output_is_byte_identical_across_runs(tmp_path, model):
    folder = _model_dir(tmp_path, ct2_variables(model))
    convert(folder, tmp_path / "a.pt")
    convert(folder, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_int8_weights_are_dequantized_with_their_row_scales(tmp_path, model):
    variables = ct2_variables(model)
    name = "decoder/layer_0/ffn/linear_0/weight"
    weight = variables[name]
    scale = (127 / np.abs(weight).max(axis=1)).astype(np.float32)
    variables[name] = np.round(weight * scale[:, None]).astype(np.int8)
    variables[name + "_scale"] = scale
    out = tmp_path / "q.pt"
    convert(_model_dir(tmp_path, variables), out, dtype="float32")
    got = torch.load(out, weights_only=True)["model_state_dict"]["decoder.blocks.0.mlp.0.weight"].numpy()
    assert np.abs(got - weight).max() <= (1 / scale).max() / 2 + 1e-6


def test_aliases_resolve_to_their_target(tmp_path, model):
    variables = ct2_variables(model)
    _, parsed = read_ct2_model_bin(write_ct2(tmp_path / "a.bin", variables, aliases={"decoder/projection/weight": "decoder/embeddings/weight"}))
    assert np.array_equal(parsed["decoder/projection/weight"], variables["decoder/embeddings/weight"])


def test_untied_projection_is_refused(tmp_path, model):
    variables = ct2_variables(model)
    variables["decoder/projection/weight"] = variables["decoder/embeddings/weight"] + 1
    with pytest.raises(ConversionError, match="not tied"):
        convert(_model_dir(tmp_path, variables), tmp_path / "x.pt")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"spec": "TransformerSpec"}, "not a Whisper model"), ({"version": 3}, "unsupported CTranslate2 binary version 3")],
)
def test_wrong_kind_of_file_is_refused_by_name(tmp_path, model, kwargs, message):
    path = write_ct2(tmp_path / "model.bin", ct2_variables(model), **kwargs)
    with pytest.raises(ConversionError, match=message) as info:
        read_ct2_model_bin(path)
    assert str(path) in str(info.value)


def test_truncated_and_padded_files_are_refused(tmp_path, model):
    good = write_ct2(tmp_path / "model.bin", ct2_variables(model)).read_bytes()
    (tmp_path / "short.bin").write_bytes(good[: len(good) // 2])
    (tmp_path / "long.bin").write_bytes(good + b"\0\0")
    with pytest.raises(ConversionError, match="short.bin: not a readable"):
        read_ct2_model_bin(tmp_path / "short.bin")
    with pytest.raises(ConversionError, match="trailing bytes"):
        read_ct2_model_bin(tmp_path / "long.bin")


def test_real_vocabulary_matches_whisper_tokenizer_and_a_changed_one_does_not(tmp_path):
    vocab = source_model_dir() / "vocabulary.txt"
    check_vocabulary(vocab, 51864)
    tokens = vocab.read_text(encoding="utf-8").split("\n")
    tokens[1000] = "Ġbogus"
    changed = tmp_path / "vocabulary.txt"
    changed.write_text("\n".join(tokens), encoding="utf-8")
    with pytest.raises(ConversionError, match="1 entries"):
        check_vocabulary(changed, 51864)


def test_command_line(tmp_path, model, capsys):
    folder = _model_dir(tmp_path, ct2_variables(model))
    shutil.copy(source_model_dir() / "vocabulary.txt", folder)  # checked against whisper's tokenizer
    assert main([str(folder), str(tmp_path / "cli.pt")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert whisper.load_model(str(tmp_path / "cli.pt"), device="cpu").dims.n_vocab == 51864
