"""What happens when an intent matches: run a program, call Python, call HTTP, or a built-in.

`parse_handler` turns the `handler:` mapping of an intent into a HandlerSpec when commands.yaml
loads (all checks happen there); the Dispatcher runs it when the intent matches and fills the
intent's reply template with the slots and the handler's fields.
"""

from assistant.handlers.builtins import BuiltinHandler
from assistant.handlers.dispatcher import Dispatcher, HandlerOutcome
from assistant.handlers.http import HttpHandler
from assistant.handlers.parse import parse_handler
from assistant.handlers.python import PythonHandler
from assistant.handlers.run import RunHandler
from assistant.handlers.spec import HandlerFailure, HandlerSpec, RunContext

__all__ = [
    "BuiltinHandler",
    "Dispatcher",
    "HandlerOutcome",
    "HandlerFailure",
    "HandlerSpec",
    "HttpHandler",
    "PythonHandler",
    "RunContext",
    "RunHandler",
    "parse_handler",
]
