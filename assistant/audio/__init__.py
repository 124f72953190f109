"""Audio sources: everything the listener hears arrives as 30 ms frames of 16 kHz mono s16le.

One frame format for every source (microphone, WAV file, raw stdin) means the segmenter and the
loop never care where audio comes from, and webrtcvad (which accepts only 10/20/30 ms frames of
16-bit mono PCM) gets exactly what it needs. `sounddevice` (PortAudio) is imported only when a
microphone is opened, so file and stdin input work on machines without PortAudio.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from assistant.audio.format import (
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioFormatError,
    float_to_pcm16,
    pcm16_to_float,
)
from assistant.audio.resample import StreamResampler, resample
from assistant.audio.wav import decode_pcm, decode_wav, read_wav, write_wav


@runtime_checkable
class AudioSource(Protocol):
    """Where frames come from.

    `realtime` is True for a live device: the consumer must keep draining `frames()` (capture
    never blocks on recognition) or audio is lost. `state` is "open", "reopening" (a live device
    went away and is being reopened) or "closed", for health reporting.
    """

    realtime: bool
    state: str

    def frames(self) -> Iterator[bytes]:
        """Successive FRAME_BYTES-long frames (s16le mono 16 kHz); ends at the end of input."""
        ...

    def close(self) -> None:
        """Release the input; a running `frames()` ends soon after."""
        ...


from assistant.audio.sources import StdinSource, WavFileSource  # noqa: E402
from assistant.audio.microphone import AudioDeviceError, MicrophoneSource, list_input_devices  # noqa: E402


def open_source(input: str | None = None, device: str | int | None = None) -> AudioSource:
    """The source a command line asks for: `input` None = the microphone `device` (None: the
    default one), "-" = raw s16le 16 kHz mono on stdin, anything else = a WAV file. Raises
    AudioFormatError (bad file) or AudioDeviceError (no such microphone)."""
    if input is None:
        return MicrophoneSource(device)
    if input == "-":
        return StdinSource()
    return WavFileSource(input)

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioDeviceError",
    "AudioFormatError",
    "AudioSource",
    "MicrophoneSource",
    "StdinSource",
    "StreamResampler",
    "WavFileSource",
    "decode_pcm",
    "decode_wav",
    "float_to_pcm16",
    "list_input_devices",
    "open_source",
    "pcm16_to_float",
    "read_wav",
    "resample",
    "write_wav",
]
