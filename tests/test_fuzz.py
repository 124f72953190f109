"""Property-based fuzzing of the parsers and servers that read untrusted input.

Targets (see docs/reliability.md for the inputs tried and the failures found):
- the commands loader and the sentence/reply template parsers: any text, any YAML structure ->
  a loaded command set or a CommandsError located as FILE:LINE:COL, nothing else, within 2 s;
- the matcher: any Unicode transcript -> a match or None, within 2 s;
- WAV and raw PCM input: any bytes -> samples or a clear AudioFormatError; over HTTP, any body
  and headers -> a 2xx/4xx answer (never 5xx) and the API keeps answering;
- reply and argument templates with hostile slot values: values are inserted verbatim (never
  re-parsed as template syntax), and a `run:` handler's arguments never pass through a shell.

The 2 s bound is hypothesis' deadline (tests/conftest.py); `--hypothesis-profile=long` runs
thousands of inputs per target.
"""

from __future__ import annotations

import io
import json
import math
import socket
import struct
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import assume, example, given
from hypothesis import strategies as st

from assistant.audio import FRAME_BYTES, AudioFormatError, decode_wav
from assistant.audio.sources import StdinSource
from assistant.handlers import Dispatcher
from assistant.handlers.templates import Field, TemplateError, parse_template
from assistant.intents import CommandsError, IntentMatch, load_commands
from assistant.service.api import ApiBackend, ApiError, ApiServer, ApiSettings, _decode_wav, build_app
from assistant.service.health import ServiceState
from assistant.service.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = Path(tempfile.mkdtemp(prefix="assistant-fuzz-"))

# -- strategies ------------------------------------------------------------------------------------

KEYS = ["language", "intents", "lists", "expansion_rules", "skip_words", "sentences", "data", "slots", "reply",
        "handler", "values", "range", "wildcard", "in", "out", "from", "to", "step", "builtin", "run", "python",
        "http", "timeout", "announce", "error_reply", "requires_context", "excludes_context", "metadata",
        "response", "settings", "url", "method", "json", "headers", "context"]
GRAMMAR = st.sampled_from(list("()[]{}<>|;:,.'\"% \t") + ["{room}", "<timer>", "[the]", "(a|b)", "{x:y}", "{{", "}}",
                                                         "minute[s]", "\\", "#", "&", "*", "!", "\n", "\u00e9", "\u200b"])
SENTENCE = st.lists(st.one_of(GRAMMAR, st.text(min_size=1, max_size=6)), max_size=12).map("".join)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), SENTENCE,
                   st.sampled_from(KEYS + ["en", "timer_set", "time", "examples.shopping:add_item", "true", "~", "*a"]))
KEY = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(-3, 3), st.booleans())
STRUCTURE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(KEY, inner, max_size=5)), max_leaves=25)
INTENT = st.fixed_dictionaries(
    {"sentences": st.lists(SENTENCE, min_size=1, max_size=3)},
    optional={"reply": SENTENCE, "slots": st.dictionaries(st.text(max_size=5), SCALAR, max_size=2),
              "handler": st.one_of(STRUCTURE, st.fixed_dictionaries({"builtin": st.sampled_from(
                  ["time", "timer_set", "help", "nope", ""])}, optional={"announce": SENTENCE}))})
LIST = st.one_of(st.fixed_dictionaries({"values": st.lists(st.one_of(SENTENCE, st.fixed_dictionaries(
                     {"in": SENTENCE}, optional={"out": SCALAR})), max_size=4)}),
                 st.fixed_dictionaries({"range": st.fixed_dictionaries({"from": SCALAR, "to": SCALAR})}),
                 st.fixed_dictionaries({"wildcard": SCALAR}), STRUCTURE)
DOCUMENT = st.fixed_dictionaries(
    {"language": st.one_of(st.just("en"), SCALAR),
     "intents": st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(INTENT, STRUCTURE), max_size=3)},
    optional={"lists": st.dictionaries(st.sampled_from(["room", "x", "item", "minutes"]), LIST, max_size=3),
              "expansion_rules": st.dictionaries(st.sampled_from(["timer", "the_lights", "r"]), SENTENCE, max_size=2)})


def _commands_file(text: str) -> Path:
    path = SCRATCH / "commands.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _load_located(text: str) -> None:
    """The property: a command set, or a CommandsError that starts with FILE:LINE:COL."""
    path = _commands_file(text)
    try:
        commands = load_commands(path)
    except CommandsError as exc:
        message = str(exc)
        assert message.startswith(f"{path}:"), message
        line, column = message[len(str(path)) + 1 :].split(":", 2)[:2]
        assert line.isdigit() and column.isdigit() and int(line) >= 1 and int(column) >= 1, message
        return
    assert isinstance(commands.intents, dict)


# -- commands loader and template parsers --------------------------------------------------------


@given(st.text(max_size=400))
@example("intents:\n  X:\n    sentences: ['a {b']\n")
@example("\ufeffintents: [")
@example("intents:\n  X:\n    sentences: [x]\n    reply: '{'\n")
def test_commands_loader_any_text(text: str) -> None:
    _load_located(text)


@given(STRUCTURE)
def test_commands_loader_any_yaml_structure(document: Any) -> None:
    _load_located(yaml.safe_dump(document, allow_unicode=True))


@given(DOCUMENT)
@example({"language": "en", "intents": {"X": {"sentences": ["{n}"]}}, "lists": {"n": {"range": {"from": 0, "to": 10**9}}}})
@example({"language": "en", "intents": {"X": {"sentences": ["<r>"]}}, "expansion_rules": {"r": "<r>"}})
def test_commands_loader_commands_shaped_documents(document: dict) -> None:
    _load_located(yaml.safe_dump(document, allow_unicode=True))


@given(st.text(max_size=200))
def test_reply_template_parser_any_text(text: str) -> None:
    try:
        template = parse_template(text)
    except TemplateError as exc:
        assert 0 <= exc.offset <= len(text)
        return
    values = {field.name: _nested(field) for field in template.fields}
    expected = "".join(part if isinstance(part, str) else "@" for part in template.parts)
    assert template.render(values) == expected


def _nested(field: Field) -> Any:
    value: Any = "@"
    for key in reversed(field.path[1:]):
        value = {key: value}
    return value


# -- the matcher -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load_commands(ROOT / "commands.yaml")


@given(text=st.text(max_size=300))
@example(text="set a timer for " + "9" * 400 + " minutes")
@example(text="turn on the " + "kitchen " * 60 + "lights")
def test_matcher_any_unicode_transcript(shipped, text: str) -> None:
    match = shipped.match(text)
    assert match is None or match.intent in shipped.intents


@given(words=st.lists(st.one_of(st.sampled_from(sorted({w for w in " ".join(
    ["set a timer for minutes seconds hours and turn on off the kitchen bedroom lights light to percent add",
     "remove from my shopping list what's time is it how much left cancel stop repeat that scene movie",
     "one two five 5 40 100 % half an hour please uh um"]).split()})), st.text(max_size=5)), max_size=25))
def test_matcher_vocabulary_soup(shipped, words: list[str]) -> None:
    match = shipped.match(" ".join(words))
    assert match is None or match.intent in shipped.intents


# -- WAV and PCM input -------------------------------------------------------------------------


def _wav(tag: int, channels: int, rate: int, block_align: int, bits: int, data: bytes, data_size: int | None,
         extra: bytes) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block_align) & 0xFFFFFFFF, block_align, bits) + extra
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


WAV = st.builds(
    _wav,
    tag=st.sampled_from([1, 3, 0xFFFE, 0, 2, 0x55]),
    channels=st.one_of(st.sampled_from([1, 2, 6]), st.integers(0, 0xFFFF)),
    rate=st.one_of(st.sampled_from([8000, 16000, 44100, 48000]), st.integers(0, 0xFFFFFFFF)),
    block_align=st.integers(0, 0xFFFF),
    bits=st.sampled_from([8, 16, 24, 32, 64, 0, 12]),
    data=st.binary(max_size=4096),
    data_size=st.one_of(st.none(), st.sampled_from([0, 1, 0xFFFFFFFF]), st.integers(0, 0xFFFFFFFF)),
    extra=st.one_of(st.just(b""), st.binary(max_size=24)),
)
COHERENT_WAV = st.integers(1, 8).flatmap(lambda channels: st.sampled_from([(1, 8), (1, 16), (1, 24), (1, 32), (3, 32), (3, 64)]).flatmap(
    lambda kind: st.builds(_wav, tag=st.just(kind[0]), channels=st.just(channels),
                           rate=st.one_of(st.sampled_from([1, 7, 8000, 16000, 44100, 384000, 10**9]), st.integers(1, 0xFFFFFFFF)),
                           block_align=st.just(channels * kind[1] // 8), bits=st.just(kind[1]),
                           data=st.binary(min_size=0, max_size=8192), data_size=st.none(), extra=st.just(b""))))


@given(st.one_of(st.binary(max_size=512), WAV, COHERENT_WAV))
def test_wav_decoder_any_bytes(blob: bytes) -> None:
    try:
        samples, rate = decode_wav(blob, "upload")
    except AudioFormatError as exc:
        assert str(exc).startswith("upload: ")
        return
    assert samples.dtype == np.float32 and samples.ndim == 1 and rate >= 1
    assert np.all(np.isfinite(samples))


@given(st.one_of(st.binary(max_size=512), WAV, COHERENT_WAV))
@example(_wav(1, 1, 1, 2, 16, b"\x01\x00" * 4000, None, b""))  # 1 Hz: 4000 s of "audio" in 8 kB
@example(_wav(1, 1, 0xFFFFFFFF, 2, 16, b"\x01\x00" * 4000, None, b""))
def test_api_wav_decoding_is_bounded_and_errors_are_4xx(blob: bytes) -> None:
    """What /v1/transcribe does with a body before Whisper: 16 kHz finite samples of at most the
    cap's length, or an ApiError with a 4xx status; never another exception, never a huge array."""
    settings = ApiSettings()
    try:
        samples = _decode_wav(blob, settings.max_audio_seconds)
    except ApiError as exc:
        assert 400 <= exc.status < 500
        return
    assert samples.dtype == np.float32 and np.all(np.isfinite(samples))
    assert len(samples) <= (settings.max_audio_seconds + 1) * 16000


@given(st.binary(max_size=3 * FRAME_BYTES + 7), st.integers(1, 700))
def test_raw_pcm_input_any_bytes(data: bytes, chunk: int) -> None:
    """`--input -`: any byte stream, read in any chunk sizes, gives whole frames and no error."""

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.rest = data

        def read(self, size: int = -1) -> bytes:
            out, self.rest = self.rest[: min(size, chunk)], self.rest[min(size, chunk) :]
            return out

    frames = list(StdinSource(Trickle()).frames())
    assert all(len(frame) == FRAME_BYTES for frame in frames)
    assert sum(len(f) for f in frames) >= len(data) - 1


# -- the HTTP API --------------------------------------------------------------------------------


class Heard:
    """The API's transcriber for these tests: records what reached it (the property is about
    what the API lets through to the model, so the model itself is not needed)."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def __call__(self, samples: np.ndarray, prompt: str | None) -> Any:
        assert samples.dtype == np.float32 and samples.ndim == 1 and np.all(np.isfinite(samples))
        self.calls.append(samples)
        return SimpleNamespace(text="ok", segments=[], duration_ms=1.0)


@pytest.fixture(scope="module")
def server():
    state = ServiceState()
    state.phase = "ready"
    commands = load_commands(ROOT / "commands.yaml")
    heard = Heard()
    backend = ApiBackend(commands=lambda: commands, dispatcher=None, speech=None, transcribe=heard,
                         health=state.to_json, voices=lambda: {}, metrics=ServiceMetrics(state.uptime, lambda: 1.0),
                         on_error=state.record_error)
    settings = ApiSettings(port=0, max_audio_bytes=64 * 1024)
    api = ApiServer(build_app(backend, settings), settings)
    api.start()
    yield api, state, heard
    api.stop()


HEADER_NAME = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=12)
HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)
CONTENT_TYPE = st.one_of(st.sampled_from(["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/wav; rate=8000",
                                          "application/json", "text/plain", "", "audio/wav;;;", "AUDIO/WAV"]), HEADER_VALUE)


def _raw_request(port: int, head: bytes, body: bytes, *, cut_short: bool = False) -> int | None:
    """Send bytes as they are (no client library fixing them up); the status, None if the server
    closed the connection without an answer. `cut_short`: the request is incomplete, so end our
    side (EOF) instead of leaving the server waiting for the rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        if cut_short:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    if not data:
        return None
    status_line = data.split(b"\r\n", 1)[0].split()
    assert len(status_line) >= 2 and status_line[0].startswith(b"HTTP/1."), data[:200]
    return int(status_line[1])


@given(body=st.one_of(st.binary(max_size=2048), WAV, COHERENT_WAV), content_type=CONTENT_TYPE,
       length=st.one_of(st.just("exact"), st.just("none"), st.just("chunked"), st.sampled_from(["-1", "abc", "0", "99999999"]),
                        st.integers(0, 5000).map(str)),
       headers=st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=4),
       query=st.sampled_from(["", "?prompt=hi", "?prompt=" + "x" * 3000, "?%ff%fe=\x01", "?prompt=%00"]))
@example(body=b"", content_type="audio/wav", length="1", headers=[], query="")  # found by the long profile
def test_api_transcribe_any_bytes_and_headers(server, body: bytes, content_type: str, length: str,
                                              headers: list[tuple[str, str]], query: str) -> None:
    api, state, _ = server
    lines = [f"POST /v1/transcribe{query} HTTP/1.1", f"Host: 127.0.0.1:{api.port}", "Connection: close"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    payload = body
    if length == "exact":
        lines.append(f"Content-Length: {len(body)}")
    elif length == "chunked":
        lines.append("Transfer-Encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    elif length != "none":
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    errors_before = state.errors
    cut_short = length.isdigit() and int(length) > len(body)
    status = _raw_request(api.port, head, payload, cut_short=cut_short)
    if status is None:  # closed without an answer: only acceptable when the body was cut short
        assert cut_short, (length, len(body))
    else:
        assert status < 500, status
    assert state.errors == errors_before  # nothing the server counts as its own failure
    assert _raw_request(api.port, f"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), b"") == 200


@given(st.binary(max_size=600))
def test_api_any_request_bytes(server, data: bytes) -> None:
    """Whole requests of arbitrary bytes: the HTTP parser answers 4xx or closes; never 5xx."""
    api, state, _ = server
    for head in (data, b"POST /v1/intent HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: " +
                 str(len(data)).encode() + b"\r\n\r\n" + data):
        status = _raw_request(api.port, head, b"", cut_short=True)  # may be incomplete: end it
        assert status is None or status < 500, status
    assert _raw_request(api.port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", b"") == 200


# -- hostile slot values in replies and run: arguments ----------------------------------------------

HOSTILE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["$(touch {canary})", "`touch {canary}`", "; touch {canary}", "| touch {canary}", "&& touch {canary}",
                     "{room}", "{{", "}}", "{result.__class__}", "%s%s%n", "'\"", "\\", "\n; touch {canary}\n", "-rf",
                     "--help", "$HOME", "${IFS}", "*", "~", "\x00", "\u202e\u0000evil"]),
)


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("echo")
    (folder / "commands.yaml").write_text(
        "language: en\n"
        "intents:\n"
        "  Echo:\n"
        "    sentences: ['echo {a} and {b}']\n"
        "    handler: {run: ['printf', '%s|%s', '{a}', '{b}'], timeout: 5}\n"
        "    reply: '{output}'\n"
        "  Say:\n"
        "    sentences: ['say {a} and {b}']\n"
        "    reply: 'A={a}; B={b}; {{literal}}'\n"
        "lists:\n"
        "  a: {wildcard: true}\n"
        "  b: {wildcard: true}\n")
    dispatcher = Dispatcher(load_commands(folder / "commands.yaml"), timer_thread=False)
    yield dispatcher, folder
    dispatcher.close()


@given(a=HOSTILE, b=HOSTILE)
def test_reply_templates_insert_hostile_values_verbatim(echo, a: str, b: str) -> None:
    dispatcher, folder = echo
    outcome = dispatcher.handle(IntentMatch("Say", {"a": a, "b": b}, "say"))
    assert outcome.ok and outcome.reply == f"A={a}; B={b}; {{literal}}"


@given(a=HOSTILE, b=HOSTILE)
def test_run_arguments_with_hostile_values_never_reach_a_shell(echo, a: str, b: str) -> None:
    dispatcher, folder = echo
    canary = folder / "canary"
    a, b = a.replace("{canary}", str(canary)), b.replace("{canary}", str(canary))
    outcome = dispatcher.handle(IntentMatch("Echo", {"a": a, "b": b}, "echo"))
    assert not canary.exists()
    if "\x00" in a + b:  # no program argument can hold a NUL byte: a clear failure, not a crash
        assert not outcome.ok and "NUL" in outcome.error
        return
    assert outcome.ok, outcome.error
    assert outcome.reply == (f"{a}|{b}".strip() or None)  # printf got each value as one argument, untouched


# -- regressions: failures the fuzzing found, kept as plain examples --------------------------------


def test_regression_control_character_in_commands_file_is_a_located_error() -> None:
    """Found by test_commands_loader_any_text: '\\x1f' raised yaml.reader.ReaderError."""
    path = _commands_file("language: en\nintents:\n  X:\n    sentences: [hi\x1f]\n")
    with pytest.raises(CommandsError) as caught:
        load_commands(path)
    assert str(caught.value).startswith(f"{path}:4:19: character U+001F is not allowed in YAML")


def test_regression_a_huge_range_is_refused_at_load_not_spelled_out() -> None:
    """Found by an explicit example of test_commands_loader_commands_shaped_documents: a range of
    0..10**9 kept the loader spelling numbers for minutes (past the 2 s bound)."""
    path = _commands_file("language: en\nintents:\n  X:\n    sentences: ['{n}']\nlists:\n  n:\n    range: {from: 0, to: 1000000000}\n")
    with pytest.raises(CommandsError) as caught:
        load_commands(path)
    assert str(caught.value).startswith(f"{path}:7:22: range of list 'n' has 1000000001 numbers; at most 10000")
    _commands_file("language: en\nintents:\n  X:\n    sentences: ['{n}']\nlists:\n  n:\n    range: {from: 1000, to: 10000, step: 100}\n")
    load_commands(SCRATCH / "commands.yaml")  # Home Assistant's largest range loads


def test_regression_a_nul_byte_in_a_run_argument_is_a_handler_failure(echo) -> None:
    """Found by test_run_arguments_with_hostile_values_never_reach_a_shell: b='\\x00' made
    Popen raise ValueError, logged as a handler crash with a traceback."""
    dispatcher, _ = echo
    outcome = dispatcher.handle(IntentMatch("Echo", {"a": "", "b": "\x00"}, "echo"))
    assert not outcome.ok and outcome.error.startswith("argument 3 of ") and outcome.error.endswith("contains a NUL byte (from a slot value?)")


def test_regression_a_wav_header_claiming_1_hz_is_refused_before_resampling() -> None:
    """Found by an explicit example of test_api_wav_decoding_is_bounded_and_errors_are_4xx:
    8 kB of "1 Hz" audio was resampled to 64 million samples (244 MiB); a 10 MB body would have
    asked for ~300 GB."""
    blob = _wav(1, 1, 1, 2, 16, b"\x01\x00" * 4000, None, b"")
    with pytest.raises(ApiError) as caught:
        _decode_wav(blob, 30.0)
    assert caught.value.status == 400 and "sample rate 1 Hz is outside 4000-384000 Hz" in caught.value.message
    long = _wav(1, 1, 8000, 2, 16, b"\x01\x00" * 8000 * 31, None, b"")
    with pytest.raises(ApiError) as caught:
        _decode_wav(long, 30.0)
    assert caught.value.status == 413
