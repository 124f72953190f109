"""When a guided sentence may be acted on: calibrated margins against the free decode and the runner-up.

A guided decode always ends somewhere in the grammar, whatever was said ("What's the time" was
the probe's favourite attractor for chatter; see ../shared/GUIDED.md). It is trusted only when
the audio supports it:
- against the free decode of the same audio: the guided sentence's mean per-token
  log-probability may fall below the free decode's by at most `margin`: what the grammar forced
  on speech it does not describe costs several nats per token;
- against the best grammar sentence of another meaning (another intent or other slot values,
  "on" for "off", "15" for "50"): the best must lead by `competitor_margin` in total
  log-probability, so a confident swap of one word still needs a clear lead;
- no single token of a sentence Whisper did not say by itself may fall below `weakest_token`
  (a swapped word, a forced end while the audio goes on);
- a number in the guided sentence must be one the free decode wrote too, when the free decode
  wrote digits at all (the grammar must not turn "70" into "7" or "2001 100 52" into "2150");
- Whisper's no-speech probability must stay below `no_speech`.
The thresholds come from bench/calibrate_guided.py (generated speech, never the benchmark).
This module has no torch: it judges numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class _Sentence(Protocol):
    text: str
    logprob: float
    token_logprobs: tuple[float, ...]

    @property
    def mean_logprob(self) -> float: ...


class _Decode(Protocol):
    sentences: tuple[Any, ...]
    free: Any
    no_speech_prob: float


class _Match(Protocol):
    intent: str
    slots: Mapping[str, Any]
    exact: bool


@dataclass(frozen=True)
class GuidedSettings:
    """Rejection thresholds of guided recognition, calibrated with bench/calibrate_guided.py on
    two sets of 202 generated clips (48 commands of commands.yaml, 20 near-miss and 30 chatter
    sentences, four synthetic voices, clean and at 10 dB SNR white noise, plus noise alone);
    see docs/guided.md for the tables they were chosen from."""

    margin: float = 0.75
    """Most the guided sentence's mean per-token log-probability may fall below the free
    decode's. Measured on two calibration sets (seeds 20261203 and 7041): commands mostly
    within 0.5 (Whisper's own text often is the sentence, margin 0); near-miss sentences forced
    into the grammar as close as 0.83 ("what day is the party" -> "What day is it?", 10 dB) and
    1.20; chatter 1.55 to 6.9 below. 0.75 fired on nothing in either set; 1.0 let that
    near-miss through."""

    competitor_margin: float = 2.0
    """Least total log-probability lead over the best sentence of another meaning (the beam's
    runner-up). Measured: wrong sentences that passed the margin led by 0.06-1.03 ("13 hour" ->
    "30 minutes", "pasta sauce" -> "past a source", a dropped "and 3490 seconds"); right ones
    mostly by 3 to 25. 2.0 rejected all three wrong ones on clean speech at no loss of right ones."""

    weakest_token: float = 4.0
    """Lowest log-probability any one token (end-of-text included) of a guided sentence may
    have when Whisper did not say that sentence by itself. The per-token margin spreads a
    one-word swap over the whole sentence; this catches it where it happens: "turn off the
    bedroom light" for "bathroom", "2 minutes" for "two hours", an end-of-text forced while the
    audio still speaks ("turn on the kitchen lights" for "... to twenty-six percent"). On the
    calibration set (seed 7041, margin 0.75, competitor 2.0): off, 2 + 1 wrong commands and 1
    near-miss fired; 5.0, 1 + 1 and 0; 4.0, none wrong and none fired, for 3 of 96 right commands
    left to the free passes (tokens at -4.25 to -4.67 in misheard noise); 3.0 loses 8."""

    no_speech: float = 0.8
    """Whisper's no-speech probability at which the audio counts as no speech (the ASR's own
    drop threshold: noise gives 0.9 and more, a short "stop" up to 0.7 in short context)."""

    def __post_init__(self) -> None:
        if self.margin < 0 or self.competitor_margin < 0 or self.weakest_token < 0:
            raise ValueError("margins are non-negative log-probabilities")
        if not 0 < self.no_speech <= 1:
            raise ValueError(f"no_speech must be in (0, 1], got {self.no_speech!r}")


@dataclass(frozen=True)
class Verdict:
    """The judgement of one guided decode."""

    match: Any
    """The command of the best grammar sentence when accepted, else None."""
    text: str
    """The best grammar sentence ("" when the beam ended nowhere)."""
    confidence: float
    """0..1: exp(per-token margin against the free decode, capped at 0) times the best's share
    against its runner-up of another meaning (a two-way softmax of the total log-probabilities)."""
    reason: str
    """Why it was rejected ("" when accepted)."""
    margin: float
    competitor_margin: float | None


def judge(decode: _Decode, match: Callable[[str], _Match | None], settings: GuidedSettings) -> Verdict:
    """Accept or reject the best sentence of `decode`; `match` is the commands' matcher."""
    if not decode.sentences:
        return Verdict(None, "", 0.0, "no grammar sentence fits the audio", -math.inf, None)
    best = decode.sentences[0]
    margin = best.mean_logprob - decode.free.mean_logprob if decode.free.text else 0.0
    if same_words(best.text, decode.free.text):
        margin = max(margin, 0.0)  # Whisper said exactly this by itself
    found = match(best.text)
    runner_up = None
    meaning = _meaning(found)
    for other in decode.sentences[1:]:
        if _meaning(match(other.text)) != meaning:
            runner_up = best.logprob - other.logprob
            break
    share = 1.0 if runner_up is None else 1.0 / (1.0 + math.exp(-runner_up))
    confidence = math.exp(min(0.0, margin)) * share
    reason = ""
    if found is None or not getattr(found, "exact", True):
        reason = "the guided sentence is not exactly a command (context or a reload in between)"
    elif decode.no_speech_prob >= settings.no_speech:
        reason = f"no_speech_prob {decode.no_speech_prob:.2f} >= {settings.no_speech}"
    elif margin < -settings.margin:
        reason = f"{-margin:.2f} per token below the free decode {decode.free.text!r} (> {settings.margin})"
    elif not same_words(best.text, decode.free.text) and min(best.token_logprobs, default=0.0) < -settings.weakest_token:
        weakest = min(best.token_logprobs)
        reason = f"one token at {weakest:.2f} (< -{settings.weakest_token}): the audio says something else there"
    elif not numbers_agree(best.text, decode.free.text):
        reason = f"a number of {best.text!r} is not one the free decode {decode.free.text!r} heard"
    elif runner_up is not None and runner_up < settings.competitor_margin:
        reason = f"only {runner_up:.2f} ahead of a sentence of another meaning (< {settings.competitor_margin})"
    return Verdict(None if reason else found, best.text, confidence, reason, margin, runner_up)


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_agree(guided: str, free: str) -> bool:
    """Every number written in digits in `guided` is also in `free`, unless `free` has none."""
    heard = {n.replace(",", "") for n in _NUMBER.findall(free)}
    if not heard:
        return True
    return all(n.replace(",", "") in heard for n in _NUMBER.findall(guided))


def _meaning(found: _Match | None) -> tuple | None:
    if found is None:
        return None
    return (found.intent, tuple(sorted((str(k), repr(v)) for k, v in found.slots.items())))


def same_words(a: str, b: str) -> bool:
    """The same words, case and punctuation aside (Whisper said the sentence by itself)."""
    def words(text: str) -> list[str]:
        return ["".join(c for c in w.casefold() if c.isalnum() or c == "'") for w in text.split()]

    return bool(a) and words(a) == words(b)
