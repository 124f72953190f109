"""espeak-ng: the always-there voice (Debian package), robotic but ~10 ms per reply.

Run as a subprocess with an argument list and the text on stdin, never through a shell and never
as an argument: reply text can contain slot values from untrusted transcripts, and text starting
with "-" would otherwise be read as an option.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

from assistant.audio.clip import Audio
from assistant.tts.base import TTSUnavailable


class EspeakEngine:
    """Synthesises through the `espeak-ng` program; `voice` is an espeak-ng voice name (en-us, en-gb, ...)."""

    name = "espeak"
    deterministic = True
    """The same text always gives the same samples: re-rendering a misheard reply is pointless."""

    def __init__(self, voice: str = "en-us", speed_wpm: int = 165, program: str = "espeak-ng",
                 timeout_s: float = 30.0) -> None:
        path = shutil.which(program)
        if path is None:
            raise TTSUnavailable(f"{program} not found: install the Debian package espeak-ng (scripts/setup.sh does)")
        self.program = path
        self.voice = voice
        self.speed_wpm = speed_wpm
        self.timeout_s = timeout_s
        self._voices: frozenset[str] | None = None
        self.check_voice(voice)

    def voices(self) -> frozenset[str]:
        """Names espeak-ng accepts for -v: languages (en-us), voice names and voice files (gmw/en-US)."""
        if self._voices is None:
            listing = subprocess.run([self.program, "--voices"], capture_output=True, text=True, check=False,
                                     timeout=self.timeout_s).stdout
            names: set[str] = set()
            for line in listing.splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 5:
                    names.update(field.lower() for field in (fields[1], fields[3], fields[4]))
            self._voices = frozenset(names)
        return self._voices

    def check_voice(self, voice: str) -> None:
        """espeak-ng silently speaks in its default voice when -v names no voice: refuse instead."""
        base = voice.split("+", 1)[0].lower()  # "+f3" etc. select a variant of a voice
        if base not in self.voices():
            raise ValueError(f"unknown espeak-ng voice {voice!r} (see `espeak-ng --voices`; e.g. en-us, en-gb)")

    @property
    def cache_key(self) -> str:
        """Settings that change the sound, for the reply cache key."""
        return f"speed={self.speed_wpm}"

    def synthesize(self, text: str, voice: str | None = None) -> Audio:
        voice = voice or self.voice
        self.check_voice(voice)
        command = [self.program, "--stdout", "-b", "1", "-v", voice, "-s", str(self.speed_wpm)]
        try:
            result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True,
                                    timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"espeak-ng took longer than {self.timeout_s} s") from exc
        if result.returncode != 0 or not result.stdout:
            message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
            raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {message}")
        return Audio.from_wav_bytes(_fix_stream_header(result.stdout))

    def stream(self, text: str, voice: str | None = None) -> Iterator[Audio]:
        """espeak-ng is fast enough that one chunk for the whole reply is the lowest latency."""
        yield self.synthesize(text, voice)


def _fix_stream_header(data: bytes) -> bytes:
    """espeak-ng writes a WAV header for an unknown length when its output is a pipe
    (data size 0x7ffffff..); rewrite both sizes from the bytes actually received."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[36:40] != b"data":
        return data
    body = len(data) - 44
    return b"RIFF" + (body + 36).to_bytes(4, "little") + data[8:40] + body.to_bytes(4, "little") + data[44:]
