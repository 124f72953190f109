"""One assembly: the assistant's parts built from settings, the same way for every front end.

`assistant listen`, `assistant serve` (loop, HTTP API, Wyoming server) and the satellite each
need some of the same parts: a resident Whisper, the recognition policy over the active
commands, the speech engine with its reply cache, a player, the speaker that joins the two, the
dispatcher that runs handlers, the listen loop. Built here and only here, a setting (an engine,
a voice, an output device) means the same thing in every front end; the front ends keep only
what is theirs (argument parsing, supervision, protocol).

Heavy imports (torch, Whisper, Tortoise, PortAudio) happen inside the builders, so a front end
that needs none of them (the satellite, `intents check`) stays light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.asr.recognizer import CommandMatcher, Recognizer, RecognizerSettings, Transcriber
    from assistant.asr.resident import WhisperASR
    from assistant.audio import AudioSource
    from assistant.conversation import ConversationSettings
    from assistant.handlers import Dispatcher
    from assistant.intents import CommandSet
    from assistant.loop import ListenLoop, LoopSettings
    from assistant.playback.base import Player
    from assistant.playback.speaker import Speaker
    from assistant.store import Store
    from assistant.tts import Speech

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelOptions:
    """Which recognition model runs where."""

    whisper_model: str = "tiny.en"
    """Whisper model name (tiny.en is made offline) or a path to an openai-whisper checkpoint."""
    device: str = "auto"
    """Compute device for Whisper and Tortoise: auto, cpu, cuda, cuda:N, mps or xpu."""


@dataclass(frozen=True)
class SpeechOptions:
    """How replies are spoken and where they are played."""

    engine: str = "auto"
    """TTS engine tried first: auto (the fallback chain), tortoise, piper or espeak."""
    voice: str | None = None
    """Voice of that engine (a Tortoise voice folder, a Piper model, an espeak-ng voice)."""
    device: str = "auto"
    """Compute device for Tortoise (as `ModelOptions.device`)."""
    output_device: str | None = None
    """Speaker: a device index or part of its name; None: the system's default output."""
    speak_to: Path | None = None
    """Write replies to this WAV file instead of a sound device."""
    self_check: bool = True
    """Transcribe pre-rendered replies with the resident Whisper (at background priority) and
    render a misheard one again (`assistant.tts.selfcheck`)."""


def load_whisper(options: ModelOptions) -> WhisperASR:
    """The resident Whisper, loaded and warmed up (seconds; raises WhisperWeightsError/ValueError)."""
    from assistant.asr import WhisperASR, WhisperSettings

    return WhisperASR(WhisperSettings(model=options.whisper_model, device=options.device))


def build_recognizer(asr: Transcriber, commands: CommandMatcher, settings: RecognizerSettings | None = None) -> Recognizer:
    """The recognition policy over the active commands (replace them with `replace_commands`)."""
    from assistant.asr.recognizer import Recognizer, RecognizerSettings

    return Recognizer(asr, commands, settings or RecognizerSettings())


def build_speech(options: SpeechOptions, asr: WhisperASR | None = None) -> Speech:
    """The one Speech (engines, fallback chain, reply cache) every speaking part shares; with
    `asr` its pre-rendered replies are self-checked (Whisper loaded later: `enable_selfcheck`)."""
    from assistant.tts import Speech, SpeechSettings

    speech = Speech(SpeechSettings(engine=options.engine, voice=options.voice, device=options.device,
                                   check_prerendered=options.self_check))
    if asr is not None:
        enable_selfcheck(speech, asr)
    return speech


def enable_selfcheck(speech: Speech, asr: Any) -> bool:
    """Self-check `speech`'s pre-rendered replies with the resident Whisper, as background work
    (after commands, live replies and API requests). False when its settings turn checks off or
    it already has a transcriber."""
    if speech.selfcheck is not None or not speech.settings.check_prerendered:
        return False
    from assistant.scheduler import Priority, work_priority
    from assistant.tts.selfcheck import whisper_transcriber

    transcribe = whisper_transcriber(asr)

    def background(samples: Any) -> str:
        with work_priority(Priority.BACKGROUND):
            return transcribe(samples)

    speech.set_transcriber(background)
    return True


def open_player(options: SpeechOptions) -> Player:
    """Where replies are heard: the WAV file of `speak_to`, else the sound device.

    Raises PlaybackUnavailable when there is no output device.
    """
    from assistant.playback import DevicePlayer, FileSink

    if options.speak_to is not None:
        return FileSink(options.speak_to)
    device = options.output_device
    return DevicePlayer(int(device) if device is not None and device.isdigit() else device)


def build_speaker(speech: Any, player: Player) -> Speaker:
    """Speech + player: `say` queues a reply, `is_speaking` mutes the listener, `stop` cuts it.

    `speech` is a Speech or anything that streams like one (the service wraps it to time the
    first chunk of each reply).
    """
    from assistant.playback.speaker import Speaker

    return Speaker(speech, player)


def build_dispatcher(commands: CommandSet, *, announce: Callable[[str], None], cancel: Callable[[], None],
                     store: Store | None = None) -> Dispatcher:
    """Runs handlers; `announce` speaks what a timer says, `cancel` stops the reply in progress,
    `store` keeps timers and lists across restarts (None: in memory only)."""
    from assistant.handlers import Dispatcher

    return Dispatcher(commands, announce=announce, cancel=cancel, store=store)


def build_loop(
    source: AudioSource,
    recognizer: Recognizer,
    dispatcher: Dispatcher,
    *,
    speaker: Speaker | None,
    on_event: Callable[[dict], None],
    settings: LoopSettings | None = None,
    on_reply: Callable[[str], None] | None = None,
    conversation: ConversationSettings | None = None,
) -> ListenLoop:
    """The listen loop: replies go to `speaker` (while it speaks the listener hears only the stop
    set, checked against what its player plays, or nothing with `barge_in` off), or to
    `on_reply` when there is no speaker (replies printed or logged only). `conversation` sets
    the confirmation and follow-up windows and the wake word (its detector is loaded here)."""
    from assistant.conversation import Conversation, ConversationSettings
    from assistant.loop import ListenLoop, LoopSettings

    talk = conversation or ConversationSettings()
    wake = None
    if talk.wake_word is not None:
        from assistant.wakeword import WakeWordDetector, WakeWordSettings

        wake = WakeWordDetector(WakeWordSettings(model=talk.wake_word))

    if speaker is not None:
        speak: Callable[[str], None] | None = speaker.say
        is_speaking: Callable[[], bool] = lambda: speaker.is_speaking  # noqa: E731 - read at each frame
        interrupt: Callable[[], None] | None = speaker.stop
        played = speaker.played
    else:
        speak, is_speaking, interrupt, played = on_reply, (lambda: False), None, None
    return ListenLoop(source, recognizer, dispatcher, settings=settings or LoopSettings(), speak=speak,
                      is_speaking=is_speaking, on_event=on_event, conversation=Conversation(talk), wake=wake,
                      interrupt=interrupt, played=played)
