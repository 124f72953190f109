"""The `assistant` command line.

Each command group lives in its own module under `assistant.cli` and exposes
`register(subparsers)`; heavy imports (torch, whisper, tortoise) happen inside the command
functions so that `assistant intents check` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from assistant import __version__, logs

COMMAND_MODULES: tuple[str, ...] = (
    "assistant.cli.chat",
    "assistant.cli.intents",
    "assistant.cli.listen",
    "assistant.cli.models",
    "assistant.cli.satellite",
    "assistant.cli.service",
    "assistant.cli.speak",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Local, private, hands-free voice commands.")
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    return int(args.func(args) or 0)
