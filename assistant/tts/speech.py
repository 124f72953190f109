"""The Speech facade: text clean-up, reply cache, engine choice with fallback, self-check.

Everything that speaks (the `say` command, the listen loop, the HTTP API) goes through one
`Speech`, so they share one warm engine per kind and one reply cache.

Speed: `measure_speeds` times each engine on a short reply; a live reply that is not cached
then uses the first engine that keeps up with real time (`SpeechSettings.live_policy`), while
pre-rendered and cached replies keep the configured voice.

Engine choice: `engine="auto"` walks the fallback chain (default tortoise -> piper -> espeak);
naming an engine tries it first, then the rest of the chain. An engine that cannot be built
(`TTSUnavailable`: Tortoise weights missing, piper-tts not installed, espeak-ng absent) is
reported once in the log and skipped from then on. Voice names belong to one engine (a Tortoise
voice folder, a Piper .onnx path, an espeak-ng voice), so the voice goes to the first engine of
the chain only; a fallback engine speaks in its own default voice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from assistant.audio.clip import Audio
from assistant.scheduler import Priority, work_priority
from assistant.tts.base import TTSEngine, TTSUnavailable
from assistant.tts.cache import DEFAULT_MAX_BYTES, CacheKey, ReplyCache
from assistant.tts.selfcheck import SelfCheck, Transcriber
from assistant.tts.textnorm import normalize

log = logging.getLogger(__name__)

ENGINES = ("tortoise", "piper", "espeak")
LIVE_POLICIES = ("keeps-up", "configured")

EngineFactory = Callable[[], TTSEngine]


@dataclass(frozen=True)
class SpeechSettings:
    engine: str = "auto"
    """"auto" (walk `fallback`) or one engine name to try first."""
    fallback: tuple[str, ...] = ENGINES
    voice: str | None = None
    """Voice for the configured engine (the first of the chain); None: its own default."""
    device: str = "auto"
    """Compute device for Tortoise."""
    tortoise_preset: str | None = None
    """Tortoise preset (ultra_fast, fast, standard, high_quality); None: the engine's default."""
    cache: bool = True
    cache_max_bytes: int = DEFAULT_MAX_BYTES
    normalize_text: bool = True
    check_prerendered: bool = True
    """Self-check pre-rendered replies (needs a transcriber)."""
    check_live: bool = False
    """Self-check live replies too: better audio, but a reply waits for Whisper (and re-renders)."""
    check_threshold: float = 0.25
    check_tries: int = 3
    live_policy: str = "keeps-up"
    """How a live reply that is not in the cache picks its engine. "keeps-up": the first engine
    of the chain whose measured real-time factor is below `keep_up_rtf` (the configured voice
    when it is fast enough, e.g. Tortoise on a GPU; else a faster fallback, so the reply neither
    starts late nor stutters). "configured": the first engine that runs, however slow.
    Pre-rendered and cached replies always use the configured voice."""
    keep_up_rtf: float = 0.7
    """An engine keeps up when it makes one second of audio in less than this many seconds
    (headroom: Whisper and the rest of the machine share the device)."""
    speed_text: str = "Okay, the kitchen light is on."
    """The short reply each engine says to measure its speed (`measure_speeds`)."""

    def __post_init__(self) -> None:
        unknown = [name for name in (self.engine, *self.fallback) if name != "auto" and name not in ENGINES]
        if unknown:
            raise ValueError(f"unknown TTS engine(s) {', '.join(map(repr, unknown))}: use auto, {', '.join(ENGINES)}")
        if not self.fallback:
            raise ValueError("the TTS fallback chain is empty")
        if self.live_policy not in LIVE_POLICIES:
            raise ValueError(f"unknown live-reply policy {self.live_policy!r}: use {' or '.join(LIVE_POLICIES)}")
        if self.keep_up_rtf <= 0:
            raise ValueError(f"keep_up_rtf must be positive, got {self.keep_up_rtf}")


def default_factories(settings: SpeechSettings) -> dict[str, EngineFactory]:
    """Engines are built lazily: importing Tortoise costs seconds and torch, Piper is optional."""

    def tortoise() -> TTSEngine:
        from assistant.tts.tortoise import TortoiseEngine, TortoiseSettings

        preset = TortoiseSettings.from_preset(settings.tortoise_preset) if settings.tortoise_preset else None
        return TortoiseEngine(preset, device=settings.device)

    def piper() -> TTSEngine:
        from assistant.tts.piper import PiperEngine

        return PiperEngine()

    def espeak() -> TTSEngine:
        from assistant.tts.espeak import EspeakEngine

        return EspeakEngine()

    return {"tortoise": tortoise, "piper": piper, "espeak": espeak}


def settings_key(engine: TTSEngine) -> str:
    """The engine's sound-changing settings for the reply-cache key: its `cache_key` (property or
    method), else its `settings.cache_key()` (Tortoise's knobs), else nothing."""
    key = getattr(engine, "cache_key", None)
    if key is None:
        key = getattr(getattr(engine, "settings", None), "cache_key", None)
    if callable(key):
        key = key()
    return "" if key is None else str(key)


@dataclass
class SpeechStats:
    """Counters for metrics and tests (e.g. a cache hit must not synthesise)."""

    synthesized: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    prerendered: int = 0
    fallbacks: int = 0
    last_engine: str | None = None
    """The engine that spoke (or whose cached audio was used for) the latest reply."""
    by_engine: dict[str, int] = field(default_factory=dict)
    checked: dict[str, CheckOutcome] = field(default_factory=dict)
    """Spoken text -> the latest self-check of its reply (passed or not)."""


@dataclass(frozen=True)
class CheckOutcome:
    """What the self-check concluded about one reply (for the log, health and tests)."""

    engine: str
    wer: float
    heard: str
    tries: int
    passed: bool


class Speech:
    """Thread-safe: the listen loop, the HTTP API and the pre-renderer call it concurrently."""

    def __init__(
        self,
        settings: SpeechSettings | None = None,
        *,
        factories: dict[str, EngineFactory] | None = None,
        cache: ReplyCache | None = None,
        transcriber: Transcriber | None = None,
    ) -> None:
        self.settings = settings or SpeechSettings()
        self._factories = factories if factories is not None else default_factories(self.settings)
        if cache is None and self.settings.cache:
            cache = ReplyCache(max_bytes=self.settings.cache_max_bytes)
        self.cache = cache
        self.selfcheck: SelfCheck | None = None
        if transcriber is not None:
            self.set_transcriber(transcriber)
        self.stats = SpeechStats()
        self._engines: dict[str, TTSEngine] = {}
        self._unavailable: dict[str, str] = {}
        self._lock = threading.Lock()
        self._prerender_jobs: list[tuple[list[str], str | None, str | None]] = []
        self._prerender_busy = threading.Condition(self._lock)
        """Notified when a batch is queued and when the worker has rendered them all."""
        self._prerender_running = False
        self._prerender_thread: threading.Thread | None = None
        self.speeds: dict[str, float] = {}
        """Engine -> real-time factor measured here (`measure_speeds`); drives the live policy."""

    def set_transcriber(self, transcriber: Transcriber) -> None:
        """Turn the self-check on with `transcriber` (Whisper is often loaded after Speech)."""
        self.selfcheck = SelfCheck(transcriber, self.settings.check_threshold, self.settings.check_tries)

    def replies_report(self) -> dict[str, object]:
        """Pre-rendered replies, how many were self-checked, and those that never passed."""
        with self._lock:
            checks = dict(self.stats.checked)
            prerendered = self.stats.prerendered
        failed = [{"text": text, "wer": round(outcome.wer, 3), "heard": outcome.heard, "engine": outcome.engine}
                  for text, outcome in checks.items() if not outcome.passed]
        return {"prerendered": prerendered, "checked": len(checks), "failed": failed}

    # -- engines ---------------------------------------------------------------------------

    def engine(self, name: str) -> TTSEngine | None:
        """The built engine, building it on first use; None when it cannot run here (logged once)."""
        with self._lock:
            if name in self._engines:
                return self._engines[name]
            if name in self._unavailable:
                return None
            factory = self._factories.get(name)
            if factory is None:
                self._mark_unavailable(name, "no such engine is configured")
                return None
            try:
                built = factory()
            except TTSUnavailable as exc:
                self._mark_unavailable(name, str(exc))
                return None
            self._engines[name] = built
            return built

    def _mark_unavailable(self, name: str, reason: str) -> None:
        if name not in self._unavailable:
            self._unavailable[name] = reason
            log.warning("TTS engine %s is unavailable (%s); using the fallback voice instead", name, reason)

    @property
    def unavailable(self) -> dict[str, str]:
        """Engine name -> why it cannot run (for `doctor` and the API)."""
        with self._lock:
            return dict(self._unavailable)

    def chain(self, engine: str | None = None) -> list[str]:
        """Engines to try, in order, for a request naming `engine` (None: the configured one)."""
        chosen = engine or self.settings.engine
        if chosen == "auto":
            return list(self.settings.fallback)
        if chosen not in ENGINES:
            raise ValueError(f"unknown TTS engine {chosen!r}: use auto, {', '.join(ENGINES)}")
        return [chosen, *(name for name in self.settings.fallback if name != chosen)]

    # -- speed and the live-reply policy ------------------------------------------------------

    def measure_speeds(self, text: str | None = None) -> dict[str, float]:
        """Each engine of the chain that runs here says a short text (once to warm up, once
        timed); its real-time factor is recorded for the live policy and returned."""
        text = text or self.settings.speed_text
        for name in self.chain():
            built = self.engine(name)
            if built is None:
                continue
            try:
                built.synthesize(text)
                started = time.perf_counter()
                audio = built.synthesize(text)
                elapsed = time.perf_counter() - started
            except (TTSUnavailable, RuntimeError, OSError) as exc:
                self._engine_failed(name, exc)
                continue
            if audio.duration > 0:
                with self._lock:
                    self.speeds[name] = elapsed / audio.duration
        log.info("TTS speed (real-time factor, < %.2f keeps up): %s; live replies not in the cache: %s",
                 self.settings.keep_up_rtf, ", ".join(f"{n} {r:.2f}" for n, r in self.speeds.items()) or "none measured",
                 self.live_engine() or "none")
        return dict(self.speeds)

    def keeps_up(self, name: str) -> bool | None:
        """Whether `name` makes audio comfortably faster than real time; None: not measured."""
        rtf = self.speeds.get(name)
        return None if rtf is None else rtf < self.settings.keep_up_rtf

    def live_order(self, engine: str | None = None) -> list[str]:
        """Engines in the order a live reply not in the cache tries them. "keeps-up": those that
        keep up first (chain order), then the others from the fastest (unmeasured ones last);
        nothing measured, or "configured": the chain itself."""
        chain = self.chain(engine)
        if self.settings.live_policy == "configured" or not self.speeds:
            return chain
        fast = [name for name in chain if self.keeps_up(name)]
        slow = sorted((name for name in chain if name not in fast), key=lambda n: self.speeds.get(n, float("inf")))
        return fast + slow

    def live_engine(self) -> str | None:
        """The engine a live reply not in the cache uses now (None: none runs here)."""
        for name in self.live_order():
            if name not in self.unavailable and name in self._factories:
                return name
        return None

    def _candidates(self, text: str, voice: str | None, engine: str | None,
                    order: list[str] | None = None) -> Iterator[tuple[str, TTSEngine, str | None, CacheKey]]:
        """(spoken text, engine, its voice, cache key) for each engine to try, in `order`
        (default: the chain)."""
        spoken = normalize(text) if self.settings.normalize_text else " ".join(text.split())
        if not spoken:
            raise ValueError("nothing to say: the text is empty")
        chain = self.chain(engine)
        if voice is None and chain[0] == self.chain()[0]:
            # The configured voice belongs to the configured engine: `engine="espeak"` on a
            # Tortoise set-up must not hand espeak-ng a Tortoise voice name.
            voice = self.settings.voice
        for name in order or chain:
            built = self.engine(name)
            if built is None:
                continue
            index = chain.index(name)
            engine_voice = voice if index == 0 else None
            if index > 0:
                with self._lock:
                    self.stats.fallbacks += 1
            yield spoken, built, engine_voice, CacheKey(name, engine_voice, spoken, settings_key(built))

    def _cached(self, key: CacheKey) -> Audio | None:
        if self.cache is None:
            return None
        audio = self.cache.get(key)
        with self._lock:
            if audio is None:
                self.stats.cache_misses += 1
            else:
                self.stats.cache_hits += 1
        return audio

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats.synthesized += 1
            self.stats.by_engine[name] = self.stats.by_engine.get(name, 0) + 1

    def _no_engine(self, tried: Sequence[str]) -> TTSUnavailable:
        reasons = "; ".join(f"{name}: {why}" for name, why in self.unavailable.items())
        return TTSUnavailable(f"no TTS engine could speak (tried {', '.join(tried)}): {reasons}")

    # -- speaking --------------------------------------------------------------------------

    def _render(self, engine: TTSEngine, text: str, voice: str | None, check: bool,
                first: Audio | None = None) -> Audio:
        """A new rendering, self-checked when `check` (re-rendered while it is misheard).

        `first` is a take already made (a cached reply never checked): it is scored first and
        rendered again only when it fails.
        """
        seed = getattr(getattr(engine, "settings", None), "seed", None)

        def render(attempt: int = 0) -> Audio:
            if attempt == 0 and first is not None:
                return first
            self._count(engine.name)
            if attempt and isinstance(seed, int):
                # Deterministic engines would repeat the same slip; a new seed is a new take.
                return engine.synthesize(text, voice, seed=seed + attempt)  # type: ignore[call-arg]
            return engine.synthesize(text, voice)

        selfcheck = self.selfcheck
        if not (check and selfcheck):
            return render()
        if getattr(engine, "deterministic", False) and not isinstance(seed, int):
            # the same text gives the same audio: a second take would be the same slip
            selfcheck = SelfCheck(selfcheck.transcriber, selfcheck.threshold, 1)
        attempts = iter(range(selfcheck.max_tries))
        result = selfcheck.run(text, lambda: render(next(attempts)))
        outcome = CheckOutcome(engine.name, result.wer, result.transcript, result.tries, result.passed)
        with self._lock:
            self.stats.checked[text] = outcome
        if outcome.passed:
            log.info("self-check: %r passed (%s, WER %.2f, %d %s)", text, engine.name, outcome.wer, outcome.tries,
                     "try" if outcome.tries == 1 else "tries")
        return result.audio

    def synthesize(self, text: str, voice: str | None = None, engine: str | None = None, *,
                   check: bool | None = None) -> Audio:
        """The whole reply. `check` self-checks it (default: the live-reply setting).

        Raises ValueError for empty text or an unknown voice, TTSUnavailable when no engine can run.
        """
        check = self.settings.check_live if check is None else check
        tried = []
        for spoken, built, engine_voice, key in self._candidates(text, voice, engine):
            tried.append(built.name)
            self.stats.last_engine = built.name
            cached = self._cached(key)
            unchecked = check and self.selfcheck is not None and cached is not None and not self._passed(key)
            if cached is not None and not unchecked:
                return cached
            try:
                audio = self._render(built, spoken, engine_voice, check, first=cached)
            except (TTSUnavailable, RuntimeError, OSError) as exc:
                self._engine_failed(built.name, exc)
                continue
            if self.cache is not None:
                if audio is not cached:
                    self.cache.put(key, audio)
                outcome = self.stats.checked.get(spoken) if check and self.selfcheck is not None else None
                if outcome is not None and outcome.passed:
                    self.cache.mark_passed(key, outcome.wer)
            return audio
        raise self._no_engine(tried or self.chain(engine))

    def _passed(self, key: CacheKey) -> bool:
        """The cached take of `key` passed a self-check (in this process or an earlier one)."""
        if self.cache is None:
            return False
        wer = self.cache.passed_wer(key)
        if wer is None:
            return False
        with self._lock:
            self.stats.checked.setdefault(key.text, CheckOutcome(key.engine, wer, "", 0, True))
        return True

    def _engine_failed(self, name: str, exc: Exception) -> None:
        if isinstance(exc, TTSUnavailable):
            with self._lock:
                self._engines.pop(name, None)
                self._mark_unavailable(name, str(exc))
        else:
            log.error("TTS engine %s failed (%s); trying the next engine", name, exc)

    def stream(self, text: str, voice: str | None = None, engine: str | None = None, *,
               live: bool = False) -> Iterator[Audio]:
        """Chunks as they are rendered (one chunk for a cached reply or a non-streaming engine).

        `live` (the reply the user is waiting for, no engine named): the configured voice's
        cached take if there is one, else the live policy's engine order (`live_order`).
        A fully streamed reply is cached. An engine failing before its first chunk falls back;
        after it, the error propagates (half a reply cannot be restarted in another voice).
        """
        order = self.live_order(engine) if live and engine is None else None
        if order is not None and order != self.chain(engine):
            configured = next(self._candidates(text, voice, engine, self.chain(engine)[:1]), None)
            cached = self._cached(configured[3]) if configured is not None else None
            if cached is not None:
                self.stats.last_engine = configured[1].name  # type: ignore[index]
                yield cached
                return
        tried = []
        for spoken, built, engine_voice, key in self._candidates(text, voice, engine, order):
            tried.append(built.name)
            self.stats.last_engine = built.name
            cached = self._cached(key)
            if cached is not None:
                yield cached
                return
            self._count(built.name)
            chunks: list[Audio] = []
            try:
                for chunk in built.stream(spoken, engine_voice):
                    chunks.append(chunk)
                    yield chunk
            except (TTSUnavailable, RuntimeError, OSError) as exc:
                if chunks:
                    raise
                self._engine_failed(built.name, exc)
                continue
            if self.cache is not None and chunks:
                self.cache.put(key, Audio.concat(chunks))
            return
        raise self._no_engine(tried or self.chain(engine))

    # -- pre-rendering ---------------------------------------------------------------------

    def prerender(self, texts: Sequence[str], voice: str | None = None, engine: str | None = None) -> None:
        """Render `texts` into the reply cache in the background (progress in the log), so
        those replies start instantly; self-checked when a transcriber is set and
        `check_prerendered` is on. Returns at once; `wait_prerendered` waits for it.

        One worker thread, started on the first call, renders every batch in turn (a reload's
        batch after the start's). A new thread per batch landed on a new glibc arena each time,
        and the self-check's Whisper passes left a few MiB of small blocks in every one of
        them: the soak's RSS stepped up +6 and +4 MiB on the first reloads."""
        unique = list(dict.fromkeys(text for text in texts if text.strip()))
        with self._prerender_busy:
            self._prerender_jobs.append((unique, voice, engine))
            self._prerender_busy.notify_all()
            if self._prerender_thread is None:
                self._prerender_thread = threading.Thread(target=self._prerender_forever, name="tts-prerender",
                                                          daemon=True)
                self._prerender_thread.start()

    def _prerender_forever(self) -> None:
        with work_priority(Priority.BACKGROUND):  # after commands, live replies and the API
            while True:
                with self._prerender_busy:
                    self._prerender_running = False
                    self._prerender_busy.notify_all()
                    while not self._prerender_jobs:
                        self._prerender_busy.wait()
                    texts, voice, engine = self._prerender_jobs.pop(0)
                    self._prerender_running = True
                self._prerender_all(texts, voice, engine)

    def _prerender_all(self, texts: list[str], voice: str | None, engine: str | None) -> None:
        total = len(texts)
        log.info("pre-rendering %d static replies in the background", total)
        failed = 0
        for done, text in enumerate(texts, start=1):
            try:
                self.synthesize(text, voice, engine, check=self.settings.check_prerendered)
                with self._lock:
                    self.stats.prerendered += 1
            except Exception as exc:  # one bad reply must not stop the others
                failed += 1
                log.error("pre-rendering %r failed: %s", text, exc)
            log.info("pre-rendered %d/%d replies", done, total)
        log.info("pre-rendering finished: %d ready, %d failed", total - failed, failed)

    def wait_prerendered(self, timeout: float | None = None) -> bool:
        """True when no pre-rendering is queued or running (any more)."""
        with self._prerender_busy:
            return self._prerender_busy.wait_for(
                lambda: not self._prerender_jobs and not self._prerender_running, timeout)
