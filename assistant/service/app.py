"""`assistant serve`: one process with the listen loop and the HTTP API over the same warm models.

Threads: the main thread supervises (signals, hot reload polling, systemd watchdog, restarting a
crashed listen loop); the listen loop runs in its own thread; the API has its event loop thread
and a small worker pool; the Speaker plays replies from its own thread. Model work from any of
them is serialised by `assistant.device.MODEL_LOCK`, which the models take themselves.

Every part can be injected (`Service(options, asr=..., speech=..., source=..., player=...)`) so
tests run the real assembly with a tiny Whisper, a file source and a WAV sink.

Lifecycle: load commands -> load and warm Whisper and the voice -> start the loop and the API ->
`READY=1` -> supervise -> on SIGTERM: `STOPPING=1`, cancel the reply in progress, stop the
loop, close handlers and timers, stop the API, let a running pre-render finish its reply (the
caches write each entry atomically, so nothing else needs flushing).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.handlers import Dispatcher
from assistant.intents import CommandSet, load_commands
from assistant.service.api import ApiBackend, ApiServer, ApiSettings, build_app
from assistant.service.health import ServiceState
from assistant.service.metrics import ServiceMetrics, rss_bytes
from assistant.service.notify import Notifier, Watchdog, watchdog_interval
from assistant.service.reload import CommandsReloader, ReloadResult, new_static_replies
from assistant.store import Store, StoreError, shared_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    commands: Path
    api: ApiSettings | None = field(default_factory=ApiSettings)
    """None: no HTTP API."""
    listen: bool = True
    """False (--no-mic): API only, no listen loop."""
    input: str | None = None
    """None: the microphone; "-": raw PCM on stdin; a path: a WAV file."""
    mic_device: str | None = None
    transcribe: bool = True
    """False (--no-transcribe, with --no-mic): no Whisper is loaded; /v1/transcribe answers 503."""
    whisper_model: str = "tiny.en"
    device: str = "auto"
    engine: str = "auto"
    voice: str | None = None
    speak: bool = True
    """False (--no-speak): replies are logged, not played."""
    output_device: str | None = None
    reload_interval: float = 1.0
    stall_seconds: float = 45.0
    """No audio consumed for this long while the source is open = the loop is stuck (watchdog)."""
    tick_seconds: float = 0.25
    loop_restart_seconds: float = 2.0
    mic_retry_seconds: float = 5.0
    """How often to try again when the microphone could not be opened at start."""
    warm_text: str = "Okay."


class HeartbeatSource:
    """Wraps an audio source and notes when the loop last took a frame (for the watchdog)."""

    def __init__(self, source: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.realtime = source.realtime
        self._clock = clock
        self.last_frame = clock()
        self.frames_seen = 0

    @property
    def state(self) -> str:
        return self.source.state

    def frames(self) -> Iterator[bytes]:
        for frame in self.source.frames():
            self.last_frame = self._clock()
            self.frames_seen += 1
            yield frame

    def close(self) -> None:
        self.source.close()

    def stalled_for(self) -> float:
        return self._clock() - self.last_frame


class TimedSpeech:
    """Speech as the Speaker sees it: times each reply until its first chunk (the tts metric:
    how long the user waits for the voice to start)."""

    def __init__(self, speech: Any, observe: Callable[[float], None]) -> None:
        self._speech = speech
        self._observe = observe

    def stream(self, text: str, voice: str | None = None, engine: str | None = None) -> Iterator[Any]:
        started = time.perf_counter()
        first = True
        for chunk in self._speech.stream(text, voice, engine):
            if first:
                self._observe(time.perf_counter() - started)
                first = False
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._speech, name)


class Service:
    def __init__(self, options: ServeOptions, *, asr: Any = None, speech: Any = None, source: Any = None,
                 player: Any = None, notifier: Notifier | None = None, watchdog_env: dict[str, str] | None = None) -> None:
        self.options = options
        self.state = ServiceState()
        self.metrics = ServiceMetrics(self.state.uptime, rss_bytes)
        self.notifier = notifier or Notifier()
        self.asr = asr
        self.speech = speech
        self.player = player
        self._given_source = source
        self.source: HeartbeatSource | None = None
        self.speaker: Any = None
        self.dispatcher: Dispatcher | None = None
        self.reloader: CommandsReloader | None = None
        self.loop: Any = None
        self.api: ApiServer | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_failed_at: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._hup = False
        self._input_ended = False
        self._mic_retry_at: float | None = None
        self._event_at = time.perf_counter()
        self._vad_mark = (0, 0.0)
        self.watchdog = Watchdog(self.notifier, watchdog_interval(watchdog_env), [self._loop_alive, self._api_alive])

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
        self.dispatcher = Dispatcher(commands, announce=self._announce, cancel=self._cancel, store=self._open_store())
        self.reloader = CommandsReloader(options.commands, commands, load=self._load_for_reload,
                                         apply=[self._apply_commands], on_result=self._reloaded)
        self._load_asr()
        self._load_speech(commands)
        if options.listen:
            self._start_loop(commands)
        if options.api is not None:
            self._start_api(options.api)
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
        if self.asr is None and (self.options.listen or (self.options.api is not None and self.options.transcribe)):
            from assistant.asr import WhisperASR, WhisperSettings

            self._status(f"loading Whisper {self.options.whisper_model}")
            started = time.perf_counter()
            self.asr = WhisperASR(WhisperSettings(model=self.options.whisper_model, device=self.options.device))
            self.state.models["asr"] = {"loaded": True, "model": self.options.whisper_model,
                                        "load_seconds": round(time.perf_counter() - started, 2)}
        elif self.asr is not None:
            self.state.models["asr"] = {"loaded": True, "model": getattr(getattr(self.asr, "settings", None), "model", "injected")}
        else:
            self.state.models["asr"] = {"loaded": False}

    def _load_speech(self, commands: CommandSet) -> None:
        if self.speech is None:
            from assistant.tts import Speech, SpeechSettings

            self.speech = Speech(SpeechSettings(engine=self.options.engine, voice=self.options.voice, device=self.options.device))
        self._status("warming up the voice")
        started = time.perf_counter()
        try:
            self.speech.synthesize(self.options.warm_text)
            engine = self.speech.stats.last_engine
            self.state.models["tts"] = {"loaded": True, "engine": engine, "unavailable": self.speech.unavailable,
                                        "warm_seconds": round(time.perf_counter() - started, 2)}
        except Exception as exc:  # noqa: BLE001 - no voice at all: keep listening, replies are logged
            log.error("no TTS engine works (%s); replies will only be logged", exc)
            self.state.record_error("tts", str(exc))
            self.state.models["tts"] = {"loaded": False, "error": str(exc)}
            return
        self.speech.prerender(commands.static_replies())
        if self.options.speak and self.options.listen:
            from assistant.playback.speaker import Speaker

            if self.player is None:
                self.player = self._open_player()
            if self.player is not None:
                self.speaker = Speaker(TimedSpeech(self.speech, lambda s: self.metrics.observe_stage("tts", s)), self.player)

    def _open_player(self) -> Any:
        from assistant.playback import DevicePlayer, PlaybackUnavailable

        device = self.options.output_device
        try:
            return DevicePlayer(int(device) if device and device.isdigit() else device)
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
        self.source = HeartbeatSource(raw)
        self.state.source = self.source
        self._spawn_loop(commands)

    def _spawn_loop(self, commands: CommandSet) -> None:
        from assistant.loop import ListenLoop

        assert self.dispatcher is not None and self.source is not None
        speaker = self.speaker
        self.loop = ListenLoop(
            self.source, self.asr, commands, self.dispatcher,
            speak=speaker.say if speaker is not None else self._log_reply,
            is_speaking=(lambda: speaker.is_speaking) if speaker is not None else (lambda: False),
            on_event=self._on_event,
        )
        self._vad_mark = (0, 0.0)
        self._loop_thread = threading.Thread(target=self._run_loop, name="listen-loop", daemon=True)
        self.state.loop_running = True
        self._loop_thread.start()

    def _run_loop(self) -> None:
        try:
            self.loop.run()
            if not self._stop.is_set():
                log.info("the audio input ended; the listen loop stopped")
                self._input_ended = True
        except Exception as exc:  # noqa: BLE001 - recorded; the main thread restarts the loop
            log.exception("the listen loop crashed")
            self.state.record_error("loop", f"{type(exc).__name__}: {exc}")
            self.metrics.errors.inc(stage="loop")
            self._loop_failed_at = time.monotonic()
        finally:
            self.state.loop_running = False
            self._wake.set()

    def _start_api(self, settings: ApiSettings) -> None:
        backend = ApiBackend(
            commands=self._current_commands,
            dispatcher=self.dispatcher, speech=self.speech,
            transcribe=self.asr.transcribe if self.asr is not None else None,
            health=self.health, voices=self.voices, metrics=self.metrics,
            on_error=self.state.record_error,
        )
        self.api = ApiServer(build_app(backend, settings), settings)
        self.api.start()

    def _current_commands(self) -> CommandSet:
        assert self.reloader is not None
        return self.reloader.current

    def _summary(self) -> str:
        parts = [f"{self.state.commands_count} intents"]
        if self.options.listen:
            parts.append(f"listening ({self.state.source_kind})")
        if self.api is not None:
            parts.append(f"API {self.api.url}")
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
        """Listen-loop events -> metrics and health.

        The loop's recognition worker emits transcript -> intent/no-match -> handler in order
        from one thread, so the time between those events is the match and handler time; the
        VAD cost is the loop's running total, observed per frame at each speech segment.
        """
        kind = event.get("event")
        now = time.perf_counter()
        metrics = self.metrics
        if kind == "speech" and self.loop is not None:
            stats = self.loop.stats
            frames = stats.frames - self._vad_mark[0]
            if frames > 0:
                metrics.observe_stage("vad", (stats.vad_ms - self._vad_mark[1]) / frames / 1000.0)
            self._vad_mark = (stats.frames, stats.vad_ms)
        elif kind == "transcript":
            metrics.observe_stage("asr", float(event.get("asr_ms", 0.0)) / 1000.0)
            self._event_at = now
        elif kind == "intent":
            metrics.observe_stage("match", now - self._event_at)
            metrics.intents.inc(intent=str(event.get("intent")), source="loop")
            self._event_at = now
        elif kind == "no-match":
            metrics.observe_stage("match", now - self._event_at)
            metrics.no_match.inc(source="loop")
        elif kind == "handler":
            metrics.observe_stage("handler", now - self._event_at)
            if not event.get("ok"):
                metrics.handler_failures.inc(intent=str(event.get("intent")))
        elif kind == "error":
            stage = str(event.get("stage", "loop"))
            metrics.errors.inc(stage=stage)
            self.state.record_error(stage, str(event.get("message")))

    # -- hot reload ----------------------------------------------------------------------------

    def _load_for_reload(self, path: Path) -> CommandSet:
        self.state.phase = "reloading"
        self.notifier.reloading()
        return load_commands(path)

    def _apply_commands(self, new: CommandSet, old: CommandSet) -> None:
        assert self.dispatcher is not None
        self.dispatcher.replace_commands(new)
        if self.loop is not None:
            self.loop.replace_commands(new)
        if self.speech is not None and self.state.models.get("tts", {}).get("loaded"):
            fresh = new_static_replies(new, old)
            if fresh:
                self.speech.prerender(fresh)

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

    def _loop_alive(self) -> str | None:
        source, thread = self.source, self._loop_thread
        if source is None or thread is None or not thread.is_alive() or source.state != "open":
            return None
        stalled = source.stalled_for()
        if stalled > self.options.stall_seconds:
            return f"the listen loop has taken no audio for {stalled:.0f} s"
        return None

    def _api_alive(self) -> str | None:
        if self.api is None or self.api.responsive(timeout=5.0):
            return None
        return "the HTTP API event loop is not responding"

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads; the handlers only set flags (the main loop acts)."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._hup = True
        self._wake.set()

    def run(self) -> int:
        """Supervise until asked to stop; returns the exit status."""
        next_poll = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.options.tick_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self._hup and self.reloader is not None:
                self._hup = False
                self.reloader.reload("SIGHUP")
            now = time.monotonic()
            if self.reloader is not None and now >= next_poll:
                next_poll = now + self.options.reload_interval
                self.reloader.poll()
            self._restart_crashed_loop(now)
            if self._mic_retry_at is not None and now >= self._mic_retry_at and self.reloader is not None:
                self._start_loop(self.reloader.current)
            if self._input_ended and self.api is None:
                log.info("nothing left to do: the input ended and there is no API")
                break
            self.watchdog.tick()
        self.shutdown()
        return 0

    def _restart_crashed_loop(self, now: float) -> None:
        failed = self._loop_failed_at
        if failed is None or now - failed < self.options.loop_restart_seconds or self._stop.is_set():
            return
        self._loop_failed_at = None
        if self.source is None or self.source.state == "closed" or self.reloader is None:
            return
        self.state.loop_restarts += 1
        log.warning("restarting the listen loop (restart %d)", self.state.loop_restarts)
        self._spawn_loop(self.reloader.current)

    def shutdown(self) -> None:
        """Stop cleanly: what systemd's SIGTERM asks for."""
        if self.state.phase == "stopping":
            return
        self.state.phase = "stopping"
        self.notifier.stopping()
        log.info("stopping")
        if self.speaker is not None:
            self.speaker.stop()
        if self.loop is not None:
            self.loop.stop()
        if self.source is not None:
            self.source.close()
        if self._loop_thread is not None:
            self._loop_thread.join(10)
            if self._loop_thread.is_alive():
                log.warning("the listen loop did not stop within 10 s")
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.api is not None:
            self.api.stop()
        if self.speech is not None and not self.speech.wait_prerendered(timeout=5):
            log.warning("pre-rendering still running at exit; its current reply is dropped")
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
