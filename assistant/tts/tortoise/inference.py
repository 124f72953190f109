"""Tortoise's two synthesis paths, driven directly on the model classes.

Fast path: the GPT samples mel codes one at a time; the hidden state of each step (a "latent")
goes to the HiFiGAN decoder. Streaming emits only samples that can no longer change: HiFiGAN's
convolutions and its linear upsampling make the last few thousand samples depend on latents not
generated yet, so those are held back until the next chunk or the end, and each chunk decodes a
window starting a little before the first unsent sample (`DecoderContext`, measured on the
loaded decoder). Every emitted sample therefore equals the non-streamed decode, and decoding
work grows linearly with the reply. tortoise's `tts_stream` instead re-decodes the whole reply
for every chunk (quadratic), holds back a fixed 1024 samples (less than the full-size decoder's
reach), crossfades over that inexact tail, and drops the final 1024 samples of every reply; with
exact chunks there is no seam to crossfade.

Classic path: several GPT candidates, ranked by CLVP against the text; the best one's latents
go through the diffusion decoder (mel spectrogram) and the UnivNet vocoder.

Both run at the caller's device and precision; nothing here assumes CUDA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from assistant.tts.tortoise.config import TortoiseSettings
from assistant.tts.tortoise.loader import TortoiseModels

CALM_TOKEN = 83  # tortoise's mel code for silence
MAX_TEXT_TOKENS = 400  # tortoise refuses longer texts


def text_tokens(models: TortoiseModels, text: str) -> torch.Tensor:
    """Tokenised text, (1, T) int32 on the device, with tortoise's trailing stop token."""
    ids = models.tokenizer.encode(text)
    tokens = F.pad(torch.IntTensor(ids).unsqueeze(0), (0, 1)).to(models.device)
    if tokens.shape[-1] >= MAX_TEXT_TOKENS:
        raise ValueError(f"text too long for Tortoise ({tokens.shape[-1]} tokens, at most {MAX_TEXT_TOKENS - 1}): split it")
    return tokens


def _autocast(models: TortoiseModels) -> torch.autocast:
    kind = torch.device(models.device).type
    return torch.autocast(device_type=kind, dtype=torch.float16, enabled=models.half)


SAMPLES_PER_FRAME = 256  # HiFiGAN upsamples each input frame by 8 * 8 * 2 * 2


@torch.no_grad()
def upsample_latents(models: TortoiseModels, latents: list[torch.Tensor]) -> torch.Tensor:
    """GPT latents (each (1, width)) -> HiFiGAN input frames (1, width, frames).

    HifiganGenerator.inference's own interpolation (x4, then 22.05 -> 24 kHz), without its
    hard-coded `.to("cuda")`. Cheap: the convolutions after it are the cost.
    """
    x = torch.cat(latents, dim=0)[None].float().to(models.device)  # (1, T, width)
    up = F.interpolate(x.transpose(1, 2), scale_factor=[1024 / 256], mode="linear")
    return F.interpolate(up, scale_factor=[24000 / 22050], mode="linear")


@torch.no_grad()
def frames_to_audio(models: TortoiseModels, frames: torch.Tensor, voice_latent: torch.Tensor) -> torch.Tensor:
    """HiFiGAN convolutions: (1, width, F) frames -> F * 256 samples at 24 kHz (1-D, CPU).

    Convolutions and integer-stride upsampling commute with shifts, so frames [f:] decode to the
    samples from f * 256 on, exact away from the window's edges: streaming decodes windows.
    """
    cond = voice_latent.float().to(models.device).unsqueeze(0).transpose(1, 2)  # (1, width, 1)
    return models.hifigan(frames, cond).reshape(-1).float().cpu()


def hifigan_decode(models: TortoiseModels, latents: list[torch.Tensor], voice_latent: torch.Tensor) -> torch.Tensor:
    """GPT latents -> 24 kHz samples (1-D, CPU), in one pass."""
    return frames_to_audio(models, upsample_latents(models, latents), voice_latent)


@dataclass(frozen=True)
class DecoderContext:
    """How far edge effects reach into a decoded window, in samples.

    lookahead: trailing samples that still change when more latents follow (held back).
    lookbehind: leading samples of a window that differ from a decode from the start (re-decoded).
    """

    lookahead: int
    lookbehind: int


@torch.no_grad()
def measure_decoder_context(models: TortoiseModels) -> DecoderContext:
    """Measured on the loaded decoder rather than derived from its layer list.

    Decode a random latent sequence whole, its first half, and a window starting mid-way; where
    they start (or stop) differing from the whole is how far the edges reach. The reach is
    strictly bounded (convolutions, linear interpolation), so samples beyond it are exact.
    Both are rounded up to whole frames with one frame of margin.
    """
    width = models.sizes.autoregressive["model_dim"]
    generator = torch.Generator().manual_seed(0)
    latents = [0.1 * torch.randn(1, width, generator=generator) for _ in range(32)]
    voice = 0.1 * torch.randn(1, width, generator=generator)
    full = hifigan_decode(models, latents, voice)
    part = hifigan_decode(models, latents[:16], voice)
    differs = ((full[: len(part)] - part).abs() > 1e-7).nonzero()
    lookahead = len(part) - (int(differs[0]) if len(differs) else len(part))
    start = 16 * 4  # a window from frame 64 (~15 latents in)
    window = frames_to_audio(models, upsample_latents(models, latents)[:, :, start:], voice)
    differs = ((full[start * SAMPLES_PER_FRAME :] - window).abs() > 1e-7).nonzero()
    lookbehind = int(differs[-1]) + 1 if len(differs) else 0
    if lookbehind > len(window) // 2:  # not edge effects: the decoder is not local; never window it
        lookbehind = len(full)

    def whole_frames(samples: int) -> int:
        return (samples // SAMPLES_PER_FRAME + 2) * SAMPLES_PER_FRAME

    return DecoderContext(lookahead=whole_frames(lookahead), lookbehind=whole_frames(lookbehind))


class FastGeneration:
    """One fast-path reply being generated: GPT sampling steps, one latent frame each.

    Drive it with `step()` under the model lock and the reply's private RNG; between steps other
    model work may run (the GPT's prompt embedding lives on the model, so it is restored each step).
    """

    def __init__(self, models: TortoiseModels, text: str, voice_latent: torch.Tensor, settings: TortoiseSettings):
        self.models = models
        self.voice_latent = voice_latent.to(models.device)
        gpt = models.autoregressive
        tokens = text_tokens(models, text)
        with torch.no_grad(), _autocast(models):
            gpt_inputs = gpt.compute_embeddings(self.voice_latent, tokens)
        self._prompt = gpt.inference_model.cached_mel_emb
        self._generator = gpt.inference_model.generate_stream(
            gpt_inputs,
            bos_token_id=gpt.start_mel_token,
            pad_token_id=gpt.stop_mel_token,
            eos_token_id=gpt.stop_mel_token,
            max_length=gpt_inputs.shape[1] + settings.max_mel_tokens,
            do_stream=True,
            seed=-1,  # -1: do not reseed the global RNGs (tortoise's default reseeds them to 0)
            do_sample=True,
            top_k=settings.top_k,
            top_p=settings.top_p,
            temperature=settings.temperature,
            num_beams=1,
            num_return_sequences=1,
            length_penalty=float(settings.length_penalty),
            repetition_penalty=float(settings.repetition_penalty),
            output_attentions=False,
            output_hidden_states=True,
        )
        self.latents: list[torch.Tensor] = []
        self.done = False

    def step(self) -> None:
        if self.done:
            return
        self.models.autoregressive.inference_model.store_mel_emb(self._prompt)
        with torch.no_grad(), _autocast(self.models):
            try:
                _code, latent = next(self._generator)
            except StopIteration:
                self.done = True
                return
        self.latents.append(latent.float())

    def run_until(self, count: int) -> None:
        while not self.done and len(self.latents) < count:
            self.step()

    def decode(self) -> torch.Tensor:
        return hifigan_decode(self.models, self.latents, self.voice_latent)


def stream_chunks(
    generation: FastGeneration,
    settings: TortoiseSettings,
    context: DecoderContext,
    guard: Callable[[], object],
) -> Iterator[torch.Tensor]:
    """Yield final 24 kHz samples as generation proceeds; `guard()` is entered around model work.

    Each chunk re-decodes only from `context.lookbehind` before the first unsent sample (not the
    whole reply, as tortoise does), so the decoder's work stays linear in the reply's length.
    """
    emitted = 0
    target = settings.first_chunk_tokens
    while True:
        with guard():
            generation.run_until(target)
            if not generation.latents:
                return
            frames = upsample_latents(generation.models, generation.latents)
            start = max(0, (emitted - context.lookbehind) // SAMPLES_PER_FRAME)
            window = frames_to_audio(generation.models, frames[:, :, start:], generation.voice_latent)
        offset = start * SAMPLES_PER_FRAME
        end = offset + len(window) - (0 if generation.done else context.lookahead)
        if end > emitted:
            yield window[emitted - offset : end - offset]
            emitted = end
        if generation.done:
            return
        target = len(generation.latents) + settings.stream_chunk_tokens


def classic_synthesize(
    models: TortoiseModels,
    text: str,
    voice_latent: torch.Tensor,
    diffusion_latent: torch.Tensor,
    settings: TortoiseSettings,
    guard: Callable[[], object],
) -> torch.Tensor:
    """GPT candidates -> CLVP ranking -> diffusion -> UnivNet; 24 kHz samples (1-D, CPU).

    `guard()` is entered per stage, per candidate batch and per diffusion step rather than once:
    a classic render (pre-rendering in the background) takes tens of seconds on a CPU, and the
    listener's Whisper must get the model lock in between.
    """
    from tortoise.api import fix_autoregressive_output, load_discrete_vocoder_diffuser
    from tortoise.utils.audio import denormalize_tacotron_mel

    gpt = models.autoregressive
    with guard():
        tokens = text_tokens(models, text)
        voice_latent = voice_latent.to(models.device)
    batches = []
    for _ in range(settings.candidates // settings.batch_size):
        with guard(), _autocast(models):
            codes = gpt.inference_speech(
                voice_latent,
                tokens,
                do_sample=True,
                top_k=settings.top_k,
                top_p=settings.top_p,
                temperature=settings.temperature,
                num_return_sequences=settings.batch_size,
                length_penalty=float(settings.length_penalty),
                repetition_penalty=float(settings.repetition_penalty),
                max_generate_length=settings.max_mel_tokens,
            )
        batches.append(F.pad(codes, (0, settings.max_mel_tokens - codes.shape[1]), value=gpt.stop_mel_token))
    with guard(), _autocast(models):
        samples = torch.cat(batches, dim=0)
        for row in range(samples.shape[0]):
            samples[row] = fix_autoregressive_output(samples[row], gpt.stop_mel_token, complain=False)
        if samples.shape[0] > 1:
            scores = torch.cat(
                [
                    models.clvp(tokens.repeat(batch.shape[0], 1), batch, return_loss=False)
                    for batch in samples.split(settings.batch_size)
                ]
            )
            best = samples[int(torch.argmax(scores))].unsqueeze(0)
        else:
            best = samples
        latents = gpt(
            voice_latent,
            tokens,
            torch.tensor([tokens.shape[-1]], device=tokens.device),
            best,
            torch.tensor([best.shape[-1] * gpt.mel_length_compression], device=tokens.device),
            return_latent=True,
            clip_inputs=False,
        ).float()
    # Trim trailing silence: after 8 calm codes in a row the diffusion model has room to end speech.
    calm = 0
    for index, code in enumerate(best[0].tolist()):
        calm = calm + 1 if code == CALM_TOKEN else 0
        if calm > 8:
            latents = latents[:, :index]
            break
    with guard():
        diffuser = load_discrete_vocoder_diffuser(
            desired_diffusion_steps=settings.diffusion_iterations,
            cond_free=settings.cond_free,
            cond_free_k=settings.cond_free_k,
        )
        # do_spectrogram_diffusion's steps, one at a time: 22.05 kHz codes -> 24 kHz mel frames
        frames = latents.shape[1] * 4 * 24000 // 22050
        embeddings = models.diffusion.timestep_independent(latents, diffusion_latent.to(models.device), frames, False)
        noise = torch.randn((latents.shape[0], 100, frames), device=models.device) * settings.diffusion_temperature
        steps = diffuser.p_sample_loop_progressive(
            models.diffusion, noise.shape, noise=noise, model_kwargs={"precomputed_aligned_embeddings": embeddings}
        )
    mel = noise
    while True:
        with guard():
            step = next(steps, None)
        if step is None:
            break
        mel = step["sample"]
    with guard():
        mel = denormalize_tacotron_mel(mel)[:, :, :frames]
        return models.vocoder.inference(mel).reshape(-1).float().cpu()
