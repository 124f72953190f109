"""The HTTP API: the service's warm models for other local tools.

aiohttp because it has what this API needs built in and well tested: streamed (chunked)
responses for `/v1/speak`, a request size cap (`client_max_size`) enforced while reading, and
an HTTP parser that turns malformed requests into 400s; it is maintained by aio-libs and pulls
no web framework stack. The models are synchronous and take the model scheduler's slot
(`assistant.scheduler`) themselves, so handlers run them in a small thread pool: the event loop
stays free to answer health checks and reject bad requests while a model works, and the
scheduler keeps the API and the listen loop from running two inferences at once. API work runs
at API priority: after a spoken command and a live reply, before pre-rendering.

Every error is a JSON body `{"error": {"status", "code", "message"}}` with a 4xx/5xx status.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from assistant.audio import SAMPLE_RATE, AudioFormatError, decode_wav, float_to_pcm16, resample
from assistant.scheduler import Priority, work_priority
from assistant.service.metrics import ServiceMetrics
from assistant.service.openapi import openapi_document
from assistant.tts.base import TTSUnavailable

log = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 4000, 384_000
"""Sample rates /v1/transcribe accepts (telephone to studio; anything else is a broken header)."""
WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})


class ApiConfigError(ValueError):
    """The API cannot start as configured (e.g. a public address without a token)."""


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    """Bearer token; required when `host` is not a loopback address."""
    max_audio_bytes: int = 10 * 1024 * 1024
    """Largest WAV body accepted by /v1/transcribe."""
    max_audio_seconds: float = 30.0
    """Longest audio /v1/transcribe takes (one Whisper window; commands are seconds long)."""
    max_json_bytes: int = 64 * 1024
    max_text_chars: int = 2000
    workers: int = 4
    """Threads running model and handler calls (model work itself is serialised by the model scheduler)."""

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ApiConfigError(f"port {self.port} is out of range 0-65535")
        if not is_loopback(self.host) and not self.token:
            raise ApiConfigError(
                f"refusing to serve the API on {self.host!r} without a bearer token: anyone who can reach it could "
                "run your handlers. Set ASSISTANT_API_TOKEN or --token-file, or bind to 127.0.0.1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere: treat as public


@dataclass
class ApiBackend:
    """What the API serves, injected by the Service (or a test) so each part can be real or absent.

    transcribe(audio float32 16 kHz, prompt) -> an object with text, segments, duration_ms
    (`WhisperASR.transcribe`); None while no ASR is loaded (503).
    recognize(audio) -> a `Recognition` (`Recognizer.recognize`: the listen loop's policy, guided
    or free, against the active commands), for /v1/transcribe?commands=true; None: 503 there.
    """

    commands: Callable[[], Any]
    dispatcher: Any | None
    speech: Any | None
    transcribe: Callable[[np.ndarray, str | None], Any] | None
    health: Callable[[], dict[str, Any]]
    voices: Callable[[], dict[str, Any]]
    metrics: ServiceMetrics
    on_error: Callable[[str, str], None] = field(default=lambda stage, message: None)
    """Told about server-side failures (stage, message), for health's last_error."""
    recognize: Callable[[np.ndarray], Any] | None = None
    """The service's command recognition; None when no recognizer is built (503 for ?commands=true)."""


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": {"status": status, "code": code, "message": message}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                 411: "length_required", 413: "payload_too_large", 415: "unsupported_media_type",
                 422: "unprocessable", 500: "internal_error", 503: "unavailable"}


def build_app(backend: ApiBackend, settings: ApiSettings) -> web.Application:
    """The aiohttp application; `ApiServer` runs it, tests may too."""
    settings.check()
    executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="api")
    api = _Handlers(backend, settings, executor)

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        route = request.match_info.route.resource
        endpoint = route.canonical if route is not None else "unknown"
        try:
            if settings.token and not _authorized(request, settings.token):
                raise ApiError(401, "unauthorized", "missing or wrong bearer token (header `Authorization: Bearer TOKEN`)")
            response = await handler(request)
        except ApiError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            response = error_response(exc.status, exc.code, exc.message, headers)
        except web.HTTPException as exc:  # aiohttp's own: 404, 405, 413 from client_max_size, ...
            if exc.status < 400:
                raise
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
            response = error_response(exc.status, _STATUS_CODES.get(exc.status, "error"), message)
        except Exception as exc:  # noqa: BLE001 - one bad request must never take the service down
            log.exception("API %s %s failed", request.method, request.path)
            backend.on_error("api", f"{request.method} {request.path}: {type(exc).__name__}: {exc}")
            response = error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")
        backend.metrics.api_requests.inc(endpoint=endpoint, status=str(response.status))
        return response

    app = web.Application(middlewares=[guard], client_max_size=settings.max_audio_bytes)
    app.router.add_post("/v1/transcribe", api.transcribe)
    app.router.add_post("/v1/speak", api.speak)
    app.router.add_post("/v1/intent", api.intent)
    app.router.add_get("/v1/voices", api.voices)
    app.router.add_get("/v1/timers", api.timers)
    app.router.add_get("/v1/health", api.health)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/openapi.json", api.openapi)

    async def shutdown(_: web.Application) -> None:
        executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)
    return app


def _as_api_work(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Run `fn` in a worker thread with API priority for any model work it does."""
    with work_priority(Priority.API):
        return fn(*args)


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class _Handlers:
    def __init__(self, backend: ApiBackend, settings: ApiSettings, executor: ThreadPoolExecutor) -> None:
        self.backend = backend
        self.settings = settings
        self.executor = executor

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, _as_api_work, fn, args)

    # -- body reading ----------------------------------------------------------------------

    async def _body(self, request: web.Request, cap: int, types: frozenset[str], what: str) -> bytes:
        if request.content_type not in types:
            raise ApiError(415, "unsupported_media_type",
                           f"{what}: Content-Type must be {' or '.join(sorted(types))}, not {request.content_type or 'missing'!r}")
        if request.content_length is not None and request.content_length > cap:
            raise ApiError(413, "payload_too_large", f"{what}: body of {request.content_length} bytes exceeds the cap of {cap}")
        body = bytearray()
        try:
            async for chunk in request.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > cap:
                    raise ApiError(413, "payload_too_large", f"{what}: body exceeds the cap of {cap} bytes")
        except (HttpProcessingError, ConnectionResetError) as exc:  # the client hung up mid-body: its fault
            raise ApiError(400, "bad_request", f"{what}: the request body ended early ({exc})") from exc
        if not body:
            raise ApiError(400, "bad_request", f"{what}: the request body is empty")
        return bytes(body)

    async def _json(self, request: web.Request, what: str) -> dict[str, Any]:
        raw = await self._body(request, self.settings.max_json_bytes, frozenset({"application/json"}), what)
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, "bad_request", f"{what}: malformed JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", f"{what}: the body must be a JSON object")
        return data

    def _text(self, data: dict[str, Any], what: str) -> str:
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, "unprocessable", f"{what}: `text` must be a non-empty string")
        if len(text) > self.settings.max_text_chars:
            raise ApiError(413, "payload_too_large", f"{what}: `text` is {len(text)} characters; the cap is {self.settings.max_text_chars}")
        return text

    @staticmethod
    def _optional_str(data: dict[str, Any], key: str, what: str) -> str | None:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ApiError(422, "unprocessable", f"{what}: `{key}` must be a string")
        return value

    # -- endpoints -------------------------------------------------------------------------

    async def transcribe(self, request: web.Request) -> web.Response:
        what = "POST /v1/transcribe"
        if self.backend.transcribe is None:
            raise ApiError(503, "unavailable", "speech recognition is not loaded in this service")
        body = await self._body(request, self.settings.max_audio_bytes, WAV_TYPES, what)
        samples = await self._run(_decode_wav, body, self.settings.max_audio_seconds)
        seconds = len(samples) / SAMPLE_RATE
        if seconds < 0.1:
            raise ApiError(422, "unprocessable", f"{what}: {seconds * 1000:.0f} ms of audio is too short to transcribe")
        if _flag(request.query.get("commands"), "commands", what):
            return await self._recognize(samples, seconds, what)
        prompt = request.query.get("prompt") or None
        started = time.perf_counter()
        transcript = await self._run(self.backend.transcribe, samples, prompt)
        self.backend.metrics.observe_stage("asr", time.perf_counter() - started)
        return web.json_response({
            "text": transcript.text.strip(),
            "segments": _jsonable(transcript.segments),
            "duration_ms": round(float(transcript.duration_ms), 1),
            "audio_seconds": round(seconds, 3),
            "path": "full",  # one free decode over the whole window, as the caller asked
            "confidence": None,
        })

    async def _recognize(self, samples: np.ndarray, seconds: float, what: str) -> web.Response:
        """The audio as the listen loop hears a command: the recognizer's policy (guided or free
        passes), which pass decided, the guided confidence, and the command (never run here)."""
        if self.backend.recognize is None:
            raise ApiError(503, "unavailable", f"{what}?commands=true: no command recognizer is loaded in this service")
        started = time.perf_counter()
        recognition = await self._run(self.backend.recognize, samples)
        self.backend.metrics.observe_stage("asr", time.perf_counter() - started)
        match = recognition.match
        return web.json_response({
            "text": recognition.text.strip(),
            "path": recognition.path,
            "confidence": None if recognition.confidence is None else round(float(recognition.confidence), 3),
            "intent": match.intent if match is not None else None,
            "slots": _jsonable(match.slots) if match is not None else {},
            "exact": bool(match.exact) if match is not None else None,
            "passes": recognition.passes,
            "duration_ms": round(float(recognition.asr_ms + recognition.match_ms), 1),
            "audio_seconds": round(seconds, 3),
        })

    async def speak(self, request: web.Request) -> web.StreamResponse:
        what = "POST /v1/speak"
        speech = self.backend.speech
        if speech is None:
            raise ApiError(503, "unavailable", "speech synthesis is not loaded in this service")
        data = await self._json(request, what)
        text = self._text(data, what)
        voice = self._optional_str(data, "voice", what)
        engine = self._optional_str(data, "engine", what)
        started = time.perf_counter()
        chunks = speech.stream(text, voice, engine)
        try:
            first = await self._run(_next_chunk, chunks)
            if first is None:
                raise ApiError(500, "internal_error", "the TTS engine produced no audio")
            second = await self._run(_next_chunk, chunks)
            if second is None:  # one chunk: a cached reply or a non-streaming engine
                self.backend.metrics.observe_stage("tts", time.perf_counter() - started)
                return web.Response(body=first.to_wav_bytes(), content_type="audio/wav",
                                    headers={"X-Sample-Rate": str(first.sample_rate)})
            return await self._stream_wav(request, chunks, first, second, started)
        except (ValueError, LookupError) as exc:
            raise ApiError(400, "bad_request", f"{what}: {exc}") from exc
        except TTSUnavailable as exc:
            raise ApiError(503, "unavailable", f"{what}: {exc}") from exc
        finally:
            await self._run(chunks.close)

    async def _stream_wav(self, request: web.Request, chunks: Iterator[Any], first: Any, second: Any,
                          started: float) -> web.StreamResponse:
        rate = first.sample_rate
        response = web.StreamResponse(headers={"Content-Type": "audio/wav", "X-Sample-Rate": str(rate)})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(streaming_wav_header(rate))
        chunk = first
        try:
            while chunk is not None:
                if chunk.sample_rate != rate:
                    chunk = chunk.resampled(rate)
                await response.write(float_to_pcm16(chunk.samples))
                chunk, second = second, None
                if chunk is None:
                    chunk = await self._run(_next_chunk, chunks)
        except ConnectionResetError:
            log.info("client went away during a streamed reply")
            return response
        self.backend.metrics.observe_stage("tts", time.perf_counter() - started)
        await response.write_eof()
        return response

    async def intent(self, request: web.Request) -> web.Response:
        what = "POST /v1/intent"
        data = await self._json(request, what)
        text = self._text(data, what)
        run = data.get("run", False)
        if not isinstance(run, bool):
            raise ApiError(422, "unprocessable", f"{what}: `run` must be true or false")
        confirmed = data.get("confirmed", False)
        if not isinstance(confirmed, bool):
            raise ApiError(422, "unprocessable", f"{what}: `confirmed` must be true or false")
        metrics = self.backend.metrics
        commands = self.backend.commands()
        started = time.perf_counter()
        match = await self._run(commands.match, text)
        metrics.observe_stage("match", time.perf_counter() - started)
        result: dict[str, Any] = {"text": text, "intent": None, "slots": {}, "exact": None}
        if match is None:
            metrics.no_match.inc(source="api")
            return web.json_response(result)
        metrics.intents.inc(intent=match.intent, source="api")
        result.update(intent=match.intent, slots=_jsonable(match.slots), exact=match.exact)
        if run:
            if self.backend.dispatcher is None:
                raise ApiError(503, "unavailable", "no handler dispatcher in this service")
            question = self.backend.dispatcher.confirmation(match)
            if question is not None and not confirmed:
                # A risky intent (`confirm:` in commands.yaml): the caller asks its user, then
                # sends the same text again with confirmed=true.
                result["needs_confirmation"] = {"question": question}
                return web.json_response(result)
            started = time.perf_counter()
            outcome = await self._run(self.backend.dispatcher.handle, match)
            metrics.observe_stage("handler", time.perf_counter() - started)
            if not outcome.ok:
                metrics.handler_failures.inc(intent=match.intent)
            result["outcome"] = {"ok": outcome.ok, "reply": outcome.reply, "error": outcome.error}
        return web.json_response(result)

    async def timers(self, request: web.Request) -> web.Response:
        if self.backend.dispatcher is None:
            raise ApiError(503, "unavailable", "no handler dispatcher (and so no timers) in this service")
        return web.json_response({"timers": timers_view(self.backend.dispatcher.timers.pending())})

    async def voices(self, request: web.Request) -> web.Response:
        return web.json_response(await self._run(self.backend.voices))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(self.backend.health())

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.backend.metrics.render(), headers={"Content-Type": ServiceMetrics.CONTENT_TYPE})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.settings))


def timers_view(pending: list[tuple[Any, float]]) -> list[dict[str, Any]]:
    """Pending timers as /v1/timers lists them, soonest first."""
    return [{"id": timer.id, "label": timer.label, "intent": timer.intent or None,
             "due": datetime.fromtimestamp(timer.due_wall, timezone.utc).isoformat(timespec="seconds"),
             "seconds_left": round(left, 1), "seconds": timer.seconds}
            for timer, left in pending]


def _flag(value: str | None, name: str, what: str) -> bool:
    """A boolean query parameter: absent, true/false, 1/0, yes/no; anything else is a 400."""
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no", ""):
        return False
    raise ApiError(400, "bad_request", f"{what}: `{name}` must be true or false, got {value[:40]!r}")


def _next_chunk(chunks: Iterator[Any]) -> Any:
    return next(chunks, None)


def _decode_wav(body: bytes, max_seconds: float) -> np.ndarray:
    """WAV bytes (any rate, channels, PCM/float layout) -> float32 16 kHz mono.

    The rate and the length are checked before resampling: a header claiming 1 Hz would make a
    few kilobytes into hundreds of megabytes of 16 kHz samples (a 10 MB body into hundreds of GB).
    """
    what = "POST /v1/transcribe"
    try:
        samples, rate = decode_wav(body, "request body")
    except AudioFormatError as exc:
        raise ApiError(400, "bad_request", f"{what}: {exc}") from exc
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ApiError(400, "bad_request", f"{what}: sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    seconds = len(samples) / rate
    if seconds > max_seconds:
        raise ApiError(413, "payload_too_large", f"{what}: {seconds:.1f} s of audio; the cap is {max_seconds:.0f} s")
    if rate != SAMPLE_RATE:
        samples = resample(samples, rate, SAMPLE_RATE)
    return np.ascontiguousarray(samples, dtype=np.float32)


def streaming_wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length (sizes 0xFFFFFFFF, as streaming
    writers such as ffmpeg and sox do; readers take the data up to the end)."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", unknown) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + \
        b"data" + struct.pack("<I", unknown)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


class ApiServer:
    """Runs the app on its own event loop in a background thread (the main thread supervises)."""

    def __init__(self, app: web.Application, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._thread = threading.Thread(target=self._loop.run_forever, name="api", daemon=True)

    def start(self) -> None:
        """Bind and serve; raises OSError (port in use, bad address) in the caller's thread."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        try:
            future.result(timeout=30)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            raise
        log.info("HTTP API on http://%s:%d (OpenAPI at /openapi.json)", _bracket(self.settings.host), self.port)

    async def _start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.host, self.settings.port).start()
        addresses = self._runner.addresses  # the real port when port 0 asked for any free one
        self.port = int(addresses[0][1]) if addresses else self.settings.port

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            future.result(timeout=10)
        except Exception:  # noqa: BLE001 - shutting down: log and go on
            log.exception("stopping the HTTP API")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def responsive(self, timeout: float = 5.0) -> bool:
        """True when the API's event loop runs a no-op within `timeout` (for the watchdog)."""
        if not self._thread.is_alive() or self._loop.is_closed():
            return False
        future = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop)
        try:
            future.result(timeout=timeout)
        except Exception:  # noqa: BLE001 - a timeout or a closed loop both mean "not responding"
            future.cancel()
            return False
        return True

    @property
    def url(self) -> str:
        return f"http://{_bracket(self.settings.host)}:{self.port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
