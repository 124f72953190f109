"""Sampling randomness private to one synthesis.

Tortoise seeds the *global* torch / numpy / random generators on every call (its streaming
generator even reseeds to 0 each time), which changes every other user of randomness in the
process. A `PrivateRNG` keeps its own generator state and swaps it in only while its synthesis
runs (under the model lock), so a seeded reply is reproducible even when other model work is
interleaved between its streamed chunks, and the global state is left as it was.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class PrivateRNG:
    def __init__(self, seed: int | None, device: str) -> None:
        self.seed = random.SystemRandom().randrange(2**63) if seed is None else int(seed)
        self._cuda = (torch.device(device).index or 0) if device.startswith("cuda") else None
        with torch.random.fork_rng(devices=self._devices()):
            torch.manual_seed(self.seed)
            self._cpu_state = torch.get_rng_state()
            self._cuda_state = torch.cuda.get_rng_state(self._cuda) if self._cuda is not None else None

    def _devices(self) -> list[int]:
        return [self._cuda] if self._cuda is not None else []

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this generator the process's torch RNG for the duration, then restore the global one."""
        with torch.random.fork_rng(devices=self._devices()):
            torch.set_rng_state(self._cpu_state)
            if self._cuda is not None:
                torch.cuda.set_rng_state(self._cuda_state, self._cuda)
            try:
                yield
            finally:
                self._cpu_state = torch.get_rng_state()
                if self._cuda is not None:
                    self._cuda_state = torch.cuda.get_rng_state(self._cuda)
