"""`assistant chat`: the assistant without a microphone or a speaker.

Reads one sentence per line from stdin, matches it, runs the handler and prints the reply, so
commands.yaml and its handlers can be tried (and scripted) on any machine. An intent marked
`confirm:` prints its question and runs only if the next line is a yes (as by voice). Timer announcements
are printed when they fire; `--wait-timers` keeps the program alive after the input ends until
every pending timer has fired (for piped input such as `echo "set a timer for 5 seconds" | ...`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from assistant.conversation import CANCELLED, classify_answer

NO_MATCH = "(no command matches that)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("chat", help="type commands instead of speaking them (replies are printed)")
    parser.add_argument("--commands", default="commands.yaml", help="commands file (default ./commands.yaml)")
    parser.add_argument("--wait-timers", action="store_true", help="at end of input, wait for pending timers to fire")
    parser.add_argument("--show-intent", action="store_true", help="print the matched intent and slots before each reply")
    parser.set_defaults(func=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    from assistant.handlers import Dispatcher
    from assistant.intents import CommandsError, load_commands

    try:
        commands = load_commands(args.commands)
    except CommandsError as exc:
        print(exc, file=sys.stderr)
        return 1
    out_lock = threading.Lock()

    def say(text: str) -> None:
        with out_lock:
            print(text, flush=True)

    interactive = sys.stdin.isatty()
    if interactive:
        say(f"{len(commands.intents)} commands from {commands.path}. Type one per line (Ctrl-D to quit); try: what can I say")
    dispatcher = Dispatcher(commands, announce=say)
    pending = None  # a command marked `confirm:` waiting for the next line's yes
    try:
        while True:
            if interactive:
                with out_lock:
                    print("> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if pending is not None:
                say(_confirm(dispatcher, pending, text, args.show_intent))
                pending = None
                continue
            match = commands.match(text)
            question = dispatcher.confirmation(match) if match is not None else None
            if question is not None:
                pending = match
                say(question)
            else:
                say(_respond(match, dispatcher, args.show_intent))
        if pending is not None:
            say(CANCELLED["timeout"])
        if args.wait_timers:
            while dispatcher.timers.pending():
                time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        dispatcher.close()
    return 0


def _confirm(dispatcher, pending, text: str, show_intent: bool) -> str:
    """The line after a confirmation question: yes runs the command, anything else cancels it."""
    kind = classify_answer(text)
    if kind == "yes":
        return _respond(pending, dispatcher, show_intent)
    return CANCELLED["no" if kind == "no" else "other"]


def _respond(match, dispatcher, show_intent: bool) -> str:
    if match is None:
        return NO_MATCH
    outcome = dispatcher.handle(match)
    reply = outcome.reply if outcome.reply is not None else ("(done)" if outcome.ok else f"(failed: {outcome.error})")
    if show_intent:
        slots = ", ".join(f"{k}={v!r}" for k, v in match.slots.items())
        fuzzy = "" if match.exact else " ~near-miss"
        return f"[{match.intent}{fuzzy}{': ' + slots if slots else ''}] {reply}"
    return reply
