"""Roman-numeral chords and progressions in a key."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ml.keys import Mode

BORROWED = {Mode.MAJOR: ("iv", "bVII", "bVI", "II", "bIII"), Mode.MINOR: ("IV", "v", "bII", "I")}

SCALES = {Mode.MAJOR: (0, 2, 4, 5, 7, 9, 11), Mode.MINOR: (0, 2, 3, 5, 7, 8, 10)}
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
    root = (SCALES[mode][_NUMERALS.index(numeral.lower())] + shift) % 12
    return Chord(root=root, intervals=_QUALITIES[(upper, suffix)])


def parse_progression(text: str, mode: Mode) -> tuple[Chord, ...]:
    """Roman numerals joined by "-", e.g. "i-VI-III-VII"."""
    symbols = [symbol for symbol in text.split("-") if symbol.strip()]
    if not symbols:
        raise ValueError(f"progression {text!r} has no chords; write e.g. 'I-IV-V-I'")
    return tuple(parse_chord(symbol, mode) for symbol in symbols)
