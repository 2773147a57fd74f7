"""Deterministic synthetic music in any of the 24 keys: the only audio KeyWeb's demo, tests and models use."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ml.keys import ALL_KEYS, Key, Mode

TIMBRES = ("organ", "strings", "piano", "epiano", "bell", "pluck", "pad")
# soundfile (libsndfile 1.2) writes all four; MP3 and OGG are lossy, so their length may differ by a frame.
AUDIO_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}

# Roman numerals count scale degrees of the key's own scale (natural minor for minor keys), so in a minor
# key "III", "VI", "VII" are the flat degrees and "V" is the harmonic-minor dominant with the leading tone.
# Progressions that state the key plainly: they open on the tonic and reach it through its dominant.
PROGRESSIONS = {
    Mode.MAJOR: (
        "I-IV-V-I",
        "I-vi-IV-V",
        "I-vi-ii-V",
        "ii7-V7-Imaj7-Imaj7",
        "I-V-vi-IV",
        "I-IV-I-V",
        "I-iii-IV-V",
        "I-IV-ii-V",
    ),
    Mode.MINOR: (
        "i-iv-V-i",
        "i-VI-III-VII",
        "i-iv-v-i",
        "i-VII-VI-V",
        "i-ii°-V7-i",
        "i-VI-iv-V",
        "i-III-iv-V",
        "i-iv-i-V7",
    ),
}
# Progressions that dwell on the relative key or the dominant, or borrow from the parallel mode: the
# material on which key detectors make their classic fifth / relative / parallel errors.
AMBIGUOUS_PROGRESSIONS = {
    Mode.MAJOR: ("vi-IV-I-V", "vi-iii-IV-I", "V-IV-I-V", "I-II-V-V", "I-bVII-IV-I", "I-bVI-bVII-I"),
    Mode.MINOR: ("III-VII-i-VI", "VI-III-VII-i", "i-v-VI-III", "v-i-iv-v", "i-IV-i-IV", "i-iv-VII-III"),
}
_BORROWED = {Mode.MAJOR: ("iv", "bVII", "bVI", "II", "bIII"), Mode.MINOR: ("IV", "v", "bII", "I")}

_SCALES = {Mode.MAJOR: (0, 2, 4, 5, 7, 9, 11), Mode.MINOR: (0, 2, 3, 5, 7, 8, 10)}
_NUMERALS = ("i", "ii", "iii", "iv", "v", "vi", "vii")
_CHORD_RE = re.compile(r"([b#]?)(vii|vi|v|iv|iii|ii|i|VII|VI|V|IV|III|II|I)(maj7|ø7|°7|°|7)?")
_QUALITIES = {
    (True, ""): (0, 4, 7),
    (False, ""): (0, 3, 7),
    (False, "°"): (0, 3, 6),
    (True, "7"): (0, 4, 7, 10),
    (False, "7"): (0, 3, 7, 10),
    (True, "maj7"): (0, 4, 7, 11),
    (False, "ø7"): (0, 3, 6, 10),
    (False, "°7"): (0, 3, 6, 9),
}
_PEAK = 10 ** (-1 / 20)  # -1 dBFS


# --- the spec -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackSpec:
    """Everything needed to re-render a track bit for bit: `render(spec)` draws all its choices from `seed`."""

    key: Key
    tempo_bpm: float
    duration_s: float
    timbre: str
    drums: bool
    tuning_cents: float  # global offset of every pitched voice from A440 equal temperament
    progression: str  # roman numerals joined by "-", e.g. "i-iv-V-i"
    difficulty: float
    seed: int

    def __post_init__(self) -> None:
        if not isinstance(self.key, Key):
            raise ValueError(f"key must be an ml.keys.Key, got {self.key!r}")
        if not 30 <= self.tempo_bpm <= 300:
            raise ValueError(f"tempo_bpm must be 30–300, got {self.tempo_bpm}")
        if not self.duration_s >= 0.1:
            raise ValueError(f"duration_s must be at least 0.1 s, got {self.duration_s}")
        if self.timbre not in TIMBRES:
            raise ValueError(f"timbre {self.timbre!r} is not one of {', '.join(TIMBRES)}")
        if not -50 <= self.tuning_cents <= 50:
            raise ValueError(f"tuning_cents must be within ±50, got {self.tuning_cents}")
        if not 0 <= self.difficulty <= 1:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        parse_progression(self.progression, self.key.mode)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields; the key is written in mir_eval notation."""
        return {**asdict(self), "key": self.key.mir_eval}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TrackSpec:
        """The inverse of `to_dict`; other entries (a specs.jsonl line's `path`) are ignored."""
        names = [spec_field.name for spec_field in fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"track spec lacks {', '.join(missing)}: {data!r}")
        values = {name: data[name] for name in names}
        return cls(**{**values, "key": Key.parse(str(values["key"]))})


def random_spec(
    *,
    seed: int,
    key: Key | None = None,
    duration_range: tuple[float, float] = (15.0, 90.0),
    difficulty: float = 0.0,
    timbres: Sequence[str] | None = None,
) -> TrackSpec:
    """A random but reproducible track: the same arguments always give the same spec."""
    low, high = duration_range
    if not 0.1 <= low <= high:
        raise ValueError(
            f"duration_range must be (min, max) with 0.1 <= min <= max seconds, got {duration_range}"
        )
    choices = tuple(timbres) if timbres else TIMBRES
    rng = np.random.default_rng([seed, 0])
    picked_key = key if key is not None else ALL_KEYS[int(rng.integers(24))]
    ambiguous = rng.random() < 0.7 * difficulty
    pool = (AMBIGUOUS_PROGRESSIONS if ambiguous else PROGRESSIONS)[picked_key.mode]
    detuned = rng.random() < 0.5
    return TrackSpec(
        key=picked_key,
        tempo_bpm=float(round(rng.uniform(70, 160) * 2) / 2),
        duration_s=float(round(rng.uniform(low, high), 2)) if high > low else float(low),
        timbre=str(choices[int(rng.integers(len(choices)))]),
        drums=bool(rng.random() < 0.4 + 0.4 * difficulty),
        tuning_cents=float(round(rng.uniform(-30, 30), 1)) if detuned else 0.0,
        progression=str(pool[int(rng.integers(len(pool)))]),
        difficulty=float(difficulty),
        seed=int(seed),
    )


# --- harmony --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chord:
    """A chord relative to the key: `root` in semitones above the tonic, `intervals` above the root."""

    root: int
    intervals: tuple[int, ...]

    @property
    def tones(self) -> frozenset[int]:
        """Pitch classes relative to the tonic."""
        return frozenset((self.root + interval) % 12 for interval in self.intervals)


def parse_chord(symbol: str, mode: Mode) -> Chord:
    """One roman numeral ("V7", "bVII", "ii°", "#vii°7") in a major or minor key."""
    match = _CHORD_RE.fullmatch(symbol.strip())
    if not match:
        raise ValueError(f"{symbol!r} is not a roman-numeral chord such as 'I', 'iv', 'V7', 'bVII' or 'ii°'")
    accidental, numeral, suffix = match[1], match[2], match[3] or ""
    upper = numeral.isupper()
    if (upper, suffix) not in _QUALITIES:
        raise ValueError(
            f"{symbol!r}: suffix {suffix!r} does not go with a {'major' if upper else 'minor'} numeral"
        )
    shift = {"b": -1, "#": 1, "": 0}[accidental]
    root = (_SCALES[mode][_NUMERALS.index(numeral.lower())] + shift) % 12
    return Chord(root=root, intervals=_QUALITIES[(upper, suffix)])


def parse_progression(text: str, mode: Mode) -> tuple[Chord, ...]:
    """Roman numerals joined by "-", e.g. "i-VI-III-VII"."""
    symbols = [symbol for symbol in text.split("-") if symbol.strip()]
    if not symbols:
        raise ValueError(f"progression {text!r} has no chords; write e.g. 'I-IV-V-I'")
    return tuple(parse_chord(symbol, mode) for symbol in symbols)


# --- the score ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Note:
    """One pitched note of a part."""

    start: float  # beats
    length: float  # beats
    pitch: float  # MIDI number in A440 equal temperament; the track's tuning offset is added when rendering
    velocity: float


@dataclass(frozen=True)
class Slot:
    """A chord and the beats it lasts."""

    start: float  # beats
    length: float
    chord: Chord


@dataclass
class Score:
    """Every note of a track before it is played: harmony, comping, bass, melody and drums."""

    beats_per_bar: int
    total_beats: float
    harmony: list[Slot]
    comping: list[Note] = field(default_factory=list)
    bass: list[Note] = field(default_factory=list)
    melody: list[Note] = field(default_factory=list)
    drums: list[tuple[float, str, float]] = field(default_factory=list)  # (beat, drum, velocity)


_COMP_STYLES = {
    "organ": ("sustain", "syncopated"),
    "strings": ("sustain",),
    "piano": ("beats", "arpeggio", "syncopated"),
    "epiano": ("syncopated", "beats", "sustain"),
    "bell": ("arpeggio", "sustain"),
    "pluck": ("arpeggio", "beats"),
    "pad": ("sustain",),
}
_BAR_RHYTHMS = {
    4: (
        (1, 1, 1, 1),
        (2, 1, 1),
        (1, 1, 2),
        (0.5, 0.5, 1, 1, 1),
        (1, 0.5, 0.5, 2),
        (1.5, 0.5, 2),
        (0.5, 0.5, 0.5, 0.5, 1, 1),
        (1, 1, 0.5, 0.5, 1),
        (1.5, 0.5, 1, 1),
    ),
    3: ((1, 1, 1), (2, 1), (1, 2), (0.5, 0.5, 1, 1), (1.5, 0.5, 1), (1, 0.5, 0.5, 1)),
}
_PHRASE_END_RHYTHMS = {4: ((2, 2), (1, 3), (4,), (1, 1, 2)), 3: ((3,), (1, 2), (2, 1))}
_MELODY_RANGE = (4, 14)  # scale degrees above the melody's reference tonic


def compose(spec: TrackSpec) -> Score:
    """The notes of a track; deterministic in `spec.seed`."""
    rng = np.random.default_rng([spec.seed, 1])
    beats_per_bar = 3 if rng.random() < 0.2 else 4
    total_beats = spec.duration_s * spec.tempo_bpm / 60
    harmony = _harmony(spec, rng, beats_per_bar, total_beats)
    score = Score(beats_per_bar=beats_per_bar, total_beats=total_beats, harmony=harmony)
    styles = _COMP_STYLES[spec.timbre]
    score.comping = _comping(harmony, spec.key, rng, styles[int(rng.integers(len(styles)))], beats_per_bar)
    bass_style = ("whole", "pulse", "root_fifth", "walking")[int(rng.integers(4))]
    score.bass = _bass(harmony, spec.key, rng, bass_style, spec.difficulty)
    score.melody = _melody(harmony, spec.key, rng, beats_per_bar, total_beats, spec.difficulty)
    if spec.drums:
        score.drums = _drum_hits(harmony, rng, beats_per_bar)
    return score


def _harmony(spec: TrackSpec, rng: np.random.Generator, beats_per_bar: int, total_beats: float) -> list[Slot]:
    seconds_per_beat = 60 / spec.tempo_bpm
    mode = spec.key.mode
    template = parse_progression(spec.progression, mode)
    options = (2, 4, 8) if beats_per_bar == 4 else (3, 6)
    fitting = [beats for beats in options if 1.2 <= beats * seconds_per_beat <= 4.5]
    # A short track still plays its whole progression and the final tonic, at a quicker harmonic rhythm.
    complete = [beats for beats in fitting if total_beats // beats > len(template)]
    if complete or fitting:
        pool = complete or fitting[:1]
        beats_per_chord = pool[int(rng.integers(len(pool)))]
    else:
        beats_per_chord = min(options, key=lambda beats: abs(beats * seconds_per_beat - 2.5))
    n_slots = max(1, int(total_beats // beats_per_chord))
    chords = [template[i % len(template)] for i in range(n_slots)]
    borrowed = [parse_chord(symbol, mode) for symbol in _BORROWED[mode]]
    for i in range(1, n_slots - 2):
        if rng.random() < 0.3 * spec.difficulty:
            chords[i] = borrowed[int(rng.integers(len(borrowed)))]
    cadence = [parse_chord(symbol, mode) for symbol in _cadence(mode, rng, spec.difficulty)]
    if cadence and chords[-len(cadence) :] != cadence:
        chords[-len(cadence) :] = cadence[-n_slots:]
    slots = [Slot(i * beats_per_chord, beats_per_chord, chord) for i, chord in enumerate(chords)]
    # The last chord rings on to the end of the track.
    slots[-1] = Slot(slots[-1].start, total_beats - slots[-1].start, slots[-1].chord)
    return slots


def _cadence(mode: Mode, rng: np.random.Generator, difficulty: float) -> list[str]:
    tonic = "I" if mode == Mode.MAJOR else "i"
    if rng.random() >= difficulty:
        return ["V7" if rng.random() < 0.4 else "V", tonic]
    # Softer endings: plagal, deceptive, half cadence, a Picardy third, or no cadence at all.
    options = {
        Mode.MAJOR: (["IV", "I"], ["V", "vi"], ["ii", "V"], []),
        Mode.MINOR: (["iv", "i"], ["V", "VI"], ["iv", "V"], ["V", "I"], []),
    }[mode]
    return list(options[int(rng.integers(len(options)))])


def _voicing(chord: Chord, tonic: int, previous: list[int] | None) -> list[int]:
    """Close position between MIDI 52 and 76, moving as little as possible from the previous chord."""
    pitch_classes = [(tonic + chord.root + interval) % 12 for interval in chord.intervals]
    candidates = []
    for inversion in range(len(pitch_classes)):
        order = pitch_classes[inversion:] + pitch_classes[:inversion]
        low = 52 + (order[0] - 52) % 12
        notes = [low]
        for pitch_class in order[1:]:
            notes.append(notes[-1] + ((pitch_class - notes[-1]) % 12 or 12))
        if notes[-1] <= 76:
            candidates.append(notes)
    centre = 64.0 if previous is None else float(np.mean(previous))
    return min(candidates, key=lambda notes: (abs(np.mean(notes) - centre), notes))


def _comping(
    harmony: list[Slot], key: Key, rng: np.random.Generator, style: str, beats_per_bar: int
) -> list[Note]:
    notes: list[Note] = []
    previous: list[int] | None = None
    for index, slot in enumerate(harmony):
        voicing = _voicing(slot.chord, key.tonic, previous)
        previous = voicing
        final = index == len(harmony) - 1
        if style == "sustain" or final:
            hits = [(0.0, slot.length, voicing)]
        elif style == "beats":
            hits = [(float(beat), 0.9, voicing) for beat in range(int(slot.length))]
        elif style == "syncopated" and beats_per_bar == 4:
            pattern = [(0.0, 1.5), (1.5, 1.0), (2.5, 1.5)]
            hits = [
                (bar + onset, length, voicing)
                for bar in range(0, int(slot.length), 4)
                for onset, length in pattern
                if bar + onset < slot.length
            ]
        else:  # arpeggio (and syncopation in 3/4, which falls back to broken chords)
            tones = voicing + [voicing[0] + 12]
            order = tones + tones[-2:0:-1]
            hits = [(step / 2, 1.0, [order[step % len(order)]]) for step in range(int(slot.length * 2))]
        for onset, length, pitches in hits:
            accent = 0.15 if onset % beats_per_bar == 0 else 0.0
            for pitch in pitches:
                velocity = float(0.5 + accent + 0.1 * rng.random())
                notes.append(Note(slot.start + onset, min(length, slot.length - onset), pitch, velocity))
    return notes


def _bass(
    harmony: list[Slot], key: Key, rng: np.random.Generator, style: str, difficulty: float
) -> list[Note]:
    scale = {(key.tonic + step) % 12 for step in _SCALES[key.mode]}

    def root_of(chord: Chord) -> int:
        return 36 + (key.tonic + chord.root) % 12  # C2..B2

    notes: list[Note] = []
    for index, slot in enumerate(harmony):
        root = root_of(slot.chord)
        fifth = root + slot.chord.intervals[2]
        fifth -= 12 if fifth > 50 else 0
        beats = int(slot.length)
        if index == len(harmony) - 1 or style == "whole" or beats < 2:
            line = [(0.0, slot.length, root)]
        elif style == "pulse":
            line = [
                (float(beat), 0.8, root + (12 if beat % 2 and rng.random() < 0.3 else 0))
                for beat in range(beats)
            ]
        elif style == "root_fifth":
            line = [(float(beat), 1.8, root if beat % 4 == 0 else fifth) for beat in range(0, beats, 2)]
        else:  # walking: chord tones up the bar, then a step into the next chord's root
            next_root = root_of(harmony[index + 1].chord)
            chord_tones = sorted(root + interval for interval in slot.chord.intervals[1:]) + [root + 12]
            walk = [root] + [chord_tones[i % len(chord_tones)] for i in range(beats - 2)]
            if rng.random() < 0.6 * difficulty:
                approach = next_root + (1 if rng.random() < 0.5 else -1)  # chromatic
            else:
                steps = (-1, -2, 1, 2) if rng.random() < 0.5 else (1, 2, -1, -2)
                approach = next(next_root + s for s in steps if (next_root + s) % 12 in scale)
            line = [(float(beat), 0.95, pitch) for beat, pitch in enumerate(walk + [approach])]
        for onset, length, pitch in line:
            notes.append(Note(slot.start + onset, length, pitch, float(0.75 + 0.2 * rng.random())))
    return notes


def _degree_pitch(degree: int, chord: Chord, key: Key, base: int) -> int:
    """A scale degree as MIDI, bent a semitone where the chord alters it (leading tone under V in minor)."""
    scale = _SCALES[key.mode]
    step = scale[degree % 7]
    if step not in chord.tones:
        for altered in (step - 1, step + 1):
            if altered % 12 in chord.tones and altered % 12 not in scale:
                step = altered
                break
    return base + 12 * (degree // 7) + step


def _chord_at(harmony: list[Slot], beat: float) -> Chord:
    for slot in reversed(harmony):
        if slot.start <= beat:
            return slot.chord
    return harmony[0].chord


def _melody(
    harmony: list[Slot],
    key: Key,
    rng: np.random.Generator,
    beats_per_bar: int,
    total_beats: float,
    difficulty: float,
) -> list[Note]:
    base = 60 + key.tonic if key.tonic < 6 else 48 + key.tonic
    low, high = _MELODY_RANGE
    final_start = harmony[-1].start
    n_bars = int(final_start // beats_per_bar)
    rhythms = _BAR_RHYTHMS[beats_per_bar]
    endings = _PHRASE_END_RHYTHMS[beats_per_bar]

    def nearest_chord_tone(degree: int, chord: Chord, direction: int) -> int:
        offsets = (0, direction, -direction, 2 * direction, -2 * direction, 3 * direction)
        candidates = [
            degree + offset
            for offset in offsets
            if low <= degree + offset <= high
            and (_degree_pitch(degree + offset, chord, key, base) - base) % 12 in chord.tones
        ]
        # Melodies rest on the stable tones of the key (tonic, third, fifth) wherever the chord allows.
        stable = [candidate for candidate in candidates[:3] if candidate % 7 in (0, 2, 4)]
        if stable and rng.random() < 0.7:
            return stable[0]
        return candidates[0] if candidates else degree

    events: list[tuple[float, float, int]] = []  # (beat, length, degree)
    degree, direction, leap = int(rng.choice([7, 9, 11])), 1, 0
    motif: tuple[tuple[float, ...], tuple[float, ...]] = (rhythms[0], rhythms[0])
    for bar in range(n_bars):
        if bar % 4 == 0:
            motif = (rhythms[int(rng.integers(len(rhythms)))], rhythms[int(rng.integers(len(rhythms)))])
        phrase_end = bar % 4 == 3
        rhythm = endings[int(rng.integers(len(endings)))] if phrase_end else motif[bar % 2]
        onset = float(bar * beats_per_bar)
        for i, length in enumerate(rhythm):
            last = phrase_end and i == len(rhythm) - 1
            if 0 < i and not last and rng.random() < 0.08:
                onset += length  # a breath
                continue
            chord = _chord_at(harmony, onset)
            degree, direction, leap = _next_degree(degree, direction, leap, rng, chord, key, base)
            if onset % beats_per_bar == 0 or length >= 2 or last:
                degree = nearest_chord_tone(degree, chord, direction)
            events.append((onset, length, degree))
            onset += length
    # Step into the tonic (or, for a soft ending, a tone of the last chord) over the final chord.
    last_chord = harmony[-1].chord
    final = 7 if not events or abs(events[-1][2] - 7) <= abs(events[-1][2] - 14) else 14
    if rng.random() < 0.5 * difficulty:
        final = nearest_chord_tone(final + 2, last_chord, 1)
    if events:
        beat, length, _ = events[-1]
        events[-1] = (beat, length, final - 1 if rng.random() < 0.6 else final + 1)
    events.append((final_start, total_beats - final_start, final))
    return _melody_notes(events, harmony, key, base, rng, difficulty)


def _next_degree(
    degree: int, direction: int, leap: int, rng: np.random.Generator, chord: Chord, key: Key, base: int
) -> tuple[int, int, int]:
    """Mostly steps, some leaps of a third to a fifth, a few repeats; returns (degree, direction, leap)."""
    low, high = _MELODY_RANGE
    if leap:  # a leap is answered by a step the other way
        direction = -leap
        return min(max(degree + direction, low), high), direction, 0
    # The line keeps its direction for a while, turning at random or when it strays from the middle.
    if rng.random() < 0.25 or (degree - (low + high) / 2) * direction > 3:
        direction = -direction
    move = rng.random()
    if move < 0.85:
        size = 1 if move < 0.6 else int(rng.integers(2, 5))
        target = degree + direction * size
        pitch = _degree_pitch(degree, chord, key, base)
        if size > 1 and abs(_degree_pitch(target, chord, key, base) - pitch) == 6:
            target -= direction  # no tritone leaps
        degree, leap = target, (direction if size > 1 else 0)
    if not low <= degree <= high:
        degree = min(max(degree, low), high)
        direction, leap = (1 if degree == low else -1), 0
    return degree, direction, leap


def _melody_notes(
    events: list[tuple[float, float, int]],
    harmony: list[Slot],
    key: Key,
    base: int,
    rng: np.random.Generator,
    difficulty: float,
) -> list[Note]:
    pitches = [_degree_pitch(degree, _chord_at(harmony, beat), key, base) for beat, _, degree in events]
    if key.mode == Mode.MINOR:
        # Melodic minor: a line rising through the 7th (and 6th) to the tonic raises them.
        for i in range(len(events) - 1):
            degree, next_degree = events[i][2], events[i + 1][2]
            rising = next_degree == degree + 1
            step = (pitches[i] - base) % 12
            if rising and degree % 7 == 6 and step == 10:
                pitches[i] += 1
        for i in range(len(events) - 1):
            # ... and a raised 6th avoids the augmented second below a raised 7th.
            degree, next_degree = events[i][2], events[i + 1][2]
            step, next_step = (pitches[i] - base) % 12, (pitches[i + 1] - base) % 12
            if next_degree == degree + 1 and step == 8 and next_step == 11:
                if 8 not in _chord_at(harmony, events[i][0]).tones:
                    pitches[i] += 1
    notes: list[Note] = []
    for i, (beat, length, _) in enumerate(events):
        velocity = float(0.7 + 0.25 * rng.random())
        gap = pitches[i + 1] - pitches[i] if i + 1 < len(events) else 0
        if abs(gap) == 2 and length >= 1 and rng.random() < 0.35 * difficulty:
            half = length / 2  # a chromatic passing tone fills the whole step
            notes.append(Note(beat, half, pitches[i], velocity))
            notes.append(Note(beat + half, half, pitches[i] + gap // 2, velocity * 0.9))
        else:
            notes.append(Note(beat, length, pitches[i], velocity))
    return notes


_DRUM_PATTERNS = {
    4: (
        {"kick": (0, 2), "snare": (1, 3), "hat": tuple(np.arange(0, 4, 0.5))},
        {"kick": (0, 1, 2, 3), "snare": (1, 3), "open_hat": (0.5, 1.5, 2.5, 3.5)},
        {"kick": (0, 2.5), "snare": (2,), "hat": tuple(np.arange(0, 4, 0.5))},
    ),
    3: ({"kick": (0,), "snare": (1, 2), "hat": tuple(np.arange(0, 3, 0.5))},),
}


def _drum_hits(
    harmony: list[Slot], rng: np.random.Generator, beats_per_bar: int
) -> list[tuple[float, str, float]]:
    patterns = _DRUM_PATTERNS[beats_per_bar]
    pattern = patterns[int(rng.integers(len(patterns)))]
    end = harmony[-1].start
    first_bar = int(rng.integers(2)) if end >= 2 * beats_per_bar else 0
    hits = []
    for bar_start in np.arange(first_bar * beats_per_bar, end, beats_per_bar):
        for drum, onsets in pattern.items():
            for onset in onsets:
                if bar_start + onset >= end:
                    continue
                accent = 1.0 if float(onset).is_integer() else 0.7
                hits.append((float(bar_start + onset), drum, float(accent * (0.75 + 0.25 * rng.random()))))
    hits.append((float(end), "kick", 1.0))
    return hits


# --- sound: oscillators, envelopes, instruments -----------------------------------------------------------
_TABLE_SIZE = 2048


def _wavetable(amplitudes: Sequence[float], freq: float, sample_rate: int) -> np.ndarray:
    """One period of a harmonic series, without the partials that would alias above Nyquist."""
    n_partials = min(len(amplitudes), int(sample_rate / 2 / freq), _TABLE_SIZE // 2 - 1)
    spectrum = np.zeros(_TABLE_SIZE // 2 + 1, dtype=complex)
    spectrum[1 : n_partials + 1] = -0.5j * _TABLE_SIZE * np.asarray(amplitudes[:n_partials], dtype=float)
    table = np.fft.irfft(spectrum, _TABLE_SIZE)
    return np.append(table, table[0])


def _oscillate(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    position = (cycles % 1.0) * _TABLE_SIZE
    index = position.astype(np.intp)
    fraction = position - index
    return table[index] + fraction * (table[index + 1] - table[index])


def _envelope(
    n_on: int, n_release: int, sample_rate: int, attack: float, decay: float, sustain: float
) -> np.ndarray:
    """Linear attack, exponential decay to `sustain`, then a release that falls to silence."""
    t = np.arange(n_on) / sample_rate
    held = np.where(t < attack, t / attack, sustain + (1 - sustain) * np.exp(-(t - attack) / decay))
    level = held[-1] if n_on else 0.0
    release = level * np.linspace(1.0, 0.0, n_release) ** 2
    return np.concatenate([held, release])


def _saw(n_partials: int, cutoff_harmonic: float = np.inf) -> np.ndarray:
    """A sawtooth's 1/k partials through a 2nd-order Butterworth low-pass at `cutoff_harmonic`."""
    k = np.arange(1, n_partials + 1)
    return 1 / k / np.sqrt(1 + (k / cutoff_harmonic) ** 4)


def _pluck_string(
    freq: float, n: int, sample_rate: int, rng: np.random.Generator, brightness: float
) -> np.ndarray:
    """Karplus–Strong at the nearest integer loop delay, resampled to the exact pitch."""
    delay = max(2, int(sample_rate / freq - 0.5))  # the 2-point average adds half a sample of loop delay
    natural = sample_rate / (delay + 0.5)
    ring_s = float(np.clip(1.5 * np.sqrt(220 / freq), 0.4, 3.0))
    gain = 10 ** (-3 / (ring_s * natural))
    n_internal = int(n * freq / natural) + 2
    # The string starts in the triangle shape of a finger pluck (partials falling as 1/k², so the
    # fundamental leads) roughened by a little noise; pure noise would spread a low note's energy over
    # hundreds of equally loud partials and blur its pitch class.
    position = np.linspace(0, 1, delay, endpoint=False)
    pluck_at = rng.uniform(0.15, 0.35)
    shape = np.where(position < pluck_at, position / pluck_at, (1 - position) / (1 - pluck_at))
    excitation = shape + 0.15 * brightness * rng.uniform(-1, 1, delay)
    line = np.zeros(n_internal + delay + 1)  # line[1 + i] is sample i; line[0] is the silence before it
    line[1 : 1 + min(delay, n_internal)] = (excitation - excitation.mean())[:n_internal]
    for start in range(delay, n_internal, delay):
        stop = min(start + delay, n_internal)
        line[1 + start : 1 + stop] = (
            gain * 0.5 * (line[1 + start - delay : 1 + stop - delay] + line[start - delay : stop - delay])
        )
    return np.interp(np.arange(n) * (freq / natural), np.arange(n_internal), line[1 : n_internal + 1])


_Synth = Callable[[float, int, float], np.ndarray]  # (frequency Hz, samples held, brightness 0–1) -> samples


def _make_synth(timbre: str, role: str, sample_rate: int, rng: np.random.Generator) -> _Synth:
    """The instrument for one part of a track; melodies get quicker attacks than comping."""
    sr = sample_rate
    quick = 0.3 if role == "melody" else 1.0

    def seconds(n: int, release_s: float) -> tuple[np.ndarray, int]:
        n_release = int(release_s * sr)
        return np.arange(n + n_release) / sr, n_release

    def organ(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.08)
        table = _wavetable([1.0, 0.7, 0.45, 0.35, 0, 0.2, 0, 0.12], freq, sr)
        wave = _oscillate(table, freq * t) * (1 + 0.08 * np.sin(2 * np.pi * 6.2 * t))
        return wave * _envelope(n, n_release, sr, 0.01, 0.15, 0.85)

    def strings(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.35)
        table = _wavetable(_saw(24, 6 + 6 * brightness), freq, sr)
        vibrato = 0.007 * np.minimum(t / 0.6, 1.0) * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5)
        wave = sum(_oscillate(table, freq * (t * detune + vibrato)) for detune in (0.997, 1.003))
        return wave * _envelope(n, n_release, sr, 0.25 * quick, 0.5, 0.8)

    def piano(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.15)
        k = np.arange(1, 31)
        dull = _wavetable(1 / k**2.5, freq, sr)
        bright = _wavetable((0.5 + brightness) / k**1.1, freq, sr)
        fade = np.exp(-t / 0.25)
        wave = _oscillate(dull, freq * t) + fade * _oscillate(bright - dull, freq * t)
        return wave * _envelope(
            n, n_release, sr, 0.004, float(np.clip(1.2 * np.sqrt(261 / freq), 0.3, 3)), 0.0
        )

    def fm(ratio: float, index: float, index_decay: float, decay: float, release_s: float) -> _Synth:
        def play(freq: float, n: int, brightness: float) -> np.ndarray:
            t, n_release = seconds(n, release_s)
            modulation = (index * brightness * np.exp(-t / index_decay) + 0.15) * np.sin(
                2 * np.pi * ratio * freq * t
            )
            wave = np.sin(2 * np.pi * freq * t + modulation)
            return wave * _envelope(n, n_release, sr, 0.003, decay, 0.0)

        return play

    def pluck(freq: float, n: int, brightness: float) -> np.ndarray:
        total = n + int(0.1 * sr)
        wave = _pluck_string(freq, total, sr, rng, 0.3 + 0.6 * brightness)
        return wave * _envelope(n, total - n, sr, 0.001, 1e9, 1.0)

    def pad(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.6)
        closed = _wavetable(_saw(40, 1.5), freq, sr)
        opened = _wavetable(_saw(40, 1.5 + 2500 / freq * brightness), freq, sr)
        sweep = 1 - np.exp(-t / 0.8)
        wave = sum(
            _oscillate(closed, freq * detune * t) + sweep * _oscillate(opened - closed, freq * detune * t)
            for detune in (0.995, 1.005)
        )
        return wave * _envelope(n, n_release, sr, 0.4 * quick, 1.0, 0.9)

    def round_bass(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.06)
        table = _wavetable([1.0, 0.5, 0.3, 0.12, 0.06], freq, sr)
        return _oscillate(table, freq * t) * _envelope(n, n_release, sr, 0.01, 0.25, 0.7)

    def synth_bass(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.05)
        table = _wavetable(_saw(30, 3 + 3 * brightness), freq, sr)
        return _oscillate(table, freq * t) * _envelope(n, n_release, sr, 0.005, 0.2, 0.6)

    synths: dict[str, _Synth] = {
        "organ": organ,
        "strings": strings,
        "piano": piano,
        "epiano": fm(ratio=1.0, index=2.5, index_decay=0.4, decay=1.5, release_s=0.12),
        "bell": fm(ratio=3.5, index=1.0, index_decay=0.4, decay=2.0, release_s=0.5),
        "pluck": pluck,
        "pad": pad,
        "round_bass": round_bass,
        "synth_bass": synth_bass,
    }
    return synths[timbre]


def _drum_kit(sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Kick (sine sweep), snare (noise and a tone), closed and open hi-hat (high-passed noise)."""
    sr = sample_rate

    def span(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    t = span(0.35)
    low = rng.uniform(42, 55)
    kick = np.sin(2 * np.pi * np.cumsum(low + 100 * np.exp(-t / 0.035)) / sr) * np.exp(-t / 0.17)
    t = span(0.25)
    rattle = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.08)
    snare = 0.6 * rattle / 2 + np.sin(2 * np.pi * rng.uniform(170, 210) * t) * np.exp(-t / 0.05)
    hats = {}
    for name, length in (("hat", 0.06), ("open_hat", 0.25)):
        t = span(length)
        hiss = np.diff(rng.standard_normal(len(t) + 2), n=2) / 4
        hats[name] = 0.4 * hiss * np.exp(-t / (length / 4))
    return {"kick": kick, "snare": snare, **hats}


def _place(bus: np.ndarray, wave: np.ndarray, start: int) -> None:
    skip = max(0, -start)  # a note nudged before the first sample loses its first samples
    start = max(start, 0)
    stop = min(len(bus), start + len(wave) - skip)
    if stop > start:
        bus[start:stop] += wave[skip : skip + stop - start]


def _play_part(
    notes: Sequence[Note],
    synth: _Synth,
    spec: TrackSpec,
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    jitter_s: float,
) -> np.ndarray:
    samples_per_beat = 60 / spec.tempo_bpm * sample_rate
    bus = np.zeros(n_samples)
    # Progressions repeat, so most notes recur: keep each rendered waveform once per track.
    cache: dict[tuple[float, int, int], np.ndarray] = {}
    for note in notes:
        n_on = max(1, round(note.length * samples_per_beat))
        brightness = round(note.velocity * 4) / 4
        cache_key = (note.pitch, n_on, int(brightness * 4))
        if cache_key not in cache:
            freq = 440.0 * 2 ** ((note.pitch - 69 + spec.tuning_cents / 100) / 12)
            cache[cache_key] = synth(freq, n_on, brightness)
        jitter = int(rng.normal(0, jitter_s) * sample_rate) if jitter_s else 0
        _place(bus, note.velocity * cache[cache_key], round(note.start * samples_per_beat) + jitter)
    return bus


# --- effects ----------------------------------------------------------------------------------------------
def _comb(signal: np.ndarray, delay: int, gain: float) -> np.ndarray:
    """y[n] = x[n] + gain·y[n-delay], a delay-length block at a time (each block needs only earlier ones)."""
    out = signal.copy()
    for start in range(delay, len(out), delay):
        stop = min(start + delay, len(out))
        out[start:stop] += gain * out[start - delay : stop - delay]
    return out


def _allpass(signal: np.ndarray, delay: int, gain: float) -> np.ndarray:
    out = -gain * signal
    out[delay:] += signal[:-delay]
    for start in range(delay, len(out), delay):
        stop = min(start + delay, len(out))
        out[start:stop] += gain * out[start - delay : stop - delay]
    return out


def _reverb(signal: np.ndarray, sample_rate: int, rt60_s: float) -> np.ndarray:
    """A Schroeder reverberator: four parallel combs, two allpasses in series."""
    wet = np.zeros_like(signal)
    for delay_s in (0.0297, 0.0371, 0.0411, 0.0437):
        wet += _comb(signal, int(delay_s * sample_rate), 10 ** (-3 * delay_s / rt60_s))
    for delay_s in (0.0126, 0.0077):
        wet = _allpass(wet, int(delay_s * sample_rate), 0.7)
    return np.convolve(wet, (0.25, 0.5, 0.25), mode="same") / 4


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(signal**2))) if signal.size else 0.0


def _normalised(signal: np.ndarray, level: float) -> np.ndarray:
    rms = _rms(signal)
    return signal * (level / rms) if rms > 0 else signal


def _degrade(mix: np.ndarray, spec: TrackSpec, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Echo, reverb, hiss and hum that grow with difficulty; difficulty 0 returns the mix untouched."""
    d = spec.difficulty
    if d <= 0:
        return mix
    if d >= 0.3 and rng.random() < 0.6:
        delay = int(rng.choice([0.5, 0.75]) * 60 / spec.tempo_bpm * sample_rate)
        echo = np.zeros_like(mix)
        for repeat in range(1, 4):
            if repeat * delay < len(mix):
                echo[repeat * delay :] += (0.3 + 0.2 * d) ** (repeat - 1) * mix[: len(mix) - repeat * delay]
        mix = mix + 0.3 * d * echo
    mix = mix + 0.5 * d * _reverb(mix, sample_rate, float(rng.uniform(0.8, 2.2)))
    level = _rms(mix)
    white = rng.standard_normal(len(mix))
    rumble = np.convolve(white, np.ones(24) / np.sqrt(24), mode="same")
    snr_db = 35 - 20 * d
    mix = mix + _normalised(white + 2 * rumble, level * 10 ** (-snr_db / 20))
    if d > 0.5 and rng.random() < 0.3:
        t = np.arange(len(mix)) / sample_rate
        mains = float(rng.choice([50.0, 60.0]))
        hum = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
        mix = mix + _normalised(hum, level * 10 ** (-30 / 20))
    return mix


def render(spec: TrackSpec, *, sample_rate: int = 22050) -> np.ndarray:
    """Mono float32 audio of exactly round(duration_s · sample_rate) samples, peak-normalised to -1 dBFS."""
    if sample_rate < 8000:
        raise ValueError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
    score = compose(spec)
    rng = np.random.default_rng([spec.seed, 2])
    n_samples = round(spec.duration_s * sample_rate)
    bass_timbre = (
        "pluck" if spec.timbre == "pluck" else ("round_bass", "synth_bass", "pluck")[int(rng.integers(3))]
    )

    def play(notes: Sequence[Note], timbre: str, role: str, jitter_s: float) -> np.ndarray:
        synth = _make_synth(timbre, role, sample_rate, rng)
        return _play_part(notes, synth, spec, n_samples, sample_rate, rng, jitter_s)

    comping = play(score.comping, spec.timbre, "comping", 0.004)
    melody = play(score.melody, spec.timbre, "melody", 0.006)
    bass = play(score.bass, bass_timbre, "bass", 0.0)
    mix = _normalised(comping, 0.8) + _normalised(melody, 0.9) + _normalised(bass, 0.7)
    if score.drums:
        kit = _drum_kit(sample_rate, rng)
        drums = np.zeros(n_samples)
        samples_per_beat = 60 / spec.tempo_bpm * sample_rate
        for beat, drum, velocity in score.drums:
            _place(drums, velocity * kit[drum], round(beat * samples_per_beat))
        mix = mix + _normalised(drums, (0.5 + 0.9 * spec.difficulty) * _rms(mix))
    mix = _degrade(mix, spec, sample_rate, rng)
    fade_in, fade_out = min(n_samples, int(0.01 * sample_rate)), min(n_samples, int(0.3 * sample_rate))
    mix[:fade_in] *= np.linspace(0, 1, fade_in)
    mix[n_samples - fade_out :] *= np.linspace(1, 0, fade_out) ** 2
    peak = float(np.max(np.abs(mix)))
    return (mix * (_PEAK / peak) if peak > 0 else mix).astype(np.float32)


# --- data sets and the command line -----------------------------------------------------------------------
@dataclass(frozen=True)
class SynthTrack:
    """A rendered file and the spec that re-renders it."""

    path: Path
    spec: TrackSpec


def _spread_keys(n_tracks: int, keys: Sequence[Key], seed: int) -> list[Key]:
    """Every key equally often: whole shuffled rounds through `keys`, then part of one more."""
    rng = np.random.default_rng([seed, 24])
    plan: list[Key] = []
    while len(plan) < n_tracks:
        plan.extend(keys[int(i)] for i in rng.permutation(len(keys)))
    return plan[:n_tracks]


def _file_key(key: Key) -> str:
    # '#' would start a URL fragment when the file is served, so spell it out.
    return key.mir_eval.replace("#", "sharp").replace(" ", "-")


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    write(partial)
    os.replace(partial, path)


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write in the format named by the file's suffix (wav, flac, ogg or mp3), atomically."""
    import soundfile as sf

    fmt = path.suffix.lstrip(".").lower()
    if fmt not in AUDIO_FORMATS:
        raise ValueError(f"cannot write {path.name}: use one of {', '.join(AUDIO_FORMATS)}")
    container, subtype = AUDIO_FORMATS[fmt]
    _write_atomic(
        path, lambda partial: sf.write(partial, audio, sample_rate, format=container, subtype=subtype)
    )


def generate_dataset(
    out_dir: Path,
    *,
    n_tracks: int,
    seed: int,
    sample_rate: int = 22050,
    duration_range: tuple[float, float] = (15.0, 90.0),
    difficulty: float = 0.0,
    formats: Sequence[str] = ("wav",),
    keys: Sequence[Key] | None = None,
    timbres: Sequence[str] | None = None,
    progress: bool = False,
) -> list[SynthTrack]:
    """Render `n_tracks` into `out_dir` with labels.csv (path,key in mir_eval notation) and specs.jsonl."""
    unknown = [fmt for fmt in formats if fmt not in AUDIO_FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown audio format(s) {unknown or formats}; use {', '.join(AUDIO_FORMATS)}")
    unknown = [timbre for timbre in timbres or () if timbre not in TIMBRES]
    if unknown:
        raise ValueError(f"unknown timbre(s) {', '.join(unknown)}; use {', '.join(TIMBRES)}")
    if n_tracks < 0:
        raise ValueError(f"n_tracks must be zero or more, got {n_tracks}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = _spread_keys(n_tracks, list(keys) if keys else list(ALL_KEYS), seed)
    indices: Sequence[int] = range(n_tracks)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synth", unit="track")
    tracks = []
    for i in indices:
        track_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        spec = random_spec(
            seed=track_seed,
            key=plan[i],
            duration_range=duration_range,
            difficulty=difficulty,
            timbres=timbres,
        )
        path = out_dir / f"synth_{i:04d}_{_file_key(spec.key)}.{formats[i % len(formats)]}"
        write_audio(path, render(spec, sample_rate=sample_rate), sample_rate)
        tracks.append(SynthTrack(path=path, spec=spec))

    def write_labels(partial: Path) -> None:
        with partial.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "key"])
            writer.writerows([track.path.name, track.spec.key.mir_eval] for track in tracks)

    def write_specs(partial: Path) -> None:
        lines = [json.dumps({"path": track.path.name, **track.spec.to_dict()}) for track in tracks]
        partial.write_text("".join(line + "\n" for line in lines))

    _write_atomic(out_dir / "labels.csv", write_labels)
    _write_atomic(out_dir / "specs.jsonl", write_specs)
    return tracks


def main(argv: list[str] | None = None) -> int:
    """`python -m ml synth`: write a synthetic labelled data set."""
    parser = argparse.ArgumentParser(
        prog="python -m ml synth",
        description="Write a synthetic labelled data set: audio files, labels.csv and specs.jsonl.",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for audio, labels.csv, specs.jsonl"
    )
    parser.add_argument("--n", type=int, default=24, help="number of tracks (keys are spread evenly)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-duration", type=float, default=15.0, help="seconds")
    parser.add_argument("--max-duration", type=float, default=90.0, help="seconds")
    parser.add_argument("--difficulty", type=float, default=0.0, help="0 clean … 1 noisy and ambiguous")
    parser.add_argument(
        "--formats", default="wav", help=f"comma-separated, cycled: {','.join(AUDIO_FORMATS)}"
    )
    parser.add_argument("--timbres", default="", help=f"comma-separated subset of {','.join(TIMBRES)}")
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        tracks = generate_dataset(
            args.out,
            n_tracks=args.n,
            seed=args.seed,
            sample_rate=args.sample_rate,
            duration_range=(args.min_duration, args.max_duration),
            difficulty=args.difficulty,
            formats=[fmt.strip().lower() for fmt in args.formats.split(",") if fmt.strip()],
            timbres=[timbre.strip() for timbre in args.timbres.split(",") if timbre.strip()] or None,
            progress=not args.quiet,
        )
    except ValueError as error:
        print(f"synth: {error}", file=sys.stderr)
        return 2
    audio_s = sum(track.spec.duration_s for track in tracks)
    elapsed = time.perf_counter() - started
    print(f"wrote {len(tracks)} tracks ({audio_s:.0f} s of audio) to {args.out} in {elapsed:.1f} s")
    return 0
