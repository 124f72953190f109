"""`assistant listen`: hands-free commands; `assistant devices`: the microphones there are.

`listen` hears the default microphone (or `--device`), a WAV file (`--input`, processed as fast
as the machine allows, ending with the file) or raw s16le 16 kHz mono on stdin (`--stdin`).
On a machine with no input device at all it says so and plays the bundled demo recording
through the same loop at the pace of speech, so a fresh install shows the whole pipeline
working with the latencies a microphone would give.

`--events jsonl` prints one JSON object per line on stdout (logs stay on stderr); the default
prints the same events as short human-readable lines. Replies are spoken on the default output
device (`--speak-to FILE.wav` writes them to a file instead, `--no-speak` only prints them);
with no output device they are printed only.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEMO_AUDIO = Path(__file__).resolve().parents[2] / "tests" / "audio" / "long_mixed.wav"
"""The demo recording: eight spoken commands between chatter and silence (Piper voice)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    listen = subparsers.add_parser("listen", help="listen for spoken commands (microphone, WAV file or stdin)")
    listen.add_argument("--commands", default="commands.yaml", help="commands file (default ./commands.yaml)")
    source = listen.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="FILE.wav", help="process this WAV file as fast as possible, then exit")
    source.add_argument("--stdin", action="store_true", help="read raw s16le 16 kHz mono PCM from stdin")
    source.add_argument("--demo", action="store_true", help="play the bundled demo recording through the loop")
    listen.add_argument("--realtime", action="store_true",
                        help="feed --input/--demo at the speed of speech, as a microphone would (the demo always is)")
    listen.add_argument("--device", help="microphone: index or part of its name (see `assistant devices`)")
    listen.add_argument("--model", default="tiny.en", help="Whisper model name or .pt path (default tiny.en)")
    listen.add_argument("--compute-device", "--asr-device", dest="compute_device", default="auto",
                        help="where Whisper and Tortoise run: auto, cpu, cuda, cuda:N, mps or xpu (default auto)")
    listen.add_argument("--full-context", action="store_true",
                        help="one Whisper pass over its whole 30 s window (slower) instead of a short-context "
                             "first pass checked against the commands")
    listen.add_argument("--no-prompt", action="store_true", help="do not give Whisper the commands' vocabulary")
    add_recognition_arg(listen)
    listen.add_argument("--silence", type=float, metavar="SECONDS",
                        help="silence that ends any command (default 0.7; 0.25 answers faster but may cut slow speakers)")
    listen.add_argument("--pause", type=float, metavar="SECONDS",
                        help="silence after which a command that is complete (no longer command extends it) is "
                             "acted on at once (default 0.21; 0 waits for --silence every time)")
    add_conversation_args(listen)
    listen.add_argument("--events", choices=("text", "jsonl"), default="text", help="event output on stdout")
    speak = listen.add_mutually_exclusive_group()
    speak.add_argument("--no-speak", action="store_true", help="print replies only")
    speak.add_argument("--speak-to", metavar="FILE.wav", help="write spoken replies to this WAV file")
    listen.add_argument("--output-device", help="speaker: index or part of its name (default: the system's)")
    listen.add_argument("--no-barge-in", action="store_true",
                        help="hear nothing while a reply plays (no \"stop\" mid-reply): for a room where the reply "
                             "comes back loud and there is no echo canceller (see `assistant doctor`)")
    listen.add_argument("--engine", default="auto", help="TTS engine: auto, tortoise, piper, espeak (default auto)")
    listen.add_argument("--voice", default=None, help="TTS voice (Tortoise voice name, Piper model, espeak voice)")
    listen.add_argument("--no-self-check", action="store_true",
                        help="do not transcribe pre-rendered replies to catch misspoken ones (saves CPU at start)")
    listen.set_defaults(func=run_listen)

    devices = subparsers.add_parser("devices", help="list audio input devices (microphones)")
    devices.add_argument("--json", action="store_true", help="print JSON instead of a table")
    devices.set_defaults(func=run_devices)


def add_recognition_arg(parser: argparse.ArgumentParser) -> None:
    """How speech becomes a command (shared by `listen` and `serve`)."""
    parser.add_argument("--recognition", choices=("guided", "free"), default="free",
                        help="guided: Whisper decodes what the commands allow, acted on when its calibrated "
                             "confidence accepts it (else the free passes); free: transcribe, then match the text")


def add_conversation_args(parser: argparse.ArgumentParser) -> None:
    """The wake word and the conversation windows (shared by `listen` and `serve`)."""
    from assistant.wakeword import WAKE_WORDS

    parser.add_argument("--wake-word", choices=sorted(WAKE_WORDS), default=None,
                        help="recognise speech only after this wake word (default: none, every speech segment is heard)")
    parser.add_argument("--follow-up", type=float, default=5.0, metavar="SECONDS",
                        help="after a reply, a command may follow without the wake word for this long (default 5)")
    parser.add_argument("--confirm-timeout", type=float, default=8.0, metavar="SECONDS",
                        help="how long a confirmation question waits for yes/no (default 8)")


def conversation_settings(args: argparse.Namespace) -> Any:
    """ConversationSettings from those options; raises ValueError with the reason."""
    from assistant.conversation import ConversationSettings

    return ConversationSettings(wake_word=args.wake_word, follow_up_seconds=args.follow_up,
                                confirm_seconds=args.confirm_timeout)


def run_devices(args: argparse.Namespace) -> int:
    from assistant.audio import list_input_devices

    inputs = list_input_devices()
    if args.json:
        print(json.dumps(inputs, indent=2))
        return 0
    if not inputs:
        print("no audio input devices found (`assistant listen --input FILE.wav` works without one)")
        return 0
    for dev in inputs:
        mark = "*" if dev["default"] else " "
        print(f"{mark} {dev['index']:>3}  {dev['name']}  ({dev['hostapi']}, {dev['channels']} ch, "
              f"{dev['default_samplerate']:.0f} Hz)")
    return 0


def run_listen(args: argparse.Namespace) -> int:
    from assistant.intents import CommandsError, load_commands

    try:
        commands = load_commands(args.commands)
    except CommandsError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"assistant listen: cannot read {args.commands}: {exc}", file=sys.stderr)
        return 1
    emit = _event_printer(args.events)
    try:
        talk = conversation_settings(args)
    except ValueError as exc:
        print(f"assistant listen: {exc}", file=sys.stderr)
        return 2
    try:
        source = _open_source(args)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"assistant listen: {exc}", file=sys.stderr)
        return 2
    from assistant import assemble
    from assistant.asr.recognizer import RecognizerSettings
    from assistant.asr.weights import WhisperWeightsError
    from assistant.loop import LoopSettings
    from assistant.vad import SegmenterSettings

    speaker = None if args.no_speak else _open_speaker(args)
    try:
        asr = assemble.load_whisper(assemble.ModelOptions(whisper_model=args.model, device=args.compute_device))
    except (WhisperWeightsError, ValueError) as exc:
        print(f"assistant listen: {exc}", file=sys.stderr)
        source.close()
        return 2
    if speaker is not None:  # pre-rendered with Whisper at hand, so the takes are self-checked
        speaker.speech.measure_speeds()  # which voice keeps up for live replies
        assemble.enable_selfcheck(speaker.speech, asr)
        speaker.speech.prerender(commands.static_replies())

    def announce(text: str) -> None:
        """Said unprompted (a timer ringing): an event like any reply, and spoken."""
        emit({"event": "reply", "text": text})
        if speaker is not None:
            speaker.say(text)

    dispatcher = assemble.build_dispatcher(commands, announce=announce,
                                           cancel=speaker.stop if speaker is not None else (lambda: None))
    recognizer = assemble.build_recognizer(
        asr, commands, RecognizerSettings(short_first_pass=not args.full_context, vocabulary_prompt=not args.no_prompt,
                                          recognition=args.recognition))
    segmenter = SegmenterSettings().windows(silence=args.silence, pause=args.pause)
    loop = assemble.build_loop(source, recognizer, dispatcher, speaker=speaker, on_event=emit,
                               settings=LoopSettings(segmenter=segmenter, barge_in=not args.no_barge_in),
                               conversation=talk)
    if getattr(source, "realtime", False):
        log.info("listening on the microphone (Ctrl-C to stop); try: %s", _example(commands))
    _stop_on_signals(loop)
    try:
        loop.run()
    except KeyboardInterrupt:
        loop.stop()
    finally:
        if speaker is not None:
            speaker.wait(timeout=30)
            if hasattr(speaker.player, "wait"):
                speaker.player.wait(timeout=30)
        dispatcher.close()
    return 0


def _open_source(args: argparse.Namespace) -> Any:
    from assistant.audio import MicrophoneSource, StdinSource, WavFileSource, list_input_devices

    if args.input:
        source = WavFileSource(args.input)
        return RealTimeSource(source) if args.realtime else source
    if args.stdin:
        return StdinSource()
    if args.demo or (args.device is None and not list_input_devices()):
        if not args.demo:
            log.warning("no microphone found on this machine: playing the demo recording %s through the same "
                        "loop instead (use --input FILE.wav for your own audio)", DEMO_AUDIO)
        if not DEMO_AUDIO.is_file():
            raise FileNotFoundError(f"the demo recording {DEMO_AUDIO} is missing (it ships in the source tree)")
        return RealTimeSource(WavFileSource(DEMO_AUDIO))
    return MicrophoneSource(_device(args.device))


class RealTimeSource:
    """A file played at the pace of speech: frames arrive as from a microphone, so latencies
    and the live-source queue policy are what a user would see (a file read flat out queues
    every command behind the previous ones)."""

    realtime = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.state = "open"
        self._closed = threading.Event()

    def frames(self):
        from assistant.audio import FRAME_MS

        started = time.monotonic()
        for index, frame in enumerate(self.inner.frames()):
            delay = started + index * FRAME_MS / 1000 - time.monotonic()
            if self._closed.wait(max(0.0, delay)):
                return
            yield frame
        self.state = "closed"

    def close(self) -> None:
        self._closed.set()
        self.state = "closed"
        self.inner.close()


def _open_speaker(args: argparse.Namespace) -> Any:
    """Speech + a player, built as `serve` builds them, or None (replies printed only) when
    there is nowhere to play them."""
    from assistant import assemble
    from assistant.playback import PlaybackUnavailable

    options = assemble.SpeechOptions(engine=args.engine, voice=args.voice, device=args.compute_device,
                                     output_device=args.output_device,
                                     speak_to=Path(args.speak_to) if args.speak_to else None,
                                     self_check=not args.no_self_check)
    try:
        player = assemble.open_player(options)
    except PlaybackUnavailable as exc:
        log.warning("%s: replies are printed only", exc)
        return None
    return assemble.build_speaker(assemble.build_speech(options), player)


def _device(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _example(commands: Any) -> str:
    for intent in commands.intents.values():
        for example in getattr(intent, "examples", None) or []:
            return str(example)
    return "what can I say"


def _stop_on_signals(loop: Any) -> None:
    """SIGTERM ends listening like Ctrl-C (systemd, timeouts), finishing what is in hand."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: loop.stop())


def _event_printer(kind: str) -> Callable[[dict], None]:
    lock = threading.Lock()

    def jsonl(event: dict) -> None:
        with lock:
            print(json.dumps(event, ensure_ascii=False), flush=True)

    def text(event: dict) -> None:
        line = _describe(event)
        if line:
            with lock:
                print(line, flush=True)

    return jsonl if kind == "jsonl" else text


def _describe(event: dict) -> str | None:
    kind = event.get("event")
    if kind == "transcript":
        return f"[{event['start']:7.2f}s] heard: {event['text']}  ({event['asr_ms']:.0f} ms)"
    if kind == "intent":
        slots = ", ".join(f"{k}={v!r}" for k, v in event["slots"].items())
        waited = f"{event['eos_to_action_ms']:.0f} ms after you stopped" + (", at the first pause" if event.get("early") else "")
        return f"           -> {event['intent']}{' (' + slots + ')' if slots else ''}  ({waited})"
    if kind == "no-match":
        return "           -> (no command matches)"
    if kind == "handler" and not event["ok"]:
        return f"           -> {event['intent']} failed"
    if kind == "reply":
        return f"           reply: {event['text']}"
    if kind == "error":
        return f"           error in {event['stage']}: {event['message']}"
    if kind == "wake":
        return f"[{event['at']:7.2f}s] wake word {event['word']}"
    if kind == "ignored":
        return f"[{event['start']:7.2f}s] (speech without the wake word: ignored)"
    if kind == "confirm":
        return f"           -> {event['intent']} asks first"
    if kind == "answer":
        return f"           answer: {event['answer']}"
    return None
