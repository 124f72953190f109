"""Sampling randomness private to one synthesis.

Tortoise seeds the *global* torch / numpy / random generators on every call (its streaming
generator even reseeds to 0 each time), which changes every other user of randomness in the
process. A `PrivateRNG` keeps its own generator states (the CPU's and the accelerator's) and
swaps them in only while its synthesis runs (under the model lock), so a seeded reply is
reproducible even when other model work is interleaved between its streamed chunks, and the
global states are left exactly as they were. Nothing is ever seeded globally: the initial
states come from fresh `torch.Generator`s.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch

_ACCELERATORS = ("cuda", "xpu", "mps")


class PrivateRNG:
    def __init__(self, seed: int | None, device: str) -> None:
        self.seed = random.SystemRandom().randrange(2**63) if seed is None else int(seed)
        kind = torch.device(device).type
        self._device = device
        self._accel: ModuleType | None = getattr(torch, kind) if kind in _ACCELERATORS else None
        self._cpu_state = torch.Generator().manual_seed(self.seed).get_state()
        self._accel_state = (
            torch.Generator(device=device).manual_seed(self.seed).get_state() if self._accel is not None else None
        )

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this generator the process's torch RNG for the duration, then restore the global one."""
        saved_cpu = torch.get_rng_state()
        saved_accel = self._accel.get_rng_state(self._device) if self._accel is not None else None
        torch.set_rng_state(self._cpu_state)
        if self._accel is not None:
            self._accel.set_rng_state(self._accel_state, self._device)
        try:
            yield
        finally:
            self._cpu_state = torch.get_rng_state()
            torch.set_rng_state(saved_cpu)
            if self._accel is not None:
                self._accel_state = self._accel.get_rng_state(self._device)
                self._accel.set_rng_state(saved_accel, self._device)
