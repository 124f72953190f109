"""The recognition policy: speech audio in, the transcript and the command it names out.

The listen loop, the HTTP API and the Wyoming server all ask the same question of a speech
segment ("what was said, and which command is it?"), so the answer is decided here, once, on
the asr floor. The command set is a collaborator seen through `CommandMatcher` (anything with
`match` and `vocabulary`): the asr floor never imports the intents package.

Guided recognition (`recognition="guided"`, assistant/asr/guided.py): one short-context encoder
pass feeds a beam over the sentences the commands allow (the decoding guide, rebuilt on every
`replace_commands`) and a free decode of the same audio; the best grammar sentence is acted on
when `assistant.asr.confidence.judge` accepts it (path "guided", with its confidence). When it
is rejected, or the audio is silent, or no guide can be built (an empty or wildcard-only
grammar), the free policy below decides, as it would alone (the full-window pass only: the
short pass has been tried, guided).

The free policy, measured on the committed speech (docs/benchmarks.md): a short-context Whisper
pass with the commands' vocabulary as the prompt, accepted when its text is exactly one of the
commands; otherwise the full 30 s window without a prompt, as openai-whisper's `transcribe()`
would, and whatever that text matches (a near-miss repair included) under the matcher's rules.
19 of 19 right at a median ~170 ms instead of ~410 ms for the full window alone; chatter and
near-misses pay for both passes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from assistant.asr.confidence import GuidedSettings, judge
from assistant.asr.settings import Transcript

log = logging.getLogger(__name__)


class CommandMatch(Protocol):
    """What a matched command carries (an `assistant.intents.IntentMatch`)."""

    intent: str
    slots: Mapping[str, Any]
    text: str
    exact: bool


class CommandMatcher(Protocol):
    """The active commands (an `assistant.intents.CommandSet`)."""

    def match(self, text: str) -> CommandMatch | None: ...

    def can_continue(self, text: str) -> bool: ...

    def vocabulary(self) -> list[str]: ...

    def barge_in_intents(self) -> frozenset[str]: ...

    def barge_in_vocabulary(self) -> list[str]: ...


class Transcriber(Protocol):
    """A resident speech-to-text model (an `assistant.asr.WhisperASR`)."""

    def transcribe(self, audio: np.ndarray, prompt: str | None = None, *, short_context: bool | None = None) -> Transcript: ...

    def vocabulary_prompt(self, words: list[str]) -> str | None: ...


RECOGNITION_MODES = ("guided", "free")


@dataclass(frozen=True)
class RecognizerSettings:
    """How a speech segment becomes a command."""

    short_first_pass: bool = True
    """Recognise in two passes: first Whisper over the audio only (short context, with the
    vocabulary prompt), accepted when its text is exactly one of the commands; otherwise again
    over the full 30 s window without a prompt. False: the full window only (slower, same
    accuracy on the committed speech)."""

    vocabulary_prompt: bool = True
    """Give the first pass the commands' words as a prompt ("Pern on the kitchen lights" became
    "Turn on ..." with it)."""

    recognition: str = "free"
    """"guided": Whisper decodes what the commands allow, acted on when the calibrated
    confidence accepts it, else the free policy; "free": Whisper transcribes freely and the
    text is matched (the short/full passes above). Guided needs a resident openai-whisper
    (`WhisperASR`); with anything else it decodes freely."""

    guided: GuidedSettings = GuidedSettings()
    """Rejection thresholds of the guided path (calibrated; see GuidedSettings)."""

    barge_in_logprob: float = -1.6
    """While a reply plays, a short-pass text that the ASR's average log-probability guard
    (-1.0) dropped still counts when it is at least this and exactly a stop-set command. The
    echo canceller's output is harder to hear: in the virtual room tiny.en scored a spoken
    "stop" over a reply at -1.06 to -1.55, so the full 30 s window had to decide (~0.5 s more).
    A wrong barge-in can only cut a reply short, never run another command."""

    def __post_init__(self) -> None:
        if self.barge_in_logprob > 0:
            raise ValueError(f"barge_in_logprob is an average log-probability (<= 0), got {self.barge_in_logprob!r}")
        if self.recognition not in RECOGNITION_MODES:
            raise ValueError(f"recognition must be one of {', '.join(RECOGNITION_MODES)}, got {self.recognition!r}")


class RecognitionError(Exception):
    """A stage of recognition failed; `stage` names it ("asr" or "match") for events and metrics."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.stage = stage


@dataclass(frozen=True)
class Recognition:
    """The outcome for one speech segment."""

    text: str
    """What was heard ("" when nothing was kept: silence, noise, an invented "Thank you.")."""
    match: CommandMatch | None
    """The command, or None (no text, or text that is no command)."""
    path: str
    """Which pass decided: "guided" (a grammar sentence, accepted by its confidence), or a free
    pass: "short" (short-context first pass) or "full" (the 30 s window)."""
    asr_ms: float
    """Whisper time behind this result, all passes together (a reused first pass included)."""
    match_ms: float
    """Matcher time, all passes together."""
    passes: int
    """Whisper passes behind this result (1 or 2; a guided decode is one: its free row shares the pass)."""
    reused: bool = False
    """The first pass was a speculative one's, run earlier on the same audio."""
    confidence: float | None = None
    """The guided sentence's confidence (0..1, see `confidence.Verdict`), also when it was
    rejected and a free pass decided; None when no guided decode ran."""
    pass_ms: tuple[float, ...] = ()
    """Whisper ms of each pass in order, set by `barge_in` (the loop's barge-in event breaks
    the time to stop a reply down by pass; empty elsewhere)."""


@dataclass(frozen=True)
class FirstPass:
    """The first pass's transcript of some audio, kept so that the same audio is not decoded
    twice (a speculative recognition at a pause, then the command closed on that audio)."""

    text: str
    asr_ms: float
    guided: Any = None
    """The guided decode of this audio (`GuidedDecode`: grammar sentences and the free row of
    one encoder pass) when recognition is guided; None on the free path."""


def _unsure_text(segments: list[dict[str, Any]], floor: float) -> str:
    """The text of a segment the ASR dropped for its average log-probability alone, when that
    average is at least `floor` ("" otherwise)."""
    for segment in segments:
        reason = str(segment.get("dropped", ""))
        if reason.startswith("avg_logprob") and float(segment.get("avg_logprob", -math.inf)) >= floor:
            return str(segment.get("text", "")).strip()
    return ""


class Recognizer:
    """Owns the recognition policy and the active commands (replaced on hot reload)."""

    def __init__(self, asr: Transcriber, commands: CommandMatcher, settings: RecognizerSettings = RecognizerSettings()) -> None:
        self.asr = asr
        self.settings = settings
        self._lock = threading.Lock()
        self._commands = commands
        self._prompt = self._make_prompt(commands)
        self._decoder: Any = None
        self._guide = self._make_guide(commands)
        self._other_prompts: dict[tuple[str, ...], str | None] = {}

    @property
    def commands(self) -> CommandMatcher:
        with self._lock:
            return self._commands

    @property
    def prompt(self) -> str | None:
        """The vocabulary prompt the first pass gets (None: no prompt)."""
        with self._lock:
            return self._prompt

    def replace_commands(self, commands: CommandMatcher) -> None:
        """Hot reload: the next segment is recognised against `commands`."""
        prompt = self._make_prompt(commands)
        guide = self._make_guide(commands)  # built by the caller (the reload), not the worker
        with self._lock:
            self._commands = commands
            self._prompt = prompt
            self._guide = guide

    @property
    def guide(self) -> Any:
        """The decoding guide of the active commands (None: recognition is free)."""
        with self._lock:
            return self._guide

    def recognize(self, audio: np.ndarray, reuse: FirstPass | None = None,
                  commands: CommandMatcher | None = None) -> Recognition:
        """float32 mono 16 kHz speech -> Recognition. Raises RecognitionError when a stage fails.

        `reuse`: the first pass already run on exactly this audio (by `complete`).
        `commands`: recognise this segment against another set instead of the active commands
        (the answers to a yes/no question, the commands behind a wake phrase): free two-pass
        recognition with that set's own vocabulary prompt (no guide, no reuse)."""
        if commands is not None:
            prompt, guide, reuse = self._other_prompt(commands), None, None
        else:
            with self._lock:
                commands, prompt, guide = self._commands, self._prompt, self._guide
        if guide is not None:
            reused_guided = reuse is not None and reuse.guided is not None
            decoded = reuse.guided if reused_guided else self._decode_guided(audio, guide)
            if decoded is not None:
                accepted, verdict, match_ms = self._judge(decoded, commands, reused_guided)
                if accepted is not None:
                    return accepted
                log.info("guided %r rejected: %s", verdict.text, verdict.reason)
                # The short-context pass has been tried (guided): the full window decides.
                text, full_ms = self._transcribe(audio, None, short=False)
                match, more_ms = self._match(commands, text)
                return Recognition(text, match, "full", decoded.duration_ms + full_ms, match_ms + more_ms, 2,
                                   reused_guided, confidence=verdict.confidence)
            reuse = None  # below the silence gate: the free passes run on their own
        two_pass = self.settings.short_first_pass
        first = reuse or self._first_pass(audio, prompt)
        reused = reuse is not None
        asr_ms = first.asr_ms
        text = first.text
        match, match_ms = self._match(commands, text)
        if not two_pass:
            return Recognition(text, match, "full", asr_ms, match_ms, 1, reused)
        if match is not None and match.exact:
            return Recognition(text, match, "short", asr_ms, match_ms, 1, reused)
        # Not exactly a command: maybe the short context misheard; ask the full window.
        text, more_ms = self._transcribe(audio, None, short=False)
        if text != first.text:
            match, more_match_ms = self._match(commands, text)
            match_ms += more_match_ms
        log.debug("second pass over the full window: %r -> %r", first.text, text)
        return Recognition(text, match, "full", asr_ms + more_ms, match_ms, 2, reused)

    def complete(self, audio: np.ndarray) -> tuple[Recognition | None, FirstPass]:
        """Is the speech so far (at a pause) a whole command? One first pass decides: a
        Recognition when its text is exactly a command that no longer command of the grammar
        extends ("turn off the kitchen lights"; not "turn off the kitchen", nor "stop", which
        "stop the timer" extends), else None. Guided, the pass is the guided decode and the
        command must pass the same confidence check as a closed segment's. The first pass comes
        back for reuse either way (`recognize(audio, reuse=...)` on the same audio decodes nothing
        again)."""
        with self._lock:
            commands, prompt, guide = self._commands, self._prompt, self._guide
        if guide is not None:
            decoded = self._decode_guided(audio, guide)
            if decoded is not None:  # guided: the same confidence as a closed command needs
                first = FirstPass(decoded.free.text.strip(), decoded.duration_ms, decoded)
                accepted, _, _ = self._judge(decoded, commands, False)
                if accepted is None or self._continues(commands, accepted.text):
                    return None, first
                return accepted, first
        first = self._first_pass(audio, prompt)
        match, match_ms = self._match(commands, first.text)
        if match is None or not match.exact or self._continues(commands, first.text):
            return None, first
        path = "short" if self.settings.short_first_pass else "full"
        return Recognition(first.text, match, path, first.asr_ms, match_ms, 1), first

    @staticmethod
    def _continues(commands: CommandMatcher, text: str) -> bool:
        try:
            return commands.can_continue(text)
        except Exception as exc:  # noqa: BLE001
            raise RecognitionError("match", exc) from exc

    def _judge(self, decoded: Any, commands: CommandMatcher, reused: bool) -> tuple[Recognition | None, Any, float]:
        """The guided decode judged against `commands`: (the accepted Recognition or None, the
        verdict, matcher ms)."""
        started = time.perf_counter()
        try:
            verdict = judge(decoded, commands.match, self.settings.guided)
        except Exception as exc:  # noqa: BLE001
            raise RecognitionError("match", exc) from exc
        match_ms = (time.perf_counter() - started) * 1000
        if verdict.match is None:
            return None, verdict, match_ms
        return (Recognition(verdict.text, verdict.match, "guided", decoded.duration_ms, match_ms, 1, reused,
                            confidence=verdict.confidence), verdict, match_ms)

    def barge_in(self, audio: np.ndarray) -> Recognition:
        """Speech heard while a reply plays: is it one of the stop set? One first pass, matched
        against the full grammar and kept only when it is an exact match of an intent the
        matcher lists in `barge_in_intents()` ("stop", "be quiet"); a near-miss repair is never
        taken (it could make "stop" of the reply's own words), and any other command ("stop the
        timer", "turn on the lights") comes back with `match` None: never acted on mid-reply.
        The first pass is prompted with the stop set's own words (`barge_in_vocabulary()`), not
        the whole grammar's: with those, tiny.en heard "stop" over a reply as "start" and the
        full window (~0.4-0.75 s more on 2 cores) had to decide (docs/bargein.md, "Where the
        time goes")."""
        with self._lock:
            commands = self._commands
        try:
            allowed = commands.barge_in_intents()
            words = commands.barge_in_vocabulary()
        except Exception as exc:  # noqa: BLE001
            raise RecognitionError("match", exc) from exc
        prompt = self._words_prompt(tuple(words))
        first = self._first_pass(audio, prompt, unsure=self.settings.barge_in_logprob)
        match, match_ms = self._stop_match(commands, allowed, first.text)
        if match is not None or not self.settings.short_first_pass:
            return Recognition(first.text, match, "short" if self.settings.short_first_pass else "full",
                               first.asr_ms, match_ms, 1, pass_ms=(first.asr_ms,))
        # The short context often hears "stop" over a reply as "I start": ask the full window.
        text, more_ms = self._transcribe(audio, None, short=False)
        match, more_match_ms = self._stop_match(commands, allowed, text)
        return Recognition(text, match, "full", first.asr_ms + more_ms, match_ms + more_match_ms, 2,
                           pass_ms=(first.asr_ms, more_ms))

    def _stop_match(self, commands: CommandMatcher, allowed: frozenset[str], text: str) -> tuple[CommandMatch | None, float]:
        match, match_ms = self._match(commands, text)
        if match is not None and (not match.exact or match.intent not in allowed):
            match = None
        return match, match_ms

    def _first_pass(self, audio: np.ndarray, prompt: str | None, unsure: float | None = None) -> FirstPass:
        text, asr_ms = self._transcribe(audio, prompt, short=self.settings.short_first_pass, unsure=unsure)
        return FirstPass(text, asr_ms)

    def _transcribe(self, audio: np.ndarray, prompt: str | None, *, short: bool,
                    unsure: float | None = None) -> tuple[str, float]:
        """The kept text and Whisper ms. `unsure`: a text dropped only by the average
        log-probability guard is kept when its average is at least this (the caller checks it
        against a small set)."""
        try:
            transcript = self.asr.transcribe(audio, prompt=prompt, short_context=short)
        except Exception as exc:  # noqa: BLE001 - reported by the caller with its stage
            raise RecognitionError("asr", exc) from exc
        text = transcript.text.strip()
        if not text and unsure is not None:
            text = _unsure_text(transcript.segments, unsure)
        if not text:
            why = "; ".join(s.get("dropped", "") for s in transcript.segments) or "nothing recognised"
            log.info("%.2f s of speech gave no text (%s)", len(audio) / 16000, why)
        return text, transcript.duration_ms

    @staticmethod
    def _match(commands: CommandMatcher, text: str) -> tuple[CommandMatch | None, float]:
        if not text:
            return None, 0.0
        started = time.perf_counter()
        try:
            match = commands.match(text)
        except Exception as exc:  # noqa: BLE001
            raise RecognitionError("match", exc) from exc
        return match, (time.perf_counter() - started) * 1000

    def _decode_guided(self, audio: np.ndarray, guide: Any) -> Any:
        if self._decoder is None:
            from assistant.asr.guided import GuidedDecoder

            self._decoder = GuidedDecoder(self.asr)  # type: ignore[arg-type]
        try:
            return self._decoder.decode(audio, guide)
        except Exception as exc:  # noqa: BLE001 - reported with its stage
            raise RecognitionError("asr", exc) from exc

    def _make_guide(self, commands: CommandMatcher) -> Any:
        """The decoding guide of `commands`, or None when recognition stays free: not asked
        for, a model that is not a resident openai-whisper, a command set without a hassil
        grammar, or a grammar that leaves nothing to guide with (empty, wildcards only)."""
        if self.settings.recognition != "guided":
            return None
        tokenizer, model = getattr(self.asr, "tokenizer", None), getattr(self.asr, "model", None)
        if tokenizer is None or model is None or not hasattr(commands, "hassil_intents"):
            log.warning("guided recognition needs a resident Whisper and a hassil command set: decoding freely")
            return None
        from assistant.asr.guide import build_guide

        started = time.perf_counter()
        try:
            guide = build_guide(commands, tokenizer, model.dims.n_vocab)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - recognition goes on, freely
            log.error("cannot build the decoding guide (%s: %s): decoding freely", type(exc).__name__, exc)
            return None
        if guide.empty:
            log.warning("the commands leave nothing to guide with (no sentence with a fixed word): decoding freely")
            return None
        log.info("decoding guide: %d sentence templates (%d wildcard-only left out) in %.0f ms",
                 guide.templates, guide.dropped_templates, (time.perf_counter() - started) * 1000)
        return guide

    def _other_prompt(self, commands: CommandMatcher) -> str | None:
        """The prompt of a set other than the active one, kept for the few sets a loop uses."""
        return self._words_prompt(tuple(commands.vocabulary()))

    def _words_prompt(self, words: tuple[str, ...]) -> str | None:
        """The prompt of these words (another set's, or the stop set's), kept for the few a
        loop uses."""
        if not self.settings.vocabulary_prompt:
            return None
        with self._lock:
            if words in self._other_prompts:
                return self._other_prompts[words]
        prompt = self.asr.vocabulary_prompt(list(words))
        with self._lock:
            if len(self._other_prompts) >= 8:
                self._other_prompts.pop(next(iter(self._other_prompts)))
            self._other_prompts[words] = prompt
        return prompt

    def _make_prompt(self, commands: CommandMatcher) -> str | None:
        if not self.settings.vocabulary_prompt:
            return None
        return self.asr.vocabulary_prompt(commands.vocabulary())
