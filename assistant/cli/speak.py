"""`assistant say "text"` and `assistant voices list | add | latents`.

`say` goes through the same Speech facade as the service (text clean-up, reply cache, fallback
chain), so what it says is what the assistant would say; `--out` writes a WAV instead of playing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from assistant.tts.speech import ENGINES

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    say = subparsers.add_parser("say", help="speak a text (or write it to a WAV file)")
    say.add_argument("text", help="what to say")
    say.add_argument("--voice", help="voice for the chosen engine: Tortoise voice name, Piper .onnx path or espeak-ng voice")
    say.add_argument("--engine", choices=("auto", *ENGINES), default="auto",
                     help="engine to try first; the others follow as fallbacks (default auto: tortoise, piper, espeak)")
    say.add_argument("--preset", choices=("ultra_fast", "fast", "standard", "high_quality"),
                     help="Tortoise preset (quality vs time; default: the engine's)")
    say.add_argument("--out", metavar="FILE.wav", help="write the reply to this WAV file instead of playing it")
    say.add_argument("--device", help="sounddevice output device (index or name); default: the system's")
    say.add_argument("--no-cache", action="store_true", help="render afresh and do not store the result")
    say.set_defaults(func=_say)

    voices = subparsers.add_parser("voices", help="list and add Tortoise voices, precompute their latents")
    sub = voices.add_subparsers(dest="voices_command", required=True)
    sub.add_parser("list", help="list voices and their clips").set_defaults(func=_voices_list)
    add = sub.add_parser("add", help="add a voice from reference clips (two or more 6-10 s WAV clips work best)")
    add.add_argument("name")
    add.add_argument("clips", nargs="+", metavar="CLIP")
    add.add_argument("--replace", action="store_true", help="replace a voice of that name")
    add.set_defaults(func=_voices_add)
    latents = sub.add_parser("latents", help="compute (or confirm cached) a voice's conditioning latents")
    latents.add_argument("name")
    latents.set_defaults(func=_voices_latents)


def _say(args: argparse.Namespace) -> int:
    from assistant.tts import Speech, SpeechSettings, TTSUnavailable

    speech = Speech(SpeechSettings(engine=args.engine, voice=args.voice, cache=not args.no_cache,
                                   tortoise_preset=args.preset))
    started = time.perf_counter()
    try:
        if args.out:
            from assistant.playback import FileSink

            audio = speech.synthesize(args.text)
            FileSink(args.out).play(audio)
            log.info("%s: %.2f s of audio by %s in %.2f s", args.out, audio.duration, speech.stats.last_engine,
                     time.perf_counter() - started)
            return 0
        from assistant.playback import DevicePlayer, PlaybackUnavailable

        try:
            player = DevicePlayer(_device(args.device))
        except PlaybackUnavailable as exc:
            print(f"assistant say: {exc}", file=sys.stderr)
            return 2
        for chunk in speech.stream(args.text):
            player.play(chunk)
        player.wait()
        if player.error is not None:
            print(f"assistant say: playback failed: {player.error}", file=sys.stderr)
            return 1
        return 0
    except (ValueError, TTSUnavailable) as exc:
        print(f"assistant say: {exc}", file=sys.stderr)
        return 2


def _device(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _voices_list(args: argparse.Namespace) -> int:
    from assistant.tts.voices import list_voices

    voices = list_voices()
    if not voices:
        print("no voices; add one with `assistant voices add NAME CLIP...`")
        return 0
    width = max(len(voice.name) for voice in voices)
    for voice in voices:
        print(f"{voice.name:<{width}}  {len(voice.clips)} clip(s)  {voice.seconds():6.1f} s  {voice.folder}")
    return 0


def _voices_add(args: argparse.Namespace) -> int:
    from assistant.tts.voices import VoiceError, add_voice

    try:
        voice = add_voice(args.name, args.clips, replace=args.replace)
    except VoiceError as exc:
        print(f"assistant voices add: {exc}", file=sys.stderr)
        return 2
    print(f"added voice {voice.name!r}: {len(voice.clips)} clip(s), {voice.seconds():.1f} s, in {voice.folder}")
    print(f"compute its latents now with `assistant voices latents {voice.name}` (else the first reply does)")
    return 0


def _progress(done: int, total: int, what: str) -> None:
    width = 24
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    print(f"\r{what:<15} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr, flush=True)


def _voices_latents(args: argparse.Namespace) -> int:
    from assistant.tts import TTSUnavailable
    from assistant.tts.tortoise.engine import compute_latents
    from assistant.tts.voices import VoiceError

    try:
        result = compute_latents(args.name, progress=_progress)
    except (VoiceError, TTSUnavailable) as exc:
        print(f"assistant voices latents: {exc}", file=sys.stderr)
        return 2
    for part, how in result.items():
        print(f"{args.name}: {part} latent {how}")
    return 0
