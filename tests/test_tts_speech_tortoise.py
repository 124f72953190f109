"""Speech with a real (tiny, random-weight) Tortoise engine first in the chain: Tortoise speaks
when its weights are there, its settings are part of the reply-cache key, streamed chunks are
cached as one reply, and a self-check retry renders with a new seed."""

import numpy as np
import pytest

from assistant.tts.cache import ReplyCache
from assistant.tts.speech import Speech, SpeechSettings, settings_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tortoise(tmp_path_factory):
    from assistant.tts.tortoise import TortoiseEngine, TortoiseSettings
    from assistant.tts.tortoise.latents import LatentCache
    from assistant.tts.tortoise.tiny import write_random_models

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASSISTANT_HOME", str(home))
        models = write_random_models(home / "models")
        settings = TortoiseSettings(max_mel_tokens=40, first_chunk_tokens=8, stream_chunk_tokens=12)
        yield TortoiseEngine(settings, models_dir=models, device="cpu", latent_cache=LatentCache(home / "latents"))


class Counting:
    def __init__(self, engine) -> None:
        self.engine, self.name, self.settings = engine, engine.name, engine.settings
        self.calls: list[dict] = []

    def synthesize(self, text, voice=None, **overrides):
        self.calls.append(overrides)
        return self.engine.synthesize(text, voice, **overrides)

    def stream(self, text, voice=None):
        self.calls.append({})
        yield from self.engine.stream(text, voice)


def test_tortoise_speaks_first_when_its_weights_are_there(tortoise, tmp_path) -> None:
    counting = Counting(tortoise)
    speech = Speech(factories={"tortoise": lambda: counting}, cache=ReplyCache(tmp_path))
    audio = speech.synthesize("Hello there.")
    assert speech.stats.last_engine == "tortoise" and audio.sample_rate == 24000 and len(audio) > 0
    again = speech.synthesize("Hello there.")
    assert len(counting.calls) == 1
    np.testing.assert_allclose(again.samples, audio.samples, atol=0.5 / 32768 + 1e-9)
    assert settings_key(counting) == tortoise.settings.cache_key()


def test_streamed_tortoise_chunks_are_cached_as_one_reply(tortoise, tmp_path) -> None:
    counting = Counting(tortoise)
    speech = Speech(factories={"tortoise": lambda: counting}, cache=ReplyCache(tmp_path))
    chunks = list(speech.stream("The kitchen light is on."))
    assert len(chunks) >= 2
    cached = list(speech.stream("The kitchen light is on."))
    assert len(cached) == 1 and len(counting.calls) == 1
    assert len(cached[0]) == sum(len(chunk) for chunk in chunks)


def test_self_check_retries_with_a_new_seed(tortoise, tmp_path) -> None:
    counting = Counting(tortoise)
    heard = iter(["no", "hello there"])
    speech = Speech(SpeechSettings(check_live=True), factories={"tortoise": lambda: counting},
                    cache=ReplyCache(tmp_path), transcriber=lambda samples: next(heard))
    speech.synthesize("Hello there.")
    seed = tortoise.settings.seed
    assert counting.calls == [{}, {"seed": seed + 1}]


def test_voices_latents_cli_computes_once_then_reads_the_cache(tmp_path, monkeypatch, capsys) -> None:
    from assistant.cli import main
    from assistant.tts.tortoise.tiny import write_random_models

    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))
    write_random_models(tmp_path / "data" / "models" / "tortoise")
    assert main(["voices", "latents", "dotrice"]) == 0
    first = capsys.readouterr()
    assert "dotrice: autoregressive latent computed" in first.out
    assert "] " in first.err and "/" in first.err  # the progress bar
    assert main(["voices", "latents", "dotrice"]) == 0
    assert "dotrice: autoregressive latent cached" in capsys.readouterr().out


def test_the_default_tortoise_factory_honours_preset_and_device(tmp_path, monkeypatch) -> None:
    from assistant.tts.speech import default_factories
    from assistant.tts.tortoise.tiny import write_random_models

    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))
    write_random_models(tmp_path / "data" / "models" / "tortoise")
    engine = default_factories(SpeechSettings(tortoise_preset="standard", device="cpu"))["tortoise"]()
    assert engine.settings.preset == "standard" and engine.settings.candidates == 256
    assert engine.device == "cpu"
