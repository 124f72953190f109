"""glibc's mmap threshold stays put once a model is loaded: a large block freed by Whisper or
Piper goes back to the system, and the next one is mapped again instead of being carved from
(and kept by) the thread's arena. Each check runs in a fresh interpreter, whose malloc has
not been tuned or used for large blocks yet."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from asr_support import save_random_checkpoint

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's dynamic mmap threshold")

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import ctypes

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def mapped(size):
    before = libc.mallinfo2().hblkhd  # bytes in mmapped blocks
    block = libc.malloc(size)
    grew = libc.mallinfo2().hblkhd - before
    libc.free(block)
    return grew >= size

# a 4 MiB activation, freed, then the same again (the second pass of a model)
print(mapped(4 << 20), mapped(4 << 20))
"""


def probe(setup: str, script: str = PROBE) -> str:
    """The last line `setup` then `script` print in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MALLOC_MMAP_THRESHOLD_", None)  # the variable would fix the threshold on its own
    done = subprocess.run([sys.executable, "-c", setup + "\n" + script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_without_it_glibc_keeps_the_second_large_block_in_its_heap() -> None:
    """The behaviour the fix is for (and proof that the probe can tell the difference)."""
    assert probe("") == "True False"


def test_return_large_blocks_keeps_large_blocks_mapped() -> None:
    assert probe("from assistant.memory import return_large_blocks\nassert return_large_blocks()") == "True True"


def test_loading_piper_keeps_large_blocks_mapped() -> None:
    pytest.importorskip("piper")
    assert probe("from assistant.tts.piper import PiperEngine\nPiperEngine()") == "True True"


def test_loading_whisper_keeps_large_blocks_mapped(tmp_path: Path) -> None:
    checkpoint = save_random_checkpoint(tmp_path / "random.pt")
    setup = ("from assistant.asr import WhisperASR, WhisperSettings\n"
             f"WhisperASR(WhisperSettings(model={str(checkpoint)!r}, device='cpu'))")
    assert probe(setup) == "True True"


def test_opening_tortoise_keeps_large_blocks_mapped(tmp_path: Path) -> None:
    """Tortoise runs on torch too, in the speaker's thread and in pre-render threads."""
    from assistant.tts.tortoise.tiny import write_random_models

    models = write_random_models(tmp_path / "tortoise")
    setup = ("from assistant.tts.tortoise import TortoiseEngine\n"
             f"TortoiseEngine(models_dir={str(models)!r}, device='cpu')")
    assert probe(setup) == "True True"


PIPER_REPEATS = """
from assistant.service.metrics import rss_bytes
from assistant.tts.piper import PiperEngine

LONG = ("Your shopping list has milk, eggs, bread, butter, cheese, apples, oranges, bananas, coffee, "
        "tea, sugar, flour, rice, pasta, tomatoes, onions, garlic and olive oil.")
engine = PiperEngine()

def after(text):
    engine.synthesize(text)
    engine.synthesize("OK.")  # the long render's output has been handed over and freed by now
    return rss_bytes() / 2**20

first = after(LONG)
print(round(first), round(max(after(LONG) for _ in range(3)) - first))
"""


def test_piper_renders_the_same_long_reply_again_without_growing() -> None:
    """onnxruntime's arena, left alone, kept what each render took and fragmented: the same
    24-word reply three more times added ~100 MiB (8 times: 237 -> 666 MiB). Shrunk after every
    run, the renders after the first add nothing lasting."""
    pytest.importorskip("piper")
    first, growth = map(int, probe("", PIPER_REPEATS).split())
    assert growth <= 16, f"{growth} MiB more after 3 more renders (first {first} MiB)"
