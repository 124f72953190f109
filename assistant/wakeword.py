"""The optional wake word: microWakeWord models (pymicro-wakeword) on the microphone's frames.

Off by default: the assistant is VAD-first (every speech segment is a possible command). A wake
word is for rooms where that hears too much (a TV, a busy kitchen): with one, a segment is
recognised only when the wake word was heard in it or shortly before (see
`assistant.conversation`).

`pymicro-wakeword` 2.5.0 (Apache-2.0, Michael Hansen, github.com/OHF-Voice/pymicro-wakeword;
its feature frontend `pymicro-features` is Apache-2.0 too) ships the four models (`hey_jarvis`,
`okay_nabu`, `hey_mycroft`, `alexa`, by Kevin Ahrendt for microWakeWord; their JSON files name
no licence of their own, so the wheel's Apache-2.0 is the one that applies to what we receive)
and the TensorFlow Lite C library inside its wheel, so it works offline. It is
imported only when a wake word is asked for. It takes 10 ms chunks of 16 kHz s16le; our 30 ms
frames are three of them. Each model averages its per-stride probabilities over a short window
and fires above its own cutoff (0.97 for hey_jarvis); a detection repeats for a few strides,
so one utterance of the wake word is reported once (`refractory_seconds`).

The wake phrase usually starts the same segment as the command ("hey jarvis, what time is
it"), so `strip_wake_phrase` removes it from the transcript before matching; Whisper spells
it in several ways ("Hey, Jarvis.", "A Jarvis", "Hey Travis"), hence the fuzzy comparison.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from assistant.audio.format import FRAME_BYTES, SAMPLE_RATE

WAKE_WORDS: dict[str, str] = {
    "hey_jarvis": "hey jarvis",
    "okay_nabu": "okay nabu",
    "hey_mycroft": "hey mycroft",
    "alexa": "alexa",
}
"""The models inside pymicro-wakeword, and the phrase each one listens for."""

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
STRIP_SIMILARITY = 0.75
"""How close the first words of a transcript must be to the wake phrase (difflib ratio over
their letters) to be taken for it: "a jarvis" 0.82, "hey travis" 0.89, "hey" alone 0.5."""


@dataclass(frozen=True)
class WakeWordSettings:
    """Which wake word, and how its detections are reported."""

    model: str = "hey_jarvis"
    """One of WAKE_WORDS: hey_jarvis, okay_nabu, hey_mycroft, alexa."""
    threshold: float | None = None
    """Probability above which the model fires; None: the model's own cutoff (its authors' tuning)."""
    refractory_seconds: float = 1.0
    """After a detection, further detections within this much audio are the same utterance."""

    def __post_init__(self) -> None:
        if self.model not in WAKE_WORDS:
            raise ValueError(f"unknown wake word {self.model!r}; choose one of: {', '.join(WAKE_WORDS)}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold!r}")
        if self.refractory_seconds < 0:
            raise ValueError(f"refractory_seconds must not be negative, got {self.refractory_seconds!r}")

    @property
    def phrase(self) -> str:
        return WAKE_WORDS[self.model]


class WakeWordDetector:
    """Streaming detector: `feed` one 30 ms frame at a time, True on the frame where it fires."""

    def __init__(self, settings: WakeWordSettings = WakeWordSettings()) -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self.settings = settings
        self._model = MicroWakeWord.from_builtin(Model(settings.model))
        self._features = MicroWakeWordFeatures()
        self.threshold = settings.threshold if settings.threshold is not None else float(self._model.probability_cutoff)
        self._samples = 0
        self._quiet_until = 0
        self.max_probability = 0.0
        """The highest probability seen so far (for benchmarks and tuning)."""

    @property
    def phrase(self) -> str:
        return self.settings.phrase

    def feed(self, frame: bytes) -> bool:
        """One frame of s16le 16 kHz mono (FRAME_BYTES long) -> True if the wake word ends here."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame must be {FRAME_BYTES} bytes (30 ms s16le 16 kHz mono), got {len(frame)}")
        fired = False
        for features in self._features.process_streaming(frame):
            probability = self._model.process_streaming_prob(features)
            if probability is None:
                continue
            self.max_probability = max(self.max_probability, probability)
            if probability > self.threshold:
                fired = True
        self._samples += len(frame) // 2
        if fired and self._samples >= self._quiet_until:
            self._quiet_until = self._samples + int(self.settings.refractory_seconds * SAMPLE_RATE)
            return True
        return False

    def close(self) -> None:
        self._model.close()


def strip_wake_phrase(text: str, phrase: str) -> tuple[str, bool]:
    """(`text` without a leading wake phrase, whether one was found).

    The first one to (words in the phrase + 1) words are compared with the phrase, letters only;
    the closest prefix at or above STRIP_SIMILARITY is removed with the punctuation after it.
    """
    target = re.sub(r"[^a-z]", "", phrase.lower())
    words = list(_WORD.finditer(text))
    best_score, best_end = 0.0, 0
    for count in range(1, min(len(words), len(phrase.split()) + 1) + 1):
        letters = re.sub(r"[^a-z]", "", "".join(m.group() for m in words[:count]).lower())
        score = difflib.SequenceMatcher(None, letters, target).ratio()
        if score > best_score:
            best_score, best_end = score, words[count - 1].end()
    if best_score < STRIP_SIMILARITY:
        return text, False
    return text[best_end:].lstrip(" \t,.!?;:-"), True
