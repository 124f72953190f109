"""glibc malloc: large blocks go back to the system when they are freed.

Whisper (torch) and Piper (onnxruntime) take their activations from malloc: blocks of hundreds
of KiB to tens of MiB, freed after every pass. glibc serves a block of 128 KiB or more with mmap
and unmaps it on free, but the first time such a block is freed it raises that threshold to the
block's size (up to 32 MiB, its "dynamic mmap threshold"). From then on the activations are carved
from the heap of the calling thread's arena, and an arena hands memory back only from the top of
its heap. Every thread that runs a model (the recognition worker, each pre-render thread whose
self-check runs Whisper, and whichever threads later land on those arenas) keeps the high-water
mark of those passes in its own arena: in the 8 h soak RSS rose in steps of 13-57 MiB for 4.5 h
(+205 MiB; +104 MiB with MALLOC_ARENA_MAX=2), and `malloc_trim(0)` at the end gave 100+ MiB back
(docs/reliability.md "Soak"). Setting the threshold explicitly switches the dynamic adjustment off,
so those blocks are unmapped on free again. The price, measured on 2 CPU cores: tiny.en's short
pass ~5 % slower, its full window ~14 % (each pass faults its activations in afresh); Piper none.

Elsewhere (musl, macOS, Windows) this does nothing: their allocators have no such threshold.
"""

from __future__ import annotations

import ctypes
import platform
import threading

M_MMAP_THRESHOLD = -3
"""glibc's mallopt parameter number (malloc.h)."""
MMAP_THRESHOLD = 128 * 1024
"""glibc's own starting value: blocks of this size and more are mapped and unmapped on their own."""

_lock = threading.Lock()
_done: bool | None = None


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold for this process (once; later calls return the first answer).
    True where it took effect, False where the C library is not glibc or refused."""
    global _done
    with _lock:
        if _done is None:
            _done = _set_threshold()
        return _done


def _set_threshold() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
