"""The Speech facade: fallback chain (Tortoise weights missing), reply cache, pre-rendering,
self-check, streaming. Engines are the real Piper and espeak-ng, wrapped to count calls."""

import logging
import threading
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

from assistant.audio.clip import Audio
from assistant.tts.base import TTSEngine, TTSUnavailable
from assistant.tts.cache import ReplyCache
from assistant.tts.espeak import EspeakEngine
from assistant.tts.piper import PiperEngine
from assistant.tts.speech import Speech, SpeechSettings


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def piper_engine() -> PiperEngine:
    return PiperEngine()


class Counting:
    """Delegates to a real engine and counts the calls (a cache hit must make none)."""

    def __init__(self, engine: TTSEngine) -> None:
        self.engine = engine
        self.name = engine.name
        self.calls: list[tuple[str, str | None]] = []

    def synthesize(self, text: str, voice: str | None = None) -> Audio:
        self.calls.append((text, voice))
        return self.engine.synthesize(text, voice)

    def stream(self, text: str, voice: str | None = None) -> Iterator[Audio]:
        self.calls.append((text, voice))
        yield from self.engine.stream(text, voice)


class Broken:
    """An engine that fails at run time the way a real one can (a crashed subprocess)."""

    name = "tortoise"

    def synthesize(self, text, voice=None):
        raise RuntimeError("decoder crashed")

    def stream(self, text, voice=None):
        raise RuntimeError("decoder crashed")
        yield  # pragma: no cover


def unavailable(reason: str):
    def factory():
        raise TTSUnavailable(reason)

    return factory


@pytest.fixture
def engines(piper_engine):
    return {"piper": Counting(piper_engine), "espeak": Counting(EspeakEngine())}


def make_speech(engines, tmp_path, **settings) -> Speech:
    factories = {"tortoise": unavailable("Tortoise weights missing in /models (run `assistant models fetch tortoise`)")}
    factories.update({name: (lambda e=engine: e) for name, engine in engines.items()})
    return Speech(SpeechSettings(**settings), factories=factories, cache=ReplyCache(tmp_path / "replies"))


def test_missing_tortoise_weights_fall_back_to_piper_and_say_so_once(tmp_path, home, caplog) -> None:
    """The real default engines: no Tortoise weights under ASSISTANT_HOME, so Piper speaks."""
    speech = Speech()
    with caplog.at_level(logging.WARNING, logger="assistant.tts.speech"):
        first = speech.synthesize("The light is on.")
        speech.synthesize("The light is off.")
        list(speech.stream("The timer is set."))
    assert speech.stats.last_engine == "piper" and first.sample_rate == 22050 and first.rms() > 0.02
    warnings = [r.getMessage() for r in caplog.records if "tortoise" in r.getMessage()]
    assert len(warnings) == 1 and "weights missing" in warnings[0] and "models fetch tortoise" in warnings[0]
    assert "tortoise" in speech.unavailable
    assert list((home / "cache" / "replies").glob("*.wav")), "replies are cached under paths.cache_dir()/replies"


def test_chain_order_and_explicit_engine(engines, tmp_path) -> None:
    speech = make_speech(engines, tmp_path)
    assert speech.chain() == ["tortoise", "piper", "espeak"]
    assert speech.chain("espeak") == ["espeak", "tortoise", "piper"]
    speech.synthesize("hello", engine="espeak")
    assert speech.stats.last_engine == "espeak" and len(engines["espeak"].calls) == 1
    assert not engines["piper"].calls
    with pytest.raises(ValueError, match="unknown TTS engine"):
        speech.synthesize("hello", engine="festival")


def test_configured_fallback_chain_is_honoured(engines, tmp_path) -> None:
    speech = make_speech(engines, tmp_path, fallback=("tortoise", "espeak"))
    speech.synthesize("hello")
    assert speech.stats.last_engine == "espeak" and not engines["piper"].calls


def test_voice_goes_to_the_first_engine_only(engines, tmp_path) -> None:
    speech = make_speech(engines, tmp_path, engine="espeak", fallback=("espeak", "piper"))
    speech.synthesize("hello", voice="en-gb")
    assert engines["espeak"].calls == [("hello", "en-gb")]
    speech = make_speech(engines, tmp_path / "2")  # tortoise first, unavailable: piper uses its own voice
    speech.synthesize("hello", voice="emma")
    assert engines["piper"].calls == [("hello", None)]


def test_the_configured_voice_stays_with_the_configured_engine(engines, tmp_path) -> None:
    speech = make_speech(engines, tmp_path, engine="espeak", voice="en-gb")
    speech.synthesize("hello")
    assert engines["espeak"].calls == [("hello", "en-gb")]
    speech.synthesize("hello", engine="piper")  # another engine asked for: its own default voice
    assert engines["piper"].calls == [("hello", None)]


def test_a_failing_engine_falls_back_for_that_reply(engines, tmp_path, caplog) -> None:
    factories = {"tortoise": Broken, "piper": lambda: engines["piper"], "espeak": lambda: engines["espeak"]}
    speech = Speech(factories=factories, cache=ReplyCache(tmp_path))
    with caplog.at_level(logging.ERROR):
        audio = speech.synthesize("hello")
    assert speech.stats.last_engine == "piper" and audio.rms() > 0.02
    assert "decoder crashed" in caplog.text


def test_no_engine_at_all_is_a_clear_error(tmp_path) -> None:
    factories = {name: unavailable(f"{name} is missing") for name in ("tortoise", "piper", "espeak")}
    speech = Speech(factories=factories, cache=ReplyCache(tmp_path))
    with pytest.raises(TTSUnavailable, match="piper is missing"):
        speech.synthesize("hello")
    with pytest.raises(TTSUnavailable):
        list(speech.stream("hello"))


def test_empty_text_is_rejected(engines, tmp_path) -> None:
    with pytest.raises(ValueError, match="nothing to say"):
        make_speech(engines, tmp_path).synthesize("  ")


def test_text_is_normalised_before_synthesis(engines, tmp_path) -> None:
    speech = make_speech(engines, tmp_path)
    speech.synthesize("Timer set for 7:30.")
    assert engines["piper"].calls == [("Timer set for seven thirty.", None)]


def test_cache_hit_returns_the_same_audio_without_synthesis(engines, tmp_path) -> None:
    speech = make_speech(engines, tmp_path)
    first = speech.synthesize("The kitchen light is on.")
    again = speech.synthesize("The kitchen light is on.")
    assert len(engines["piper"].calls) == 1
    assert speech.stats.cache_hits == 1 and speech.stats.synthesized == 1
    assert again.sample_rate == first.sample_rate
    np.testing.assert_allclose(again.samples, first.samples, atol=0.5 / 32768 + 1e-9)
    streamed = list(speech.stream("The kitchen light is on."))
    assert len(streamed) == 1 and len(engines["piper"].calls) == 1
    # A new process (new Speech, same cache folder) hits too.
    fresh = make_speech(engines, tmp_path)
    fresh.synthesize("The kitchen light is on.")
    assert len(engines["piper"].calls) == 1


def test_stream_yields_sentences_and_caches_the_whole_reply(engines, tmp_path) -> None:
    speech = make_speech(engines, tmp_path)
    chunks = list(speech.stream("Hello. The timer is set."))
    assert len(chunks) == 2
    cached = speech.synthesize("Hello. The timer is set.")
    assert len(engines["piper"].calls) == 1
    assert len(cached) == sum(len(chunk) for chunk in chunks)


def test_prerender_covers_the_static_replies(engines, tmp_path) -> None:
    from assistant.intents import load_commands

    commands_file = tmp_path / "commands.yaml"
    commands_file.write_text(textwrap.dedent("""\
        language: en
        intents:
          Hello:
            sentences: ["hello"]
            reply: "Hello there."
          LightOn:
            sentences: ["turn on the {room} light"]
            reply: "The {room} light is on."
          Thanks:
            sentences: ["thanks"]
            reply: "You are welcome."
        lists:
          room:
            values: [kitchen]
        """))
    static = load_commands(commands_file).static_replies()
    assert sorted(static) == ["Hello there.", "You are welcome."]
    speech = make_speech(engines, tmp_path)
    assert speech.prerender(static) is None  # returns at once
    assert speech.wait_prerendered(timeout=60)
    assert speech.stats.prerendered == 2 and len(engines["piper"].calls) == 2
    for reply in static:
        speech.synthesize(reply)
    assert len(engines["piper"].calls) == 2, "pre-rendered replies are cache hits"


def test_prerender_keeps_going_after_a_failure(engines, tmp_path, caplog) -> None:
    speech = make_speech(engines, tmp_path, engine="espeak", voice="no-such-voice", fallback=("espeak",))
    with caplog.at_level(logging.ERROR):
        speech.prerender(["One.", "Two."])
        assert speech.wait_prerendered(timeout=30)
    assert caplog.text.count("pre-rendering") == 2 and speech.stats.prerendered == 0


class Gated:
    """An engine whose renders wait for `go` and note the thread they ran on."""

    name = "piper"

    def __init__(self, engine) -> None:
        self.engine = engine
        self.go = threading.Event()
        self.threads: list[int] = []

    def synthesize(self, text: str, voice: str | None = None) -> Audio:
        assert self.go.wait(30)
        self.threads.append(threading.get_ident())
        return self.engine.synthesize(text, voice)


def test_prerender_batches_queue_on_one_worker_thread(piper_engine, tmp_path) -> None:
    """A reload's batch, queued while the start's is still rendering, is rendered after it on
    the same thread (a thread per batch left each one's malloc arena behind), and
    `wait_prerendered` waits for both."""
    gated = Gated(piper_engine)
    speech = Speech(SpeechSettings(fallback=("piper",)), factories={"piper": lambda: gated},
                    cache=ReplyCache(tmp_path / "replies"))
    speech.prerender(["One."])
    speech.prerender(["Two.", "Three."])
    assert not speech.wait_prerendered(timeout=0.2), "still rendering"
    gated.go.set()
    assert speech.wait_prerendered(timeout=60)
    assert speech.stats.prerendered == 3 and len(set(gated.threads)) == 1
    assert gated.threads[0] != threading.get_ident()
    speech.prerender(["Four."])
    assert speech.wait_prerendered(timeout=60)
    assert speech.stats.prerendered == 4 and len(set(gated.threads)) == 1


class Ears:
    """A deterministic transcriber: mishears the first rendering it gets, then hears `text`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.heard = 0

    def __call__(self, samples: np.ndarray) -> str:
        assert samples.dtype == np.float32
        self.heard += 1
        return "something else entirely" if self.heard == 1 else self.text


def test_prerender_self_checks_and_renders_a_misheard_reply_again(engines, tmp_path) -> None:
    ears = Ears("you are welcome")
    factories = {"tortoise": unavailable("no weights"), "piper": lambda: engines["piper"]}
    speech = Speech(SpeechSettings(fallback=("tortoise", "piper")), factories=factories,
                    cache=ReplyCache(tmp_path), transcriber=ears)
    speech.prerender(["You are welcome."])
    assert speech.wait_prerendered(timeout=60)
    assert ears.heard == 2 and len(engines["piper"].calls) == 2


def test_live_replies_are_not_self_checked_by_default(engines, tmp_path) -> None:
    ears = Ears("goodbye")
    factories = {"tortoise": unavailable("no weights"), "piper": lambda: engines["piper"]}
    speech = Speech(factories=factories, cache=ReplyCache(tmp_path), transcriber=ears)
    speech.synthesize("You are welcome.")
    assert ears.heard == 0 and len(engines["piper"].calls) == 1
    speech.synthesize("Goodbye.", check=True)
    assert ears.heard == 2


def test_settings_reject_unknown_engines() -> None:
    with pytest.raises(ValueError, match="festival"):
        SpeechSettings(fallback=("festival",))
