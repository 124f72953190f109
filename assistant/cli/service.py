"""`assistant serve`, `assistant service install`, `assistant doctor`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from assistant.service.units import PROJECT_ROOT

TOKEN_ENV = "ASSISTANT_API_TOKEN"


def _default_commands() -> str:
    local = Path("commands.yaml")
    return str(local if local.is_file() else PROJECT_ROOT / "commands.yaml")


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="run the assistant: listen loop and HTTP API over warm models")
    serve.add_argument("--commands", default=None, help="commands file (default ./commands.yaml, else the project's)")
    _api_args(serve)
    serve.add_argument("--no-api", action="store_true", help="no HTTP API")
    _wyoming_args(serve)
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="FILE", help="listen to a WAV file (or - for raw 16 kHz s16le on stdin) instead of the microphone")
    source.add_argument("--no-mic", action="store_true", help="no listen loop: serve the API only")
    serve.add_argument("--no-transcribe", action="store_true",
                       help="with --no-mic: do not load Whisper (an API for intents and speech; /v1/transcribe answers 503)")
    serve.add_argument("--mic", metavar="DEVICE", help="input device index or name substring (default: the system's)")
    serve.add_argument("--model", default="tiny.en", help="Whisper model (default tiny.en)")
    serve.add_argument("--device", default="auto", help="compute device: auto, cpu, cuda, cuda:N, mps, xpu")
    serve.add_argument("--engine", default="auto", help="TTS engine: auto, tortoise, piper, espeak")
    serve.add_argument("--voice", default=None, help="TTS voice (Tortoise voice name, Piper model, espeak voice)")
    serve.add_argument("--no-speak", action="store_true", help="log replies instead of playing them")
    serve.add_argument("--no-self-check", action="store_true",
                       help="do not transcribe pre-rendered replies to catch misspoken ones (saves CPU at start)")
    serve.add_argument("--output-device", metavar="DEVICE", help="output device index or name substring")
    serve.add_argument("--no-barge-in", action="store_true",
                       help="hear nothing while a reply plays (no \"stop\" mid-reply): for a room where the reply "
                            "comes back loud and there is no echo canceller (see `assistant doctor`)")
    serve.add_argument("--reload-interval", type=float, default=1.0, help="seconds between checks of the commands file")
    from assistant.cli.listen import add_conversation_args, add_recognition_arg

    add_recognition_arg(serve)
    add_conversation_args(serve)
    serve.set_defaults(func=_serve)

    service = subparsers.add_parser("service", help="install the assistant as a systemd service")
    sub = service.add_subparsers(dest="service_command", required=True)
    install = sub.add_parser("install", help="write the systemd unit with this checkout's paths and print the systemctl commands")
    kind = install.add_mutually_exclusive_group()
    kind.add_argument("--user", dest="kind", action="store_const", const="user", help="a user unit (default; audio servers run per user)")
    kind.add_argument("--system", dest="kind", action="store_const", const="system", help="a system unit (headless box, ALSA)")
    install.add_argument("--commands", default=None, help="commands file the service loads (default as for serve)")
    install.add_argument("--host", default=None, help="API address to put in the unit")
    install.add_argument("--port", type=int, default=None, help="API port to put in the unit")
    install.add_argument("--token-file", default=None, help="file holding the API bearer token (needed off loopback)")
    install.add_argument("--output", default=None, help="write the unit here instead of the systemd folder")
    install.set_defaults(func=_install, kind="user")

    doctor = subparsers.add_parser("doctor", help="check audio devices, models, voices, GPU and the service; say how to fix problems")
    doctor.add_argument("--commands", default=None, help="commands file to check (default as for serve)")
    doctor.add_argument("--no-checksums", action="store_true", help="skip hashing the (large) Tortoise weights")
    doctor.add_argument("--no-speed", action="store_true",
                        help="skip timing each voice (Tortoise takes a while on a CPU)")
    doctor.set_defaults(func=_doctor)


def _api_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1; others need a token)")
    parser.add_argument("--port", type=int, default=8765, help="API port (default 8765)")
    parser.add_argument("--token-file", default=None,
                        help=f"file holding the API bearer token (or set {TOKEN_ENV}); required off loopback")


def _wyoming_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Wyoming (Home Assistant, satellites)")
    group.add_argument("--wyoming", metavar="URI", default=None,
                       help="serve the Wyoming protocol on tcp://HOST:PORT or unix:///PATH (off unless given; "
                            "e.g. tcp://127.0.0.1:10300)")
    group.add_argument("--wyoming-allow-remote", metavar="PEER", nargs="*", default=None,
                       help="allow a non-loopback --wyoming address (Wyoming has NO authentication: anyone who can "
                            "reach it runs your handlers); optionally only these peer addresses/networks")
    group.add_argument("--wyoming-guided", action="store_true",
                       help="transcribe guided by the commands unless a request asks otherwise")
    group.add_argument("--zeroconf", nargs="?", const="", default=None, metavar="NAME",
                       help="announce the Wyoming server over mDNS (_wyoming._tcp) for Home Assistant discovery")


def _wyoming_settings(args: argparse.Namespace):
    """The WyomingSettings the arguments ask for (None: no Wyoming server)."""
    from assistant.service.wyoming import WyomingConfigError, WyomingSettings

    if args.wyoming is None:
        if args.wyoming_allow_remote is not None or args.zeroconf is not None or args.wyoming_guided:
            raise WyomingConfigError("--wyoming-allow-remote, --wyoming-guided and --zeroconf need --wyoming URI")
        return None
    return WyomingSettings(
        uri=args.wyoming, allow_remote=args.wyoming_allow_remote is not None,
        allowed_peers=tuple(args.wyoming_allow_remote or ()), guided=args.wyoming_guided,
        zeroconf=args.zeroconf is not None, zeroconf_name=args.zeroconf or None,
    )


def _read_token(path: str | None) -> str | None:
    if path:
        token = Path(path).expanduser().read_text().strip()
        if not token:
            raise ValueError(f"{path}: the token file is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _serve(args: argparse.Namespace) -> int:
    from assistant.audio import AudioFormatError
    from assistant.intents import CommandsError
    from assistant.service.api import ApiConfigError, ApiSettings
    from assistant.service.app import ServeOptions, serve
    from assistant.service.wyoming import WyomingConfigError

    try:
        token = _read_token(args.token_file)
        wyoming = _wyoming_settings(args)
        if wyoming is not None:
            wyoming.check()
    except (OSError, ValueError) as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 2
    from assistant.cli.listen import conversation_settings

    try:
        talk = conversation_settings(args)
    except ValueError as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 2
    if args.no_transcribe and not args.no_mic:
        print("assistant serve: --no-transcribe needs --no-mic (the listen loop needs Whisper)", file=sys.stderr)
        return 2
    options = ServeOptions(
        commands=Path(args.commands or _default_commands()).resolve(),
        api=None if args.no_api else ApiSettings(host=args.host, port=args.port, token=token),
        listen=not args.no_mic, transcribe=not args.no_transcribe, input=args.input, mic_device=args.mic, whisper_model=args.model,
        device=args.device, engine=args.engine, voice=args.voice, speak=not args.no_speak,
        output_device=args.output_device, reload_interval=args.reload_interval, wyoming=wyoming,
        self_check=not args.no_self_check, conversation=talk, barge_in=not args.no_barge_in,
        recognition=args.recognition,
    )
    try:
        return serve(options)
    except (CommandsError, ApiConfigError, AudioFormatError, WyomingConfigError) as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"assistant serve: {exc}", file=sys.stderr)
        return 1


def _install(args: argparse.Namespace) -> int:
    from assistant.service.units import InstallError, UnitOptions, install, next_steps

    serve_args: list[str] = []
    if args.host:
        serve_args += ["--host", args.host]
    if args.port is not None:
        serve_args += ["--port", str(args.port)]
    if args.token_file:
        serve_args += ["--token-file", str(Path(args.token_file).expanduser().resolve())]
    options = UnitOptions(kind=args.kind, commands=Path(args.commands or _default_commands()).resolve(),
                          serve_args=tuple(serve_args))
    try:
        target = install(options, Path(args.output).resolve() if args.output else None)
    except InstallError as exc:
        print(f"assistant service install: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target}")
    print("now run:")
    for line in next_steps(args.kind, target):
        print(f"  {line}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from assistant.service.doctor import FAIL, default_checks, report, run_checks

    findings = run_checks(default_checks(Path(args.commands or _default_commands()), checksums=not args.no_checksums,
                                             speed=not args.no_speed))
    print(report(findings))
    return 1 if any(f.status == FAIL for f in findings) else 0
