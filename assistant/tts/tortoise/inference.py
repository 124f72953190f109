"""Tortoise's two synthesis paths, driven directly on the model classes.

Fast path: the GPT samples mel codes one at a time; the hidden state of each step (a "latent")
goes to the HiFiGAN decoder. Streaming decodes everything generated so far at each chunk and
emits only the samples that can no longer change: HiFiGAN's convolutions and its linear
upsampling make the last few thousand samples depend on latents not generated yet, so those are
held back (`decoder_lookahead`, measured on the loaded decoder) until the next chunk or the end.
Every emitted sample therefore equals the non-streamed decode; no crossfade is needed, unlike
tortoise's `tts_stream`, which holds back a fixed 1024 samples, crossfades the next decode over
that inexact tail, and drops the final 1024 samples of every reply.

Classic path: several GPT candidates, ranked by CLVP against the text; the best one's latents
go through the diffusion decoder (mel spectrogram) and the UnivNet vocoder.

Both run at the caller's device and precision; nothing here assumes CUDA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


@torch.no_grad()
def hifigan_decode(models: TortoiseModels, latents: list[torch.Tensor], voice_latent: torch.Tensor) -> torch.Tensor:
    """GPT latents (each (1, width)) -> 24 kHz samples (1-D, on the CPU).

    HifiganGenerator.inference's own maths, without its hard-coded `.to("cuda")`.
    """
    x = torch.cat(latents, dim=0)[None].float().to(models.device)  # (1, T, width)
    up = F.interpolate(x.transpose(1, 2), scale_factor=[1024 / 256], mode="linear")
    up = F.interpolate(up, scale_factor=[24000 / 22050], mode="linear")
    cond = voice_latent.float().to(models.device).unsqueeze(0).transpose(1, 2)  # (1, width, 1)
    return models.hifigan(up, cond).reshape(-1).float().cpu()


@torch.no_grad()
def decoder_lookahead(models: TortoiseModels) -> int:
    """How many trailing samples of a decode still change when more latents follow.

    Measured, not derived: decode a random latent sequence and its first half and find where they
    start to differ. The influence of later latents is strictly bounded (convolutions, linear
    interpolation), so samples before that point are final. Rounded up with a 256-sample margin.
    """
    width = models.sizes.autoregressive["model_dim"]
    generator = torch.Generator().manual_seed(0)
    latents = [0.1 * torch.randn(1, width, generator=generator) for _ in range(32)]
    voice = 0.1 * torch.randn(1, width, generator=generator)
    full = hifigan_decode(models, latents, voice)
    part = hifigan_decode(models, latents[:16], voice)
    differs = ((full[: len(part)] - part).abs() > 1e-7).nonzero()
    first = int(differs[0]) if len(differs) else len(part)
    return ((len(part) - first) // 256 + 2) * 256


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
    lookahead: int,
    guard: Callable[[], object],
) -> Iterator[torch.Tensor]:
    """Yield final 24 kHz samples as generation proceeds; `guard()` is entered around model work."""
    emitted = 0
    target = settings.first_chunk_tokens
    while True:
        with guard():
            generation.run_until(target)
            wav = generation.decode() if generation.latents else torch.zeros(0)
        end = len(wav) if generation.done else len(wav) - lookahead
        if end > emitted:
            yield wav[emitted:end]
            emitted = end
        if generation.done:
            return
        target = len(generation.latents) + settings.stream_chunk_tokens


@torch.no_grad()
def classic_synthesize(
    models: TortoiseModels,
    text: str,
    voice_latent: torch.Tensor,
    diffusion_latent: torch.Tensor,
    settings: TortoiseSettings,
) -> torch.Tensor:
    """GPT candidates -> CLVP ranking -> diffusion -> UnivNet; 24 kHz samples (1-D, CPU)."""
    from tortoise.api import do_spectrogram_diffusion, fix_autoregressive_output, load_discrete_vocoder_diffuser

    gpt = models.autoregressive
    tokens = text_tokens(models, text)
    voice_latent = voice_latent.to(models.device)
    batches = []
    with _autocast(models):
        for _ in range(settings.candidates // settings.batch_size):
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
        samples = torch.cat(batches, dim=0)
        for row in range(samples.shape[0]):
            samples[row] = fix_autoregressive_output(samples[row], gpt.stop_mel_token, complain=False)
        if samples.shape[0] > 1:
            scores = torch.cat(
                [models.clvp(tokens.repeat(batch.shape[0], 1), batch, return_loss=False) for batch in samples.split(settings.batch_size)]
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
    diffuser = load_discrete_vocoder_diffuser(
        desired_diffusion_steps=settings.diffusion_iterations, cond_free=settings.cond_free, cond_free_k=settings.cond_free_k
    )
    mel = do_spectrogram_diffusion(
        models.diffusion, diffuser, latents, diffusion_latent.to(models.device),
        temperature=settings.diffusion_temperature, verbose=False,
    )
    return models.vocoder.inference(mel).reshape(-1).float().cpu()
