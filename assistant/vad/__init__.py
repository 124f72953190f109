"""Voice activity detection and end-of-speech segmentation.

`Segmenter` is the pure state machine (booleans in, events out); `VadSegmenter` runs
webrtcvad on 30 ms frames, drives the Segmenter and cuts `SpeechSegment`s with pre-roll.
"""

from assistant.vad.detector import SpeechPause, SpeechSegment, VadSegmenter, segment_key
from assistant.vad.segmenter import Event, Segmenter, SpeechEnded, SpeechPaused, SpeechStarted
from assistant.vad.settings import SegmenterSettings

__all__ = [
    "Event", "Segmenter", "SegmenterSettings", "SpeechEnded", "SpeechPause", "SpeechPaused", "SpeechSegment",
    "SpeechStarted", "VadSegmenter", "segment_key",
]
