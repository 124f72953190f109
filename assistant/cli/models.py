"""`assistant models fetch whisper|tortoise`: getting weights is an explicit, visible step.

Nothing downloads weights behind the user's back at run time; this command is the one place
that does, with progress, and verifies what it stored.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="fetch and verify model weights")
    sub = parser.add_subparsers(dest="models_command", required=True)
    fetch = sub.add_parser("fetch", help="fetch (or convert) model weights into the models directory")
    fetch.add_argument("which", choices=("whisper", "tortoise"))
    fetch.add_argument("--force", action="store_true", help="fetch again even when present and verified")
    fetch.set_defaults(func=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    if args.which == "whisper":
        from assistant.asr.weights import fetch_whisper

        fetch_whisper(force=args.force)
    else:
        from assistant.tts.weights import fetch_tortoise

        fetch_tortoise(force=args.force)
    return 0
