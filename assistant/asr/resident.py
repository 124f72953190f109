"""Resident Whisper: loaded once, warmed up, decoding tuned for short spoken commands.

Decoding for commands: the language is forced (no detection pass), temperature 0 (greedy; no
fallback re-runs), no conditioning on previous text (each command stands alone) and no
timestamps. Whisper invents "Thank you." or "you" on silence and noise; every result whose
no-speech probability is high or whose average token log-probability is very low is dropped
(the thresholds are in `WhisperSettings`, measured in tests/test_asr_real.py).

Speed: openai-whisper's `transcribe()` always encodes 30 s (3000 mel frames, 1500 encoder
positions) even for a 2 s command; the encoder on that padding is most of the ~420 ms a command
costs on a 2-core CPU. Like whisper.cpp's `-ac` option, `short_context` encodes only the mel
frames of the audio plus a margin of the padding after it, with the encoder's positional
embedding sliced to match, and hands those features to Whisper's own `DecodingTask`
(cross-attention works over any number of audio positions). It is ~2.4x faster per command
but less sure of itself: it may miss the end of the text and repeat it (stopped after three
repeated tokens and trimmed to the first round) and on the committed speech it got 17 of 19
segments right against 19 for the full window. So it is off by default; the listen loop uses it
as a first pass checked against the grammar (assistant/loop.py, README "Measured numbers").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import whisper
from whisper.audio import log_mel_spectrogram
from whisper.decoding import DecodingOptions, DecodingTask, LogitFilter, PyTorchInference

from assistant.asr.prompt import build_prompt
from assistant.asr.settings import Transcript, WhisperSettings
from assistant.asr.weights import resolve_model
from assistant.device import resolve_device, uses_half_precision
from assistant.memory import return_large_blocks
from assistant.scheduler import SCHEDULER, Priority

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP = 160  # audio samples per mel frame
MAX_SAMPLES = 30 * SAMPLE_RATE  # Whisper's window
N_FRAMES = MAX_SAMPLES // HOP  # 3000 mel frames
REPEAT_NGRAM = 3  # tokens: a command never says the same three tokens twice; a loop does


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level of float audio (full scale 1.0) in dBFS; -inf for nothing or digital silence."""
    if audio.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def repeats_ngram(tokens: list[int], n: int = REPEAT_NGRAM) -> bool:
    """True when the last n tokens already occurred, in that order, earlier in the sequence."""
    if len(tokens) < 2 * n:
        return False
    tail = tokens[-n:]
    return any(tokens[i : i + n] == tail for i in range(len(tokens) - n))


def _word_key(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalnum() or c == "'")


def first_period(text: str) -> str | None:
    """The first round of a text that only repeats itself ("Stop. Stop. St" -> "Stop."), else None.

    Words are compared without case and punctuation ("What time is it? what time" has period 4).
    """
    words = text.split()
    keys = [_word_key(w) for w in words]
    last = len(keys) - 1
    for period in range(1, len(words)):
        # the last word may have been cut mid-way by the repetition stop ("St" of "Stop")
        if all(keys[k] == keys[k - period] or (k == last and keys[k - period].startswith(keys[k]))
               for k in range(period, len(keys))):
            return " ".join(words[:period])
    return None


class WhisperASR:
    """openai-whisper kept in memory for the life of the process; thread-safe: every model call takes the
    model scheduler's slot, by default at command priority (`assistant.scheduler`)."""

    def __init__(self, settings: WhisperSettings = WhisperSettings()) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.fp16 = uses_half_precision(self.device)
        self.checkpoint: Path = resolve_model(settings.model)
        return_large_blocks()  # activations unmapped on free, not kept by every thread's arena
        started = time.perf_counter()
        with SCHEDULER.slot("asr", Priority.COMMAND):
            self.model = whisper.load_model(str(self.checkpoint), device=self.device)
        self.n_mels = self.model.dims.n_mels
        self.tokenizer = whisper.tokenizer.get_tokenizer(
            self.model.is_multilingual, num_languages=self.model.num_languages, language=settings.language, task="transcribe"
        )
        self.load_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        warm = np.random.default_rng(0).normal(0, 0.05, SAMPLE_RATE).astype(np.float32)
        self.transcribe(warm)  # warm-up: first-call allocations and kernels (noise: silence is skipped)
        self.warmup_ms = (time.perf_counter() - started) * 1000
        log.info(
            "Whisper %s loaded on %s (%s) in %.0f ms, warm-up %.0f ms, %s context",
            self.checkpoint.name, self.device, "fp16" if self.fp16 else "fp32", self.load_ms, self.warmup_ms,
            "short" if settings.short_context else "full 30 s",  # the default per call
        )

    def vocabulary_prompt(self, words: list[str]) -> str | None:
        """The prompt for a command set's vocabulary, cut to what Whisper keeps."""
        return build_prompt(words, lambda text: len(self.tokenizer.encode(" " + text.strip())))

    def transcribe(self, audio: np.ndarray, prompt: str | None = None, *, short_context: bool | None = None) -> Transcript:
        """float32 mono 16 kHz in (at most 30 s is used); the kept text out.

        `short_context` None follows the settings; True/False chooses for this call only.
        """
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)[:MAX_SAMPLES]
        level = rms_dbfs(audio)
        if level < self.settings.silence_dbfs:
            reason = f"silent audio ({level:.0f} dBFS < {self.settings.silence_dbfs:.0f})"
            return Transcript(text="", segments=[{"text": "", "rms_dbfs": level, "dropped": reason}], duration_ms=0.0)
        started = time.perf_counter()
        short = self.settings.short_context if short_context is None else short_context
        with SCHEDULER.slot("asr", Priority.COMMAND):
            result, audio_ctx = self._decode(audio, prompt, short=short)
            text = result.text.strip()
            looped = short and self._looped(result, audio)
            if looped:
                # Without the 30 s of padding Whisper sometimes misses the end of a command and
                # says it again ("Stop. Stop. Stop."). A pure repetition keeps its first round;
                # anything else is decoded again over the full window.
                text = first_period(text) or ""
                if not text:
                    result, audio_ctx = self._decode(audio, prompt, short=False)
                    text = result.text.strip()
        duration_ms = (time.perf_counter() - started) * 1000
        segment = {
            "text": text,
            "avg_logprob": float(result.avg_logprob),
            "no_speech_prob": float(result.no_speech_prob),
            "compression_ratio": float(result.compression_ratio),
            "audio_ctx": audio_ctx,
            "repetition": looped,
            "full_context_retry": looped and audio_ctx == self.model.dims.n_audio_ctx,
        }
        reason = self._drop_reason(segment)
        if reason:
            segment["dropped"] = reason
            log.debug("dropped %r: %s", segment["text"], reason)
        return Transcript(text="" if reason else segment["text"], segments=[segment], duration_ms=duration_ms)

    def token_budget(self, samples: int) -> int:
        """Most tokens a command of this length can need: speech runs at 3-5 tokens a second,
        so anything past this is a repetition loop, stopped before it costs seconds."""
        seconds = samples / SAMPLE_RATE
        return min(self.model.dims.n_text_ctx // 2, int(16 + 8 * seconds))

    def _looped(self, result, audio: np.ndarray) -> bool:
        tokens = result.tokens
        return len(tokens) >= self.token_budget(len(audio)) or repeats_ngram(tokens, REPEAT_NGRAM)

    def _decode(self, audio: np.ndarray, prompt: str | None, *, short: bool):
        options = DecodingOptions(
            task="transcribe",
            language=self.settings.language if self.model.is_multilingual else "en",
            temperature=0.0,
            sample_len=self.token_budget(len(audio)),
            without_timestamps=True,
            fp16=self.fp16,
            prompt=prompt or None,
        )
        features = self._encode(audio, short=short)
        task = _FeaturesDecodingTask(self.model, options)
        if short:
            task.logit_filters.append(_StopRepetition(task.tokenizer.eot, task.sample_begin))
        return task.run(features)[0], int(features.shape[1])

    def _drop_reason(self, segment: dict) -> str | None:
        s = self.settings
        if not segment["text"]:
            return "empty"
        if segment["no_speech_prob"] >= s.no_speech_threshold:
            return f"no_speech_prob {segment['no_speech_prob']:.2f} >= {s.no_speech_threshold}"
        if segment["avg_logprob"] < s.logprob_threshold:
            return f"avg_logprob {segment['avg_logprob']:.2f} < {s.logprob_threshold}"
        return None

    def mel_frames_for(self, samples: int, short: bool = True) -> int:
        """Mel frames the encoder sees for `samples` of audio (even: conv2 has stride 2)."""
        full = self.model.dims.n_audio_ctx * 2
        if not short:
            return full
        margin = round(self.settings.context_margin_seconds * SAMPLE_RATE)
        frames = -(-(samples + margin) // HOP)
        return min(full, frames + frames % 2)

    def log_mel(self, audio: np.ndarray, *, short: bool) -> torch.Tensor:
        """(1, n_mels, frames): the log-mel that `transcribe()` gives the encoder, cut short.

        Like `transcribe()`: the spectrogram of the audio followed by 30 s of zeros, only the
        audio's own frames kept, then padded with 0.0 in the normalised mel domain (not with the
        spectrogram of silence: tiny.en heard "Pern on the kitchen lights" with that padding and
        "Turn on ..." with this one). Short-context mode pads to the margin instead of 30 s.
        """
        mel = log_mel_spectrogram(torch.from_numpy(audio), self.n_mels, padding=MAX_SAMPLES, device=self.device)
        content = mel.shape[-1] - N_FRAMES
        frames = self.mel_frames_for(len(audio), short)
        mel = torch.nn.functional.pad(mel[:, : min(content, frames)], (0, max(0, frames - content)))
        mel = mel.unsqueeze(0)
        return mel.half() if self.fp16 else mel

    def _encode(self, audio: np.ndarray, *, short: bool) -> torch.Tensor:
        """Whisper's encoder over the frames needed, its positional embedding sliced to match."""
        mel = self.log_mel(audio, short=short)
        encoder = self.model.encoder
        with torch.inference_mode():
            x = torch.nn.functional.gelu(encoder.conv1(mel))
            x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
            x = (x + encoder.positional_embedding[: x.shape[1]]).to(x.dtype)
            for block in encoder.blocks:
                x = block(x)
            return encoder.ln_post(x)


class _StopRepetition(LogitFilter):
    """Ends the text as soon as it starts going round in circles (short context only), so a
    loop costs a few decoder steps instead of running to the token budget."""

    def __init__(self, eot: int, sample_begin: int) -> None:
        self.eot = eot
        self.sample_begin = sample_begin

    def apply(self, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        for row in range(tokens.shape[0]):
            if repeats_ngram(tokens[row, self.sample_begin :].tolist()):
                eot_logit = logits[row, self.eot].clone()
                logits[row, :] = -np.inf
                logits[row, self.eot] = eot_logit


class _NeededLogits(PyTorchInference):
    """Whisper's KV-cached decoder, projecting only the positions the decoding loop reads.

    On its first call Whisper's text decoder turns every position of the initial tokens (the
    prompt and the start sequence) into logits over the whole vocabulary (51864 x 384 per
    position), but the loop reads two of them: the start token's (the no-speech probability)
    and the last one's. With the grammar's 125-token vocabulary prompt that projection was about
    a tenth of a short pass (bench/shortpass.py: 185 -> 172 ms median); with the stop set's
    15 tokens it is nothing to speak of. The hidden states of the other positions are cut out
    before the projection (a hook on the decoder's final LayerNorm); their logits come back as
    NaN, so a reader of one would notice at once."""

    def __init__(self, model: whisper.model.Whisper, initial_token_length: int, sot_index: int) -> None:
        super().__init__(model, initial_token_length)
        self.sot_index = sot_index

    def logits(self, tokens: torch.Tensor, audio_features: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[-1]
        if length > self.initial_token_length:  # later steps decode one position anyway
            return super().logits(tokens, audio_features)
        keep = sorted({self.sot_index, length - 1})
        hook = self.model.decoder.ln.register_forward_hook(lambda module, args, output: output[:, keep])
        try:
            rows = super().logits(tokens, audio_features)
        finally:
            hook.remove()
        logits = rows.new_full((rows.shape[0], length, rows.shape[-1]), float("nan"))
        logits[:, keep] = rows
        return logits


class _FeaturesDecodingTask(DecodingTask):
    """Whisper's own greedy decoder, token filters and no-speech probability, handed encoder
    output of any length (its `_get_audio_features` only recognises 1500-position features),
    projecting only the logits it reads (`_NeededLogits`)."""

    def __init__(self, model: whisper.model.Whisper, options: DecodingOptions) -> None:
        super().__init__(model, options)
        self.inference = _NeededLogits(model, len(self.initial_tokens), self.sot_index)

    def _get_audio_features(self, mel: torch.Tensor) -> torch.Tensor:
        return mel
