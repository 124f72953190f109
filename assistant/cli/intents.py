"""`assistant intents check|test`: see what the grammar does without a microphone.

`check` validates a commands file the way the assistant will load it (exit 1 with
`FILE:LINE:COL: message`); `test` matches sentences (one JSON object per line, optionally running
the handlers) or runs a YAML file of intent tests in Home Assistant's format.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("intents", help="check commands.yaml and try sentences against it")
    sub = parser.add_subparsers(dest="intents_command", required=True)

    check = sub.add_parser("check", help="validate a commands file (exit 1 with FILE:LINE:COL: message)")
    check.add_argument("file", nargs="?", default="commands.yaml", help="commands file (default ./commands.yaml)")
    _add_list_option(check)
    check.set_defaults(func=_check)

    test = sub.add_parser("test", help="match sentences, or run a YAML tests file")
    test.add_argument("sentences", nargs="*", metavar="SENTENCE")
    test.add_argument("--commands", default="commands.yaml", help="commands file (default ./commands.yaml)")
    test.add_argument("--run", action="store_true", help="also run the matched handlers and print the reply")
    test.add_argument("--tests", metavar="FILE", help="YAML tests file (HA format: tests: - sentences/intent)")
    _add_list_option(test)
    test.set_defaults(func=_test)


def _add_list_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--list",
        action="append",
        default=[],
        metavar="NAME=V1,V2|NAME=*",
        help="supply a list the file uses but does not define (like HA's {name}/{area}); '*' = wildcard",
    )


def _extra_lists(specs: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name:
            raise SystemExit(f"--list {spec!r}: expected NAME=V1,V2 or NAME=*")
        result[name] = "wildcard" if values == "*" else [v.strip() for v in values.split(",") if v.strip()]
    return result


def _load(file: str, lists: list[str]):
    from assistant.intents import CommandsError, load_commands

    try:
        return load_commands(file, extra_lists=_extra_lists(lists))
    except CommandsError as exc:
        print(exc, file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    commands = _load(args.file, args.list)
    if commands is None:
        return 1
    sentences = sum(len(spec.sentences) for spec in commands.intents.values())
    handlers = sum(1 for spec in commands.intents.values() if spec.handler is not None)
    print(f"{commands.path}: OK: {len(commands.intents)} intents, {sentences} sentence templates, {handlers} handlers")
    return 0


def _test(args: argparse.Namespace) -> int:
    commands = _load(args.commands, args.list)
    if commands is None:
        return 1
    if args.tests:
        return _run_tests_file(commands, Path(args.tests))
    if not args.sentences:
        print("give sentences to match, or --tests FILE", file=sys.stderr)
        return 2
    dispatcher = None
    if args.run:
        from assistant.handlers import Dispatcher

        dispatcher = Dispatcher(commands, announce=lambda text: print(json.dumps({"announce": text}), flush=True))
    try:
        for sentence in args.sentences:
            match = commands.match(sentence)
            out: dict[str, Any] = {
                "text": sentence,
                "intent": match.intent if match else None,
                "slots": match.slots if match else {},
            }
            if match is not None and not match.exact:
                out["exact"] = False
            if dispatcher is not None:
                outcome = dispatcher.handle(match) if match is not None else None
                out["reply"] = outcome.reply if outcome is not None else None
                if outcome is not None and not outcome.ok:
                    out["error"] = outcome.error
            print(json.dumps(out, ensure_ascii=False, default=str), flush=True)
    finally:
        if dispatcher is not None:
            dispatcher.close()
    return 0


def _run_tests_file(commands, path: Path) -> int:
    from assistant.intents import CommandsError
    from assistant.intents.yamltests import load_tests, run_tests

    try:
        cases = load_tests(path)
    except CommandsError as exc:
        print(exc, file=sys.stderr)
        return 1
    failures = run_tests(commands, cases)
    for failure in failures:
        print(f"{path}:{failure}", file=sys.stderr)
    passed = len(cases) - len(failures)
    print(f"{path}: {passed}/{len(cases)} sentences passed" + (f", {len(failures)} FAILED" if failures else ""))
    return 1 if failures else 0
