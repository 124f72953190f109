"""Intents: commands.yaml in hassil's syntax, validated at load, matched with ASR slips in mind.

`load_commands(path)` gives a `CommandSet`; `CommandSet.match(text)` gives an `IntentMatch` or
None. See README "Adding an intent".
"""

from assistant.intents.commandset import CommandSet, load_commands
from assistant.yamlpos import CommandsError
from assistant.intents.model import IntentMatch, IntentSpec

__all__ = ["CommandSet", "CommandsError", "IntentMatch", "IntentSpec", "load_commands"]
