"""Is this microphone frame the assistant's own reply, or a person talking over it?

Barge-in keeps the listener open while a reply plays, so the reply leaking back into the
microphone must not count as speech. Where the audio server cancels echo (PulseAudio/PipeWire
`module-echo-cancel`, see `assistant doctor`) most of it is gone already; this check runs in every
case, against what the player says it is playing (`assistant.playback.reference.PlayedLevels`).

Measured on a simulated room (bench/bargein.py, "gate" table: the committed Piper chatter as
the reply, convolved with exponential-decay room responses of RT60 0.05-0.6 s, "stop" spoken
over it at 0 and -6 dB against the echo): a level ratio (microphone RMS against the loudest
reply block of the last `window_seconds`, scaled by the room's echo gain) let 0.2-4.5% of the
echo's speech frames through, scattered (a command needs 0.3 s of consecutive speech to start),
and caught "stop" in 67-100% of placements; a normalised cross-correlation test let 23-54%
through (a reverberant echo does not correlate with a 30 ms frame of the source); recognising
only while the reply is quiet never heard a "stop" spoken over speech. So: the level ratio.

That alone missed "stop" over a reply in the virtual room (0 of 6; docs/bargein.md): the frames
of the word that the level check took for echo were zeroed ("stop" lost its "st" and tiny.en
heard "What's that?"). So the reply's echo is now first subtracted (`EchoCanceller`, an adaptive
filter on the samples played), and the level check judges what is left: in the virtual room the
residual echo is ~17 dB below the raw echo, so the person stands out of far less, and the word
reaches Whisper whole.

The room's echo gain (how loud the reply comes back, relative to what is played) is learned
while replies play: the median microphone/reference ratio over the last frames in which the
reply was loud. A person talking now and then barely moves a median; until enough frames are
seen, a cautious prior is used.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from assistant.audio.format import FRAME_SAMPLES, SAMPLE_RATE
from assistant.playback.reference import PlayedLevels


@dataclass(frozen=True)
class EchoSettings:
    """How the echo check tells the reply's own sound from a person talking over it."""

    margin: float = 2.5
    """A frame is the person's when it is this many times louder (RMS; 2.5 = +8 dB) than the echo
    the reply would make: below, it is taken for echo. Lower hears quieter speakers and lets
    more echo through (bench/bargein.py)."""
    window_seconds: float = 0.3
    """How far back the reply is searched for the block that makes the echo: the output
    latency's uncertainty plus the room's reverberation."""
    quiet_dbfs: float = -50.0
    """Reply blocks quieter than this make no echo worth checking: the microphone is believed."""
    prior_gain: float = 1.0
    """Echo gain assumed until the room has been measured (1.0: the echo is as loud as the reply
    played, cautious for a speaker next to the microphone)."""
    learn_frames: int = 30
    """Loud reply frames needed before the measured gain replaces the prior (~1 s of reply)."""
    history_frames: int = 300
    """Loud reply frames the median gain is taken over (~9 s of reply)."""
    cancel: bool = True
    """Subtract the reply's echo (`EchoCanceller`) before the level check and before Whisper."""
    partitions: int = 4
    """Length of the canceller's filter in 30 ms frames (4: 120 ms of the room's response;
    8 converged slower on the virtual room, 2 as well)."""
    step: float = 0.5
    """The canceller's normalised step size (0-2; 0.3-0.6 measured alike)."""
    lead_seconds: float = 0.02
    """The filter starts this long before the located delay (the direct path's smear)."""
    search_seconds: float = 0.4
    """How far either side of the block stamps the echo's delay is searched."""
    locate_seconds: float = 1.0
    """Microphone audio the delay is located on (retried every half of it until found)."""
    converged_db: float = 6.0
    """The canceller's residual counts (its own learnt gain, and what Whisper hears) once echo
    frames come out this much quieter; before, the frame is judged as if uncancelled."""
    lock_correlation: float = 0.4
    """Normalised correlation the delay needs to be believed (the virtual room: ~0.9 on echo
    alone; a person talking over it lowers it, a wrong delay would cancel nothing)."""

    def __post_init__(self) -> None:
        if not self.margin > 0 or not self.window_seconds >= 0 or not self.prior_gain > 0:
            raise ValueError("margin and prior_gain must be positive, window_seconds not negative")
        if self.partitions < 1 or not 0 < self.step < 2 or not 0 < self.lock_correlation <= 1:
            raise ValueError("need partitions >= 1, 0 < step < 2, 0 < lock_correlation <= 1")
        if min(self.lead_seconds, self.search_seconds) < 0 or self.locate_seconds <= 0:
            raise ValueError("lead_seconds and search_seconds must not be negative, locate_seconds positive")
        if not 1 <= self.learn_frames <= self.history_frames:
            raise ValueError(f"need 1 <= learn_frames ({self.learn_frames}) <= history_frames ({self.history_frames})")


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


class EchoGate:
    """Frame by frame: echo (ignore it) or the person (let the VAD decide), judged on what is
    left after the canceller (when on). The room's gain is learnt apart for cancelled and
    uncancelled frames (before a run is located the raw echo is ~17 dB louder)."""

    def __init__(self, played: PlayedLevels, settings: EchoSettings = EchoSettings()) -> None:
        self.played = played
        self.settings = settings
        self.canceller = EchoCanceller(played, settings) if settings.cancel else None
        self._quiet = 10 ** (settings.quiet_dbfs / 20)
        self._ratios = {cancelled: deque(maxlen=settings.history_frames) for cancelled in (False, True)}
        self.frames = 0
        """Frames checked."""
        self.echo_frames = 0
        """Frames taken for echo."""

    def gain(self, cancelled: bool = False) -> float:
        """The room's echo gain (of the canceller's residual when `cancelled`): measured once
        enough loud reply has been heard, else the prior."""
        ratios = self._ratios[cancelled]
        if len(ratios) < self.settings.learn_frames:
            return self.settings.prior_gain
        return float(np.median(ratios))

    def process(self, samples: np.ndarray, heard_at: float) -> tuple[np.ndarray, bool]:
        """`samples` (float mono, one frame) reached the microphone just before `heard_at`
        (time.monotonic()): the frame less the echo (once the canceller has converged; else the
        frame as heard), and whether that is echo."""
        self.frames += 1
        canceller = self.canceller
        residual = samples if canceller is None else canceller.cancel(samples, heard_at)
        reference = self.played.peak(heard_at - self.settings.window_seconds - len(samples) / SAMPLE_RATE, heard_at)
        cancelled = canceller is not None and canceller.converged
        echo = self.judge(rms(residual if cancelled else samples), reference, cancelled)
        if echo and canceller is not None:
            canceller.adapt()
        return (residual if cancelled else samples), echo

    def judge(self, level: float, reference: float, cancelled: bool = False) -> bool:
        """The decision for a microphone RMS `level` (after cancelling, when `cancelled`)
        against the loudest recent reply block."""
        if reference < self._quiet:
            return False
        if level > 0 and math.isfinite(level):
            self._ratios[cancelled].append(level / reference)
        echo = level <= self.settings.margin * self.gain(cancelled) * reference
        self.echo_frames += echo
        return echo


class EchoCanceller:
    """Subtracts the reply's echo from the microphone: a partitioned-block frequency-domain NLMS
    adaptive filter (overlap-save, one 30 ms frame per block, gradient-constrained) fed with the
    samples the player played (`PlayedLevels.run_slice`).

    The filter needs the echo's delay: block stamps and microphone arrival times are only good to
    ~0.1 s, so each run of output is first located in the microphone by cross-correlation (last
    `locate_seconds` of microphone against the run's samples, searched `search_seconds` either side
    of where the stamps put it, pre-emphasised); until that has locked, frames pass unchanged. From
    then on the run is indexed by counting microphone samples, which no clock jitter moves. Each
    run is learnt afresh (a new stream has its own latency; ~1 s to converge). It adapts only on frames the caller's level check took for echo (`adapt`), so a person talking
    over the reply does not teach it to cancel them."""

    def __init__(self, played: PlayedLevels, settings: EchoSettings = EchoSettings()) -> None:
        self.played = played
        self.settings = settings
        self.frame = FRAME_SAMPLES
        bins = self.frame + 1
        self._weights = np.zeros((settings.partitions, bins), complex)
        self._spectra = np.zeros((settings.partitions, bins), complex)
        self._power = np.full(bins, 1e-6)
        self._error: np.ndarray | None = None
        self._input = 0.0  # energy of the last frame cancelled
        self._echo_in = self._echo_out = 0.0  # smoothed energies of echo frames before/after
        self._mic: deque[np.ndarray] = deque(maxlen=max(1, round(settings.locate_seconds * SAMPLE_RATE / self.frame)))
        self._heard = 0  # microphone samples seen
        self._run: int | None = None
        self._offset: int | None = None  # run sample index = microphone sample index - offset
        self._tried_at = 0
        self.locks = 0
        """Runs located in the microphone (delay found)."""

    @property
    def locked(self) -> bool:
        """The current run's delay is known: frames are being cancelled."""
        return self._offset is not None

    @property
    def converged(self) -> bool:
        """Locked, and the echo frames learnt from lately come out `converged_db` quieter."""
        return self.locked and self._echo_out < self._echo_in * 10 ** (-self.settings.converged_db / 10)

    def cancel(self, samples: np.ndarray, heard_at: float) -> np.ndarray:
        """One microphone frame (float, FRAME_SAMPLES long) that ended at `heard_at`: the frame
        less the estimated echo (the frame itself while no run is playing or located)."""
        s = self.settings
        samples = np.asarray(samples, dtype=np.float64)
        first = self._heard
        self._heard += len(samples)
        self._mic.append(samples)
        self._error = None
        run = self.played.run_near(heard_at, s.search_seconds + s.window_seconds)
        if run is None or len(samples) != self.frame:
            self._run, self._offset = None, None
            return samples.astype(np.float32)
        if run.number != self._run:
            self._run, self._offset, self._tried_at = run.number, None, 0
            self._echo_in = self._echo_out = 0.0
        if self._offset is None:
            # stamps: microphone sample `first` was heard at heard_at - frame; the run's sample 0 at anchor
            guess = first - round((heard_at - len(samples) / SAMPLE_RATE - run.anchor) * SAMPLE_RATE)
            if self._heard - self._tried_at >= self._mic.maxlen * self.frame // 2 and len(self._mic) == self._mic.maxlen:
                self._tried_at = self._heard
                self._locate(run.number, guess)
            if self._offset is None:
                return samples.astype(np.float32)
        start = first - self._offset + round(s.lead_seconds * SAMPLE_RATE)  # the filter sees lead_seconds ahead
        reference = self.played.run_slice(run.number, start - self.frame, start + self.frame).astype(np.float64)
        spectrum = np.fft.rfft(reference)
        self._spectra = np.roll(self._spectra, 1, axis=0)
        self._spectra[0] = spectrum
        self._power = 0.9 * self._power + 0.1 * np.abs(spectrum) ** 2
        estimate = np.fft.irfft((self._weights * self._spectra).sum(axis=0))[self.frame:]
        error = samples - estimate
        self._error = error
        self._input = float(np.dot(samples, samples))
        return error.astype(np.float32)

    def adapt(self) -> None:
        """Learn from the last frame cancelled (call for frames that were echo only)."""
        if self._error is None:
            return
        frame = self.frame
        self._echo_in = 0.9 * self._echo_in + 0.1 * self._input
        self._echo_out = 0.9 * self._echo_out + 0.1 * float(np.dot(self._error, self._error))
        error = np.fft.rfft(np.concatenate([np.zeros(frame), self._error]))
        gradient = self.settings.step * np.conj(self._spectra) * error / (len(self._spectra) * self._power + 1e-10)
        taps = np.fft.irfft(gradient, axis=1)
        taps[:, frame:] = 0
        self._weights += np.fft.rfft(taps, axis=1)
        self._error = None

    def _locate(self, run: int, guess: int) -> None:
        s = self.settings
        mic = np.concatenate(self._mic)
        mic_start = self._heard - len(mic)
        search = round(s.search_seconds * SAMPLE_RATE)
        # run indexes mic_start - offset for offsets guess - search .. guess + search
        lo = mic_start - guess - search
        reference = self.played.run_slice(run, lo, lo + len(mic) + 2 * search).astype(np.float64)
        mic, reference = np.diff(mic, prepend=0.0), np.diff(reference, prepend=0.0)  # pre-emphasis
        size = 1 << int(np.ceil(np.log2(len(reference) + len(mic))))
        corr = np.fft.irfft(np.fft.rfft(reference, size) * np.conj(np.fft.rfft(mic, size)), size)[: 2 * search + 1]
        energy = np.concatenate([[0.0], np.cumsum(reference ** 2)])
        window = energy[len(mic):len(mic) + 2 * search + 1] - energy[: 2 * search + 1]
        score = corr / (np.sqrt(window * np.sum(mic ** 2)) + 1e-12)
        best = int(np.argmax(score))
        if score[best] < s.lock_correlation:
            return
        offset = mic_start - (lo + best)
        self._weights[:] = 0  # a new stream has its own latency: learn its echo afresh
        self._offset = offset
        self.locks += 1
