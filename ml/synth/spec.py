"""What a synthetic track is: its key, progression, timbres and difficulty, drawn at random from a seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from ml.keys import ALL_KEYS, Key, Mode
from ml.synth.harmony import parse_progression

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
