"""Self-check: listen to a rendered reply with Whisper and re-render when it says something else.

Tortoise sometimes skips, repeats or babbles words. catwalk (the project this grew from) caught
that by transcribing each rendering, but compared an integer edit distance with 0.2, so any
single-word slip failed and only exact matches passed. Here the score is a word error rate
(edits / reference words) over text normalised the same way on both sides (case, punctuation,
and digits vs number words: "7:30" and "seven thirty" are the same reply), compared with a
threshold (0.25 by default: one slip in a four-word reply passes, two do not).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assistant.audio.clip import Audio
from assistant.tts.textnorm import normalize

log = logging.getLogger(__name__)

WHISPER_RATE = 16_000
PAD_SECONDS = 0.3
"""Silence put around a reply before transcribing: the resident Whisper is tuned for VAD
segments, which carry pre- and post-roll, while TTS output starts and stops almost at once."""

Transcriber = Callable[[np.ndarray], str]
"""Float32 mono 16 kHz samples -> transcript text (e.g. the resident Whisper)."""


def normalized_words(text: str) -> list[str]:
    """Lower-case words with numbers spelled out and punctuation dropped ("twenty-one" -> two words)."""
    spoken = normalize(text).lower().replace("-", " ")
    return re.findall(r"[a-z0-9']+", spoken.replace("'", ""))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after `normalized_words`.

    An empty reference scores 0.0 against an empty hypothesis and 1.0 against anything else.
    """
    ref = normalized_words(reference)
    hyp = normalized_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1] / len(ref)


def whisper_transcriber(asr: object) -> Transcriber:
    """Adapt `assistant.asr.WhisperASR` (transcribe(audio) -> Transcript) to a `Transcriber`."""

    def transcribe(samples: np.ndarray) -> str:
        return asr.transcribe(samples).text  # type: ignore[attr-defined]

    return transcribe


@dataclass(frozen=True)
class CheckResult:
    audio: Audio
    wer: float
    tries: int
    transcript: str
    threshold: float

    @property
    def passed(self) -> bool:
        return self.wer <= self.threshold


@dataclass
class SelfCheck:
    """Render, transcribe, score; re-render up to `max_tries` times and keep the best rendering."""

    transcriber: Transcriber
    threshold: float = 0.25
    max_tries: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold:
            raise ValueError(f"self-check threshold must be >= 0, got {self.threshold}")
        if self.max_tries < 1:
            raise ValueError(f"self-check needs at least one try, got {self.max_tries}")

    def score(self, text: str, audio: Audio) -> tuple[float, str]:
        pad = np.zeros(int(PAD_SECONDS * WHISPER_RATE), dtype=np.float32)
        transcript = self.transcriber(np.concatenate([pad, audio.resampled(WHISPER_RATE).samples, pad]))
        return word_error_rate(text, transcript), transcript

    def run(self, text: str, render: Callable[[], Audio]) -> CheckResult:
        """Call `render` until a rendering scores within the threshold or the tries run out."""
        best: CheckResult | None = None
        for attempt in range(1, self.max_tries + 1):
            audio = render()
            wer, transcript = self.score(text, audio)
            if best is None or wer < best.wer:
                best = CheckResult(audio, wer, attempt, transcript, self.threshold)
            if wer <= self.threshold:
                break
            log.info("self-check: %r heard as %r (WER %.2f > %.2f), try %d of %d",
                     text, transcript, wer, self.threshold, attempt, self.max_tries)
        assert best is not None
        if best.wer > self.threshold:
            log.warning("self-check: %r still heard as %r after %d tries (WER %.2f); keeping the best",
                        text, best.transcript, self.max_tries, best.wer)
        return CheckResult(best.audio, best.wer, attempt, best.transcript, self.threshold)
