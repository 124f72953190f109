"""assistant: a local, private, hands-free voice-command assistant.

The package layout follows the pipeline: audio -> vad -> asr -> intents -> handlers -> tts ->
playback, with `service` assembling them into the long-running process and `cli` exposing them.
"""

__version__ = "0.1.0"
