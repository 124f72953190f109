"""WAV reading for any common layout, and 16-bit writing.

The standard library's `wave` reads integer PCM only; recorders and TTS tools also write
IEEE float and WAVE_FORMAT_EXTENSIBLE files, and multi-channel or 24-bit audio. This small
RIFF reader accepts all of them and turns anything else into an `AudioFormatError` that names
the file, instead of a struct error deep in a stack trace.
"""

from __future__ import annotations

import logging
import struct
import wave
from pathlib import Path

import numpy as np

from assistant.audio.format import AudioFormatError, float_to_pcm16

log = logging.getLogger(__name__)

_PCM = 0x0001
_FLOAT = 0x0003
_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZE = 0xFFFFFFFF  # streaming writers put this (or 0) before they know the length


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 mono samples in -1..1 and its sample rate.

    Channels are averaged. Integer PCM of 8 (unsigned), 16, 24 or 32 bits and float of 32 or
    64 bits are accepted, plain or WAVE_FORMAT_EXTENSIBLE. A data chunk shorter than its header
    claims (a recording cut off) is read as far as it goes, with a warning.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise AudioFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return decode_wav(blob, str(path))


def decode_wav(blob: bytes, name: str = "WAV data") -> tuple[np.ndarray, int]:
    """`read_wav` for bytes already in memory (an HTTP upload); errors start with `name`."""
    if len(blob) < 12 or blob[0:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise AudioFormatError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id = blob[pos : pos + 4]
        (size,) = struct.unpack_from("<I", blob, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(name, blob[body : body + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError(f"{name}: corrupt WAV: data chunk before fmt chunk")
            available = len(blob) - body
            if size in (0, _UNKNOWN_SIZE):
                size = available
            elif size > available:
                log.warning("%s: data chunk claims %d bytes but only %d are present; reading what is there", name, size, available)
                size = available
            return _decode(name, blob[body : body + size], fmt)
        pos = body + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise AudioFormatError(f"{name}: corrupt WAV: no fmt chunk")
    raise AudioFormatError(f"{name}: corrupt WAV: no data chunk")


def decode_pcm(data: bytes, width: int, channels: int, name: str = "PCM audio") -> np.ndarray:
    """Raw interleaved little-endian integer PCM (8-bit unsigned, 16/24/32-bit signed) ->
    float32 mono in -1..1, channels averaged; what network peers send (Wyoming audio chunks).
    A trailing partial frame is dropped; an impossible layout raises AudioFormatError."""
    if width not in (1, 2, 3, 4):
        raise AudioFormatError(f"{name}: unsupported sample width {width!r} bytes (1-4)")
    if not isinstance(channels, int) or not 1 <= channels <= 32:
        raise AudioFormatError(f"{name}: unsupported channel count {channels!r} (1-32)")
    samples, _ = _decode(name, data, (_PCM, channels, 1, channels * width, width * 8))
    return samples


def _parse_fmt(name: str, body: bytes) -> tuple[int, int, int, int, int]:
    if len(body) < 16:
        raise AudioFormatError(f"{name}: corrupt WAV: fmt chunk is {len(body)} bytes, needs 16")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body, 0)
    if tag == _EXTENSIBLE:
        if len(body) < 26:
            raise AudioFormatError(f"{name}: corrupt WAV: WAVE_FORMAT_EXTENSIBLE without a sub-format")
        (tag,) = struct.unpack_from("<H", body, 24)  # first two bytes of the sub-format GUID
    if tag not in (_PCM, _FLOAT):
        raise AudioFormatError(f"{name}: unsupported WAV encoding 0x{tag:04x} (only PCM and IEEE float)")
    if channels < 1 or rate < 1:
        raise AudioFormatError(f"{name}: corrupt WAV: {channels} channels at {rate} Hz")
    if (tag == _PCM and bits not in (8, 16, 24, 32)) or (tag == _FLOAT and bits not in (32, 64)):
        kind = "PCM" if tag == _PCM else "float"
        raise AudioFormatError(f"{name}: unsupported WAV sample size: {bits}-bit {kind}")
    if block_align != channels * bits // 8:
        raise AudioFormatError(f"{name}: corrupt WAV: block align {block_align} for {channels} x {bits}-bit")
    return tag, channels, rate, block_align, bits


def _decode(name: str, data: bytes, fmt: tuple[int, int, int, int, int]) -> tuple[np.ndarray, int]:
    tag, channels, rate, block_align, bits = fmt
    usable = len(data) - len(data) % block_align
    data = data[:usable]
    if tag == _FLOAT:
        with np.errstate(over="ignore"):  # a 64-bit value beyond float32 becomes inf: refused below
            samples = np.frombuffer(data, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
        if not np.all(np.isfinite(samples)):
            raise AudioFormatError(f"{name}: corrupt WAV: float samples that are NaN or infinite")
    elif bits == 8:
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 16:
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    elif bits == 24:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
        samples = ints.astype(np.float32) / 8388608.0
    else:
        samples = (np.frombuffer(data, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32), rate


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float mono samples (-1..1) as a 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(float_to_pcm16(samples))
