"""Guided decoding: Whisper's own decoder scoring only what the commands allow, beside a free decode.

One short-context encoder pass (`WhisperASR._encode`, the audio plus a margin instead of 30 s)
feeds one batched decoder run with the KV cache (whisper.decoding's `PyTorchInference`):
- row 0 decodes freely (greedy, Whisper's own token suppression, stopped on repetition), the
  reference a guided sentence is measured against;
- the other rows are a small beam over the decoding guide (assistant/asr/guide.py): at each
  step only the tokens the guide allows for that row's state (a logit mask), scored with the
  log-probabilities of the full, unmasked distribution, so that a forced sentence pays for
  every token the audio does not support.
The result holds every finished grammar sentence of the beam (best first) with its total and
per-token log-probabilities, and the free decode: the recogniser decides whether to trust it
(assistant/asr/confidence.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from whisper.decoding import PyTorchInference

from assistant.asr.guide import DecodingGuide, plain_numbers
from assistant.asr.resident import WhisperASR, repeats_ngram, rms_dbfs
from assistant.scheduler import SCHEDULER, Priority


@dataclass(frozen=True)
class DecoderSettings:
    """How the guided beam searches."""

    beam_size: int = 4
    """Grammar hypotheses kept per step. 1 is greedy; more finds the runner-up sentence the
    confidence needs (an opposite pair must lose by a margin) at a small cost per step, since
    all rows share one batched decoder call."""

    runner_up_window: float = 4.0
    """Once a sentence has ended, live beams further than this (total log-probability) below it
    are abandoned: a runner-up that far behind never decides a confidence (keep it above
    `GuidedSettings.competitor_margin`). Saves the steps a wandering wildcard beam would take."""

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {self.beam_size!r}")


@dataclass(frozen=True)
class Hypothesis:
    """One decoded sentence. `logprob` sums `token_logprobs` (end-of-text included); `text` is
    the decoded text with thousands separators dropped ("3600", not "3,600")."""

    tokens: tuple[int, ...]
    text: str
    logprob: float
    token_logprobs: tuple[float, ...]

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(1, len(self.token_logprobs))


@dataclass(frozen=True)
class GuidedDecode:
    """What one shared encoder pass gave: grammar sentences (best first) and the free decode."""

    sentences: tuple[Hypothesis, ...]
    """Finished grammar sentences, best (highest total log-probability) first; empty when no
    beam reached an end within the token budget."""
    free: Hypothesis
    """The unconstrained greedy decode of the same audio."""
    no_speech_prob: float
    audio_ctx: int
    """Encoder positions decoded over (1500 = Whisper's full 30 s)."""
    duration_ms: float

    @property
    def best(self) -> Hypothesis | None:
        return self.sentences[0] if self.sentences else None


class _Inference(PyTorchInference):
    """Whisper's KV-cached decoder, whose rows may change in number from step to step: the
    cross-attention cache (filled on the first call) is reordered with the self-attention one."""

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        if source_indices != list(range(len(source_indices))) or any(
            t.shape[0] != len(source_indices) for t in self.kv_cache.values()
        ):
            index = torch.tensor(source_indices, dtype=torch.long, device=next(iter(self.kv_cache.values())).device)
            for module, tensor in self.kv_cache.items():
                self.kv_cache[module] = tensor.index_select(0, index).detach()


@dataclass
class _Beam:
    tokens: list[int]
    state: int
    logprob: float
    token_logprobs: list[float]
    parent: int = 0  # the row of the previous step this beam grew from


class GuidedDecoder:
    """Guided + free decoding over one resident Whisper (thread-safe through the model scheduler)."""

    def __init__(self, asr: WhisperASR, settings: DecoderSettings = DecoderSettings()) -> None:
        self.asr = asr
        self.settings = settings
        tokenizer = asr.tokenizer
        self.tokenizer = tokenizer
        self.n_vocab = asr.model.dims.n_vocab
        self.initial = list(tokenizer.sot_sequence_including_notimestamps)
        self.eot = tokenizer.eot
        # The free row: Whisper's default suppression (non-speech symbols, task and special tokens,
        # timestamps), and no blank or end-of-text as the first token (its SuppressBlank).
        suppress = torch.zeros(self.n_vocab, dtype=torch.bool)
        suppress[list(tokenizer.non_speech_tokens)] = True
        suppress[self.eot + 1 :] = True
        self._free_suppress = suppress
        self._first_suppress = tokenizer.encode(" ") + [self.eot]
        self._masks: dict[int, torch.Tensor] = {}  # wildcard states' masks, of `_masks_guide`
        self._masks_guide: DecodingGuide | None = None

    def decode(self, audio: np.ndarray, guide: DecodingGuide) -> GuidedDecode | None:
        """Both decodes of float32 mono 16 kHz audio, or None for audio below the silence gate
        or a guide with nothing to say (the caller decodes freely)."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)[: 30 * 16000]
        if guide.empty or audio.size == 0 or rms_dbfs(audio) < self.asr.settings.silence_dbfs:
            return None
        if guide.n_vocab != self.n_vocab:
            raise ValueError(f"the guide was built for {guide.n_vocab} tokens, the model has {self.n_vocab}")
        started = time.perf_counter()
        with SCHEDULER.slot("asr", Priority.COMMAND):
            features = self.asr._encode(audio, short=True)
            with torch.inference_mode():
                sentences, free, no_speech = self._search(features, guide, self.asr.token_budget(len(audio)))
        return GuidedDecode(
            sentences=tuple(sentences), free=free, no_speech_prob=no_speech, audio_ctx=int(features.shape[1]),
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    # -- the search ----------------------------------------------------------------------------

    def _search(self, features: torch.Tensor, guide: DecodingGuide, budget: int):
        beam_size = self.settings.beam_size
        inference = _Inference(self.asr.model, len(self.initial))
        free_tokens: list[int] = []
        free_logprobs: list[float] = []
        free_done = False
        beams = [_Beam(list(self.initial), guide.start, 0.0, [])]
        finished: list[Hypothesis] = []
        seen_finished: set[str] = set()
        rows = [list(self.initial)] + [list(b.tokens) for b in beams]
        sources: list[int] = []
        no_speech = 0.0
        try:
            for step in range(budget + 1):
                tokens = torch.tensor(rows, dtype=torch.long, device=features.device)
                if step == 0:
                    logits = inference.logits(tokens, features.expand(len(rows), -1, -1))
                    probs_at_sot = logits[0, self.initial.index(self.tokenizer.sot)].float().softmax(-1)
                    no_speech = float(probs_at_sot[self.tokenizer.no_speech])
                else:
                    inference.rearrange_kv_cache(sources)
                    logits = inference.logits(tokens, features)
                logprobs = torch.log_softmax(logits[:, -1].float(), dim=-1)
                row = 0
                next_rows: list[list[int]] = []
                next_sources: list[int] = []
                if not free_done:
                    token, value = self._free_step(logprobs[0], step, free_tokens, budget)
                    free_logprobs.append(value)
                    if token == self.eot:
                        free_done = True
                    else:
                        free_tokens.append(token)
                        next_rows.append(rows[0] + [token])
                        next_sources.append(0)
                    row = 1
                beams = self._beam_step(guide, beams, logprobs[row : row + len(beams)], beam_size, finished, seen_finished,
                                        at_budget=step >= budget)
                if finished and beams and max(b.logprob for b in beams) < finished[0].logprob - self.settings.runner_up_window:
                    beams = []  # scores only fall: nothing live can still be the best or a close runner-up
                for beam in beams:
                    next_rows.append(beam.tokens)
                    next_sources.append(row + beam.parent)
                if not next_rows:
                    break
                rows, sources = next_rows, next_sources
        finally:
            inference.cleanup_caching()
        free_text = plain_numbers(self.tokenizer.decode(free_tokens).strip())
        free = Hypothesis(tuple(free_tokens), free_text, float(sum(free_logprobs)), tuple(free_logprobs))
        finished.sort(key=lambda h: h.logprob, reverse=True)
        return finished, free, no_speech

    def _free_step(self, logprobs: torch.Tensor, step: int, tokens: list[int], budget: int) -> tuple[int, float]:
        masked = logprobs.masked_fill(self._free_suppress, -np.inf)
        if step == 0:
            masked[self._first_suppress] = -np.inf
        if len(tokens) >= budget or repeats_ngram(tokens):
            return self.eot, float(logprobs[self.eot])  # a loop or a runaway: end it here
        token = int(masked.argmax())
        return token, float(logprobs[token])

    def _beam_step(self, guide: DecodingGuide, beams: list[_Beam], logprobs: torch.Tensor, beam_size: int,
                   finished: list[Hypothesis], seen_finished: set[str], *, at_budget: bool) -> list[_Beam]:
        candidates: list[tuple[float, int, int, float]] = []  # (score, beam index, token, token logprob)
        for index, beam in enumerate(beams):
            row = logprobs[index]
            step = guide.step(beam.state)
            allowed = self._allowed(guide, beam.state, step)
            if step.end:
                value = float(row[self.eot])
                candidates.append((beam.logprob + value, index, self.eot, value))
            if at_budget or allowed is None:
                continue
            values, tokens = self._top(row, allowed, beam_size)
            for value, token in zip(values, tokens):
                candidates.append((beam.logprob + value, index, token, value))
        candidates.sort(key=lambda c: c[0], reverse=True)
        kept: list[_Beam] = []
        keys: set[tuple[int, str]] = set()
        for score, index, token, value in candidates:
            beam = beams[index]
            if token == self.eot:
                text = plain_numbers(self.tokenizer.decode(beam.tokens[len(self.initial) :]).strip())
                if text.casefold() not in seen_finished:  # "Stop." and "stop." are one sentence
                    seen_finished.add(text.casefold())
                    finished.append(Hypothesis(tuple(beam.tokens[len(self.initial) :]), text, score,
                                               tuple(beam.token_logprobs + [value])))
                    finished.sort(key=lambda h: h.logprob, reverse=True)
                continue
            if len(kept) >= beam_size:
                continue
            state = guide.advance(beam.state, token)
            if state is None:  # pragma: no cover - the mask only offers allowed tokens
                continue
            new_tokens = beam.tokens + [token]
            key = (state, self.tokenizer.decode(new_tokens[len(self.initial) :]).casefold())
            if key in keys:
                continue  # the same words in another case: one is enough
            keys.add(key)
            kept.append(_Beam(new_tokens, state, score, beam.token_logprobs + [value], index))
        return kept

    def _allowed(self, guide: DecodingGuide, state: int, step) -> torch.Tensor | None:
        """The row's allowed text tokens: explicit token ids, or a mask when a wildcard is open."""
        if step.free:
            if guide is not self._masks_guide:
                self._masks.clear()
                self._masks_guide = guide
            mask = self._masks.get(state)
            if mask is None:
                base = guide.text_tokens if step.free == 2 else guide.word_start_tokens
                mask = torch.from_numpy(base.copy())
                mask[torch.from_numpy(step.tokens)] = True
                mask[self.eot] = False
                if len(self._masks) > 64:  # 52 kB each
                    self._masks.clear()
                self._masks[state] = mask
            return mask
        if len(step.tokens) == 0:
            return None
        return torch.from_numpy(step.tokens)

    @staticmethod
    def _top(row: torch.Tensor, allowed: torch.Tensor, k: int) -> tuple[list[float], list[int]]:
        if allowed.dtype == torch.bool:
            values, tokens = row.masked_fill(~allowed, -np.inf).topk(k)
            keep = torch.isfinite(values)
            return values[keep].tolist(), tokens[keep].tolist()
        picked = row.index_select(0, allowed)
        values, where = picked.topk(min(k, len(allowed)))
        return values.tolist(), allowed[where].tolist()
