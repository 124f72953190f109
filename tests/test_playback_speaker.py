"""Speaker: say() returns at once, is_speaking covers rendering and playing, stop() cancels even a
reply whose next chunk is still being generated (so the loop can listen again at once)."""

import threading
from collections.abc import Iterator

import numpy as np

from assistant.playback import FileSink
from assistant.audio.clip import Audio
from assistant.tts.cache import ReplyCache
from assistant.playback.speaker import Speaker
from assistant.tts.speech import Speech, SpeechSettings


class SlowStream:
    """A streaming engine whose second chunk waits for the test (like a Tortoise chunk in progress)."""

    name = "espeak"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.first_sent = threading.Event()

    def synthesize(self, text: str, voice: str | None = None) -> Audio:
        return Audio.concat(list(self.stream(text, voice)))

    def stream(self, text: str, voice: str | None = None) -> Iterator[Audio]:
        yield Audio(np.full(800, 0.1, dtype=np.float32), 8000)
        self.first_sent.set()
        self.release.wait(10)
        yield Audio(np.full(800, 0.2, dtype=np.float32), 8000)


def make(tmp_path, engine) -> tuple[Speaker, FileSink]:
    speech = Speech(SpeechSettings(engine="espeak", fallback=("espeak",)), factories={"espeak": lambda: engine},
                    cache=ReplyCache(tmp_path / "replies"))
    sink = FileSink(tmp_path / "out.wav")
    return Speaker(speech, sink), sink


def test_say_streams_every_chunk_to_the_player(tmp_path) -> None:
    engine = SlowStream()
    speaker, sink = make(tmp_path, engine)
    speaker.say("hello there")
    assert engine.first_sent.wait(5)
    assert speaker.is_speaking  # the second chunk is still being made
    engine.release.set()
    assert speaker.wait(5)
    assert not speaker.is_speaking
    assert len(Audio.from_wav_bytes(sink.path.read_bytes())) == 1600
    speaker.close()


def test_stop_cancels_a_reply_still_being_generated(tmp_path) -> None:
    engine = SlowStream()
    speaker, sink = make(tmp_path, engine)
    speaker.say("hello there")
    speaker.say("and another reply")
    assert engine.first_sent.wait(5)
    speaker.stop()
    assert not speaker.is_speaking, "cancelled replies no longer mute the listener"
    engine.release.set()
    assert speaker.wait(5)
    written = Audio.from_wav_bytes(sink.path.read_bytes())
    assert len(written) == 800, "neither the rest of the reply nor the queued one was played"
    speaker.close()


def test_a_failing_reply_does_not_silence_the_next(tmp_path, caplog) -> None:
    class Flaky(SlowStream):
        def stream(self, text, voice=None):
            if "fail" in text:
                raise ValueError("unknown voice")
            yield Audio(np.full(400, 0.1, dtype=np.float32), 8000)

    speaker, sink = make(tmp_path, Flaky())
    speaker.say("please fail")
    speaker.say("works")
    assert speaker.wait(5)
    assert "could not speak 'please fail'" in caplog.text
    assert len(Audio.from_wav_bytes(sink.path.read_bytes())) == 400
    speaker.close()
