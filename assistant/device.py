"""Choosing the compute device (who runs on it when: `assistant.scheduler`)."""

from __future__ import annotations

import re

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?|xpu(:\d+)?)$")


def resolve_device(name: str = "auto") -> str:
    """Turn a user's device choice into a torch device string, failing clearly when absent.

    `auto` prefers CUDA, then XPU, then MPS, then CPU.
    """
    import torch

    if not _DEVICE_RE.match(name):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N, xpu, xpu:N or mps")
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if hasattr(torch, "xpu") and torch.xpu.is_available():
            return "xpu"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise ValueError(f"device {name!r} requested but XPU is not available")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available")
    return name


def uses_half_precision(device: str) -> bool:
    """fp16 only on CUDA/XPU: on CPU it is slower or unsupported, and MPS lacks some fp16 ops."""
    return device.startswith(("cuda", "xpu"))
