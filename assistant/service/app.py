"""`assistant serve`: one process with the listen loop, the HTTP API and the Wyoming server over the
same warm models.

This module assembles the service (its parts come from `assistant.assemble`, as for `listen`)
and wires their callbacks; keeping it alive is `supervisor.py`'s job, measuring it
`loopmetrics.py`'s.

Threads: the main thread supervises (`Supervisor`: signals, hot reload polling, systemd watchdog;
`LoopRunner`: restarting a crashed listen loop); the listen loop runs in its own thread; the API and
the Wyoming server each have their event loop thread and a small worker pool; the Speaker plays
replies from its own thread. Model work from any of them is ordered by the model scheduler
(`assistant.scheduler`: commands, live reply, API, pre-rendering), whose slot the models take
themselves.

Every part can be injected (`Service(options, asr=..., speech=..., source=..., player=...)`) so
tests run the real assembly with a tiny Whisper, a file source and a WAV sink.

Lifecycle: load commands -> load and warm Whisper and the voice -> start the loop and the API ->
`READY=1` -> supervise -> on SIGTERM: `STOPPING=1`, cancel the reply in progress, stop the
loop, close handlers and timers, stop the API, let a running pre-render finish its reply (the
caches write each entry atomically, so nothing else needs flushing).
"""

from __future__ import annotations

import logging
import time

import numpy as np
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant import assemble
from assistant.conversation import ConversationSettings
from assistant.handlers import Dispatcher
from assistant.intents import CommandSet, load_commands
from assistant.scheduler import SCHEDULER
from assistant.service.api import ApiBackend, ApiServer, ApiSettings, build_app
from assistant.service.health import ServiceState
from assistant.service.loopmetrics import LoopMetrics, TimedSpeech
from assistant.service.metrics import ServiceMetrics, rss_bytes
from assistant.service.notify import Notifier, Watchdog, watchdog_interval
from assistant.service.reload import CommandsReloader, ReloadResult, install_commands
from assistant.service.supervisor import HeartbeatSource, LoopRunner, Supervisor
from assistant.service.wyoming import WyomingBackend, WyomingServer, WyomingSettings, recognition_transcriber, voices_from_view
from assistant.store import Store, StoreError, shared_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    """What `assistant serve` runs (its command-line options)."""

    commands: Path
    """The commands file (hot-reloaded when it changes)."""
    api: ApiSettings | None = field(default_factory=ApiSettings)
    """None: no HTTP API."""
    wyoming: WyomingSettings | None = None
    """The Wyoming server (Home Assistant, satellites); None (the default): none."""
    listen: bool = True
    """False (--no-mic): API only, no listen loop."""
    input: str | None = None
    """None: the microphone; "-": raw PCM on stdin; a path: a WAV file."""
    mic_device: str | None = None
    """Microphone: index or part of its name; None: the system's default input."""
    transcribe: bool = True
    """False (--no-transcribe, with --no-mic): no Whisper is loaded; /v1/transcribe answers 503
    and Wyoming transcription answers with an error event."""
    whisper_model: str = "tiny.en"
    """Whisper model name or checkpoint path."""
    device: str = "auto"
    """Compute device for Whisper and Tortoise."""
    engine: str = "auto"
    """TTS engine tried first (auto: the fallback chain)."""
    voice: str | None = None
    """Voice of that engine; None: its default."""
    speak: bool = True
    """False (--no-speak): replies are logged, not played."""
    output_device: str | None = None
    """Speaker: index or part of its name; None: the system's default output."""
    recognition: str = "free"
    """How speech becomes a command, in the loop, Wyoming and /v1/transcribe?commands=true:
    "guided" (Whisper decodes what the commands allow) or "free" (transcribe, then match)."""
    barge_in: bool = True
    """Listen for "stop" (the stop set) while a reply plays; False (--no-barge-in): hear nothing
    while speaking, for rooms where the reply comes back loud and nothing cancels echo."""
    reload_interval: float = 1.0
    """Seconds between checks of the commands file for changes (hot reload)."""
    stall_seconds: float = 45.0
    """No audio consumed for this long while the source is open = the loop is stuck (watchdog)."""
    tick_seconds: float = 0.25
    """How often the main thread runs its supervision round."""
    loop_restart_seconds: float = 2.0
    """Pause before a crashed listen loop is started again."""
    mic_retry_seconds: float = 5.0
    """How often to try again when the microphone could not be opened at start."""
    self_check: bool = True
    """Self-check pre-rendered replies with the resident Whisper (False: --no-self-check)."""
    warm_text: str = "Okay."
    """Said once at start (not played) so the voice is warm for the first reply."""
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    """Confirmation and follow-up windows, and the wake word (none by default)."""

    def models(self) -> assemble.ModelOptions:
        return assemble.ModelOptions(whisper_model=self.whisper_model, device=self.device)

    def speech(self) -> assemble.SpeechOptions:
        return assemble.SpeechOptions(engine=self.engine, voice=self.voice, device=self.device,
                                      output_device=self.output_device, self_check=self.self_check)


class Service:
    """The parts of `assistant serve`, built from `ServeOptions`, and the callbacks between them.

    Every part can be injected (`Service(options, asr=..., speech=..., source=..., player=...)`)
    so tests run the real assembly with a tiny Whisper, a file source and a WAV sink.
    """

    def __init__(self, options: ServeOptions, *, asr: Any = None, speech: Any = None, source: Any = None,
                 player: Any = None, notifier: Notifier | None = None, watchdog_env: dict[str, str] | None = None) -> None:
        self.options = options
        self.state = ServiceState()
        self.metrics = ServiceMetrics(self.state.uptime, rss_bytes)
        self.loop_metrics = LoopMetrics(self.metrics, self.state)
        self.notifier = notifier or Notifier()
        self.asr = asr
        self.speech = speech
        self.player = player
        self._given_source = source
        self.speaker: Any = None
        self.dispatcher: Dispatcher | None = None
        self.recognizer: Any = None
        self.reloader: CommandsReloader | None = None
        self.runner: LoopRunner | None = None
        self.api: ApiServer | None = None
        self.wyoming: WyomingServer | None = None
        self._mic_retry_at: float | None = None
        self._unobserve_scheduler: Any = None
        self._next_poll = 0.0
        self.watchdog = Watchdog(self.notifier, watchdog_interval(watchdog_env), [self._loop_problem, self._api_problem, self._wyoming_problem])
        self.supervisor = Supervisor(self.watchdog, tick_seconds=options.tick_seconds)

    @property
    def loop(self) -> Any:
        """The listen loop now running (None: not listening)."""
        return self.runner.loop if self.runner is not None else None

    # -- start-up --------------------------------------------------------------------------

    def start(self) -> None:
        """Load everything, start the loop and the API, then tell systemd we are ready.

        Raises CommandsError (bad commands file), ApiConfigError, OSError (port taken) and model
        loading errors: start-up failures end the process (systemd restarts it, with limits).
        """
        options = self.options
        self._status("loading commands")
        commands = load_commands(options.commands)
        self.state.commands_path = str(commands.path)
        self.state.commands_count = len(commands.intents)
        if options.api is not None:
            options.api.check()  # refuse a public address without a token before loading models
        if options.wyoming is not None:
            options.wyoming.check()  # likewise a public Wyoming address not explicitly allowed
        self.dispatcher = assemble.build_dispatcher(commands, announce=self._announce, cancel=self._cancel,
                                                    store=self._open_store())
        self.reloader = CommandsReloader(options.commands, commands, load=self._load_for_reload,
                                         apply=[self._apply_commands], on_result=self._reloaded)
        self._unobserve_scheduler = SCHEDULER.add_observer(self.loop_metrics.on_model_wait)
        self._load_asr()
        if self.asr is not None:  # one recognizer for the loop, Wyoming and the API (hot reload replaces its commands)
            self.recognizer = self._build_recognizer(commands)
        self._load_speech(commands)
        if options.listen:
            self._start_loop(commands)
        if options.api is not None:
            self._start_api(options.api)
        if options.wyoming is not None:
            self._start_wyoming(options.wyoming)
        self.dispatcher.restore_timers()  # after the speaker exists: overdue timers are said
        self.state.phase = "ready"
        self.notifier.ready(self._summary())
        log.info("ready: %s", self._summary())

    def _open_store(self) -> Store | None:
        try:
            self.state.store = shared_store()
        except StoreError as exc:
            log.error("%s; timers will not survive a restart", exc)
            self.state.store_error = str(exc)
            self.state.record_error("state", str(exc))
        return self.state.store

    def _status(self, text: str) -> None:
        log.info("%s", text)
        self.notifier.status(text)

    def _load_asr(self) -> None:
        serving = self.options.api is not None or self.options.wyoming is not None
        if self.asr is None and (self.options.listen or (serving and self.options.transcribe)):
            self._status(f"loading Whisper {self.options.whisper_model}")
            started = time.perf_counter()
            self.asr = assemble.load_whisper(self.options.models())
            self.state.models["asr"] = {"loaded": True, "model": self.options.whisper_model,
                                        "load_seconds": round(time.perf_counter() - started, 2)}
        elif self.asr is not None:
            self.state.models["asr"] = {"loaded": True, "model": getattr(getattr(self.asr, "settings", None), "model", "injected")}
        else:
            self.state.models["asr"] = {"loaded": False}

    def _load_speech(self, commands: CommandSet) -> None:
        if self.speech is None:
            self.speech = assemble.build_speech(self.options.speech())
        self._status("warming up the voice")
        started = time.perf_counter()
        try:
            self.speech.synthesize(self.options.warm_text)
            engine = self.speech.stats.last_engine
            self.state.models["tts"] = {"loaded": True, "engine": engine, "unavailable": self.speech.unavailable,
                                        "warm_seconds": round(time.perf_counter() - started, 2)}
            if self.speech.settings.live_policy == "keeps-up":  # which voice keeps up for live replies
                rtf = self.speech.measure_speeds()
                self.state.models["tts"].update(rtf={n: round(r, 3) for n, r in rtf.items()},
                                                live_engine=self.speech.live_engine())
        except Exception as exc:  # noqa: BLE001 - no voice at all: keep listening, replies are logged
            log.error("no TTS engine works (%s); replies will only be logged", exc)
            self.state.record_error("tts", str(exc))
            self.state.models["tts"] = {"loaded": False, "error": str(exc)}
            return
        if self.asr is not None and self.options.self_check:
            assemble.enable_selfcheck(self.speech, self.asr)
        self.state.speech = self.speech
        self.speech.prerender(commands.static_replies())
        if self.options.speak and self.options.listen:
            if self.player is None:
                self.player = self._open_player()
            if self.player is not None:
                timed = TimedSpeech(self.speech, lambda s: self.metrics.observe_stage("tts", s))
                self.speaker = assemble.build_speaker(timed, self.player)

    def _open_player(self) -> Any:
        from assistant.playback import PlaybackUnavailable

        try:
            return assemble.open_player(self.options.speech())
        except PlaybackUnavailable as exc:
            log.error("%s; replies will only be logged", exc)
            self.state.record_error("playback", str(exc))
            return None

    def _open_source(self) -> Any:
        if self._given_source is not None:
            return self._given_source
        from assistant.audio import open_source

        choice = self.options.input
        self.state.source_kind = "stdin" if choice == "-" else "file" if choice else "microphone"
        return open_source(choice, self.options.mic_device)

    def _start_loop(self, commands: CommandSet) -> None:
        from assistant.audio import AudioDeviceError

        try:
            raw = self._open_source()
        except AudioDeviceError as exc:
            # At boot the microphone may come later: serve the API meanwhile and keep trying
            # (logged once, not every retry: the journal would fill up over a long absence).
            if self.state.microphone_error is None:
                log.error("%s; serving without listening, retrying every %.0f s", exc, self.options.mic_retry_seconds)
                self.state.record_error("microphone", str(exc))
            else:
                log.debug("microphone still unavailable: %s", exc)
            self.state.microphone_error = str(exc)
            self._mic_retry_at = time.monotonic() + self.options.mic_retry_seconds
            return
        if self.state.microphone_error is not None:
            log.info("microphone available now; listening")
        self.state.microphone_error = None
        self._mic_retry_at = None
        if self.state.source_kind == "none":
            self.state.source_kind = "microphone" if getattr(raw, "realtime", False) else "file"
        source = HeartbeatSource(raw)
        self.state.source = source
        self.runner = LoopRunner(source, self._make_loop, state=self.state, metrics=self.metrics,
                                 wake=self.supervisor.wake, restart_seconds=self.options.loop_restart_seconds,
                                 stall_seconds=self.options.stall_seconds)
        self.runner.start()

    def _make_loop(self, source: HeartbeatSource) -> Any:
        assert self.dispatcher is not None
        self.loop_metrics.reset_vad()
        from assistant.loop import LoopSettings

        return assemble.build_loop(source, self.recognizer, self.dispatcher, speaker=self.speaker,
                                   on_event=self._on_event, on_reply=self._log_reply,
                                   conversation=self.options.conversation,
                                   settings=LoopSettings(barge_in=self.options.barge_in))

    def _build_recognizer(self, commands: CommandSet) -> Any:
        """The recognizer of `commands` with the configured policy (built once, when Whisper is loaded)."""
        from assistant.asr.recognizer import RecognizerSettings

        return assemble.build_recognizer(self.asr, commands, RecognizerSettings(recognition=self.options.recognition))

    def _recognize(self, audio: np.ndarray) -> Any:
        """/v1/transcribe?commands=true: the audio recognised as the loop would, against the active commands."""
        return self.recognizer.recognize(audio)

    def _start_api(self, settings: ApiSettings) -> None:
        backend = ApiBackend(
            commands=self._current_commands,
            dispatcher=self.dispatcher, speech=self.speech,
            transcribe=self.asr.transcribe if self.asr is not None else None,
            health=self.health, voices=self.voices, metrics=self.metrics,
            on_error=self.state.record_error,
            recognize=self._recognize if self.asr is not None else None,
        )
        self.api = ApiServer(build_app(backend, settings), settings)
        self.api.start()

    def _start_wyoming(self, settings: WyomingSettings) -> None:
        transcribe = None
        if self.asr is not None:
            transcribe = recognition_transcriber(self.asr, self.recognizer)
        tts_loaded = self.state.models.get("tts", {}).get("loaded")
        assert self.dispatcher is not None
        backend = WyomingBackend(
            commands=self._current_commands, dispatcher=lambda: self.dispatcher,
            transcribe=transcribe, speech=self.speech if tts_loaded else None, timers=self.dispatcher.timers,
            asr_model=self.options.whisper_model, voices=lambda: voices_from_view(self.voices()),
            observe=self.metrics.observe_stage, on_error=self.state.record_error,
        )
        self.wyoming = WyomingServer(backend, settings)
        self.wyoming.start()

    def _current_commands(self) -> CommandSet:
        assert self.reloader is not None
        return self.reloader.current

    def _summary(self) -> str:
        parts = [f"{self.state.commands_count} intents"]
        if self.options.listen:
            parts.append(f"listening ({self.state.source_kind})")
        if self.api is not None:
            parts.append(f"API {self.api.url}")
        if self.wyoming is not None:
            parts.append(f"Wyoming {self.wyoming.settings.uri}")
        return "; ".join(parts)

    # -- what the parts call back ------------------------------------------------------------

    def _announce(self, text: str) -> None:
        """A timer fired: say it (or log it without a speaker)."""
        if self.speaker is not None:
            self.speaker.say(text)
        else:
            self._log_reply(text)

    def _cancel(self) -> None:
        if self.speaker is not None:
            self.speaker.stop()

    @staticmethod
    def _log_reply(text: str) -> None:
        log.info("reply: %s", text)

    def _on_event(self, event: dict[str, Any]) -> None:
        loop = self.loop
        totals = (loop.stats.frames, loop.stats.vad_ms) if loop is not None else None
        self.loop_metrics.on_event(event, totals)

    # -- hot reload ----------------------------------------------------------------------------

    def _load_for_reload(self, path: Path) -> CommandSet:
        self.state.phase = "reloading"
        self.notifier.reloading()
        return load_commands(path)

    def _apply_commands(self, new: CommandSet, old: CommandSet) -> None:
        assert self.dispatcher is not None
        tts_loaded = self.speech is not None and self.state.models.get("tts", {}).get("loaded")
        install_commands(new, old, dispatcher=self.dispatcher, recognizer=self.recognizer,
                         speech=self.speech if tts_loaded else None)

    def _reloaded(self, result: ReloadResult) -> None:
        self.metrics.reloads.inc(result="ok" if result.ok else "error")
        self.state.reload_error = result.error
        self.state.commands_count = result.intents
        if not result.ok:
            self.state.record_error("reload", result.error or "")
        self.state.phase = "ready"
        status = self._summary() if result.ok else f"reload rejected: {result.error}"
        self.notifier.ready(status)

    # -- supervision -------------------------------------------------------------------------

    def _loop_problem(self) -> str | None:
        return self.runner.problem() if self.runner is not None else None

    def _api_problem(self) -> str | None:
        if self.api is None or self.api.responsive(timeout=5.0):
            return None
        return "the HTTP API event loop is not responding"

    def _wyoming_problem(self) -> str | None:
        if self.wyoming is None or self.wyoming.responsive(timeout=5.0):
            return None
        return "the Wyoming server's event loop is not responding"

    def install_signal_handlers(self) -> None:
        self.supervisor.install_signal_handlers()

    def request_stop(self) -> None:
        self.supervisor.request_stop()

    def request_reload(self) -> None:
        self.supervisor.request_reload()

    def run(self) -> int:
        """Supervise until asked to stop; returns the exit status."""
        self.supervisor.run(self._tick)
        self.shutdown()
        return 0

    def _tick(self, now: float, reload_asked: bool) -> bool:
        """One supervision round; False when there is nothing left to do."""
        if reload_asked and self.reloader is not None:
            self.reloader.reload("SIGHUP")
        if self.reloader is not None and now >= self._next_poll:
            self._next_poll = now + self.options.reload_interval
            self.reloader.poll()
        if self.runner is not None:
            self.runner.restart_if_crashed(now)
        if self._mic_retry_at is not None and now >= self._mic_retry_at and self.reloader is not None:
            self._start_loop(self.reloader.current)
        if self.runner is not None and self.runner.input_ended and self.api is None:
            log.info("nothing left to do: the input ended and there is no API")
            return False
        return True

    def shutdown(self) -> None:
        """Stop cleanly: what systemd's SIGTERM asks for."""
        if self.state.phase == "stopping":
            return
        self.state.phase = "stopping"
        self.notifier.stopping()
        log.info("stopping")
        if self.speaker is not None:
            self.speaker.stop()
        if self.runner is not None:
            self.runner.stop()
        if self.wyoming is not None:
            self.wyoming.stop()
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.api is not None:
            self.api.stop()
        if self.speech is not None and not self.speech.wait_prerendered(timeout=5):
            log.warning("pre-rendering still running at exit; its current reply is dropped")
        if self._unobserve_scheduler is not None:
            self._unobserve_scheduler()
        self.notifier.close()
        log.info("stopped")

    # -- API views -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.state.to_json()

    def voices(self) -> dict[str, Any]:
        from assistant.tts import ENGINES

        speech = self.speech
        unavailable = speech.unavailable if speech is not None else {}
        engines: dict[str, Any] = {name: {"available": name not in unavailable, "reason": unavailable.get(name)}
                                   for name in ENGINES}
        try:
            from assistant.tts.voices import list_voices

            engines["tortoise"]["voices"] = [voice.name for voice in list_voices()]
        except Exception as exc:  # noqa: BLE001 - voices are informational here
            engines["tortoise"]["voices"] = []
            engines["tortoise"]["reason"] = engines["tortoise"]["reason"] or str(exc)
        default = speech.settings.voice if speech is not None else None
        return {"engines": engines, "default_engine": speech.settings.engine if speech else None, "default_voice": default}


def serve(options: ServeOptions) -> int:
    """The `assistant serve` command body."""
    service = Service(options)
    service.install_signal_handlers()
    try:
        service.start()
    except BaseException:
        service.shutdown()
        raise
    return service.run()
