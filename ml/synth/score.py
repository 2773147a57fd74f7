"""Composing a track: harmony, comping, bass line, melody and drums as notes on a beat grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ml.keys import Key, Mode
from ml.synth.harmony import BORROWED, SCALES, Chord, parse_chord, parse_progression
from ml.synth.spec import TrackSpec


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
    borrowed = [parse_chord(symbol, mode) for symbol in BORROWED[mode]]
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
    scale = {(key.tonic + step) % 12 for step in SCALES[key.mode]}

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
    scale = SCALES[key.mode]
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
