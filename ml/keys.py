"""The one canonical key (tonic pitch class + mode) and every notation KeyWeb reads and writes."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class KeyParseError(ValueError):
    """Raised with a message that names the text and the notation it failed to parse as."""


class Mode(enum.IntEnum):
    MAJOR = 0
    MINOR = 1


# Labels an annotator may give instead of a key. They are not keys and never enter the 24-way head.
NO_KEY_LABELS = ("ambiguous", "no_key", "modulating")

_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Spellings we write: the conventional key signature (fewest accidentals; F# major and Eb minor for the ties).
_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
# Camelot / Open Key number of each major tonic; the relative minor shares the number.
_CAMELOT_MAJOR = {0: 8, 7: 9, 2: 10, 9: 11, 4: 12, 11: 1, 6: 2, 1: 3, 8: 4, 3: 5, 10: 6, 5: 7}
_CAMELOT_TO_MAJOR_TONIC = {number: tonic for tonic, number in _CAMELOT_MAJOR.items()}

_TONIC_RE = r"([A-Ga-g])([#b♯♭]?)"
_MODE_WORDS = {"major": Mode.MAJOR, "maj": Mode.MAJOR, "minor": Mode.MINOR, "min": Mode.MINOR}
# JAMS modal names map onto the 24 classes by their major/minor third where that is unambiguous.
_JAMS_MODES = {"major": Mode.MAJOR, "ionian": Mode.MAJOR, "minor": Mode.MINOR, "aeolian": Mode.MINOR}


def _tonic_pc(letter: str, accidental: str) -> int:
    pc = _LETTER_PC[letter.upper()]
    if accidental in ("#", "♯"):
        pc += 1
    elif accidental in ("b", "♭"):
        pc -= 1
    return pc % 12


@dataclass(frozen=True, order=True)
class Key:
    """A major or minor key. `index` (0–23: majors C..B, then minors C..B) is the head's label order."""

    tonic: int
    mode: Mode

    def __post_init__(self) -> None:
        if not isinstance(self.tonic, int) or not 0 <= self.tonic < 12:
            raise KeyParseError(f"tonic must be a pitch class 0–11, got {self.tonic!r}")
        object.__setattr__(self, "mode", Mode(self.mode))

    # --- canonical index -------------------------------------------------------------------------
    @property
    def index(self) -> int:
        return self.tonic + 12 * int(self.mode)

    @classmethod
    def from_index(cls, index: int) -> Key:
        if not 0 <= int(index) < 24:
            raise KeyParseError(f"key index must be 0–23, got {index!r}")
        return cls(tonic=int(index) % 12, mode=Mode(int(index) // 12))

    # --- relations ---------------------------------------------------------------------------------
    def transpose(self, semitones: int) -> Key:
        return Key(tonic=(self.tonic + semitones) % 12, mode=self.mode)

    @property
    def relative(self) -> Key:
        if self.mode == Mode.MAJOR:
            return Key(tonic=(self.tonic + 9) % 12, mode=Mode.MINOR)
        return Key(tonic=(self.tonic + 3) % 12, mode=Mode.MAJOR)

    @property
    def parallel(self) -> Key:
        return Key(tonic=self.tonic, mode=Mode(1 - int(self.mode)))

    # --- writing -----------------------------------------------------------------------------------
    @property
    def tonic_name(self) -> str:
        return (_MAJOR_NAMES if self.mode == Mode.MAJOR else _MINOR_NAMES)[self.tonic]

    @property
    def mode_name(self) -> str:
        return "major" if self.mode == Mode.MAJOR else "minor"

    @property
    def mir_eval(self) -> str:
        return f"{self.tonic_name} {self.mode_name}"

    @property
    def camelot(self) -> str:
        return f"{self._circle_number()}{'B' if self.mode == Mode.MAJOR else 'A'}"

    @property
    def open_key(self) -> str:
        number = (self._circle_number() - 8) % 12 + 1
        return f"{number}{'d' if self.mode == Mode.MAJOR else 'm'}"

    @property
    def jams(self) -> str:
        return f"{self.tonic_name}:{self.mode_name}"

    @property
    def id3(self) -> str:
        return self.tonic_name + ("m" if self.mode == Mode.MINOR else "")

    def to(self, notation: str) -> str:
        if notation not in NOTATIONS:
            raise KeyParseError(f"unknown notation {notation!r}; use one of {', '.join(NOTATIONS)}")
        return getattr(self, notation)

    def __str__(self) -> str:
        return self.mir_eval

    def _circle_number(self) -> int:
        major_tonic = self.tonic if self.mode == Mode.MAJOR else self.relative.tonic
        return _CAMELOT_MAJOR[major_tonic]

    # --- reading -----------------------------------------------------------------------------------
    @classmethod
    def from_mir_eval(cls, text: str) -> Key:
        match = re.fullmatch(_TONIC_RE + r"\s+(major|minor)", text.strip(), flags=re.IGNORECASE)
        if not match:
            raise KeyParseError(f"{text!r} is not a mir_eval key such as 'C major' or 'F# minor'")
        return cls(tonic=_tonic_pc(match[1], match[2]), mode=_MODE_WORDS[match[3].lower()])

    @classmethod
    def from_camelot(cls, text: str) -> Key:
        match = re.fullmatch(r"(1[0-2]|[1-9])([ABab])", text.strip())
        if not match:
            raise KeyParseError(f"{text!r} is not a Camelot key such as '8B' (C major) or '8A' (A minor)")
        major = cls(tonic=_CAMELOT_TO_MAJOR_TONIC[int(match[1])], mode=Mode.MAJOR)
        return major if match[2].upper() == "B" else major.relative

    @classmethod
    def from_open_key(cls, text: str) -> Key:
        match = re.fullmatch(r"(1[0-2]|[1-9])([dmDM])", text.strip())
        if not match:
            raise KeyParseError(f"{text!r} is not an Open Key such as '1d' (C major) or '1m' (A minor)")
        camelot_number = (int(match[1]) + 6) % 12 + 1
        major = cls(tonic=_CAMELOT_TO_MAJOR_TONIC[camelot_number], mode=Mode.MAJOR)
        return major if match[2].lower() == "d" else major.relative

    @classmethod
    def from_jams(cls, text: str) -> Key | None:
        """JAMS `key_mode`; returns None for 'N' (no key). Modes other than major/minor are refused."""
        text = text.strip()
        if text == "N":
            return None
        match = re.fullmatch(r"([A-G])([b#]?)(?::(\w+))?", text)
        if not match:
            raise KeyParseError(f"{text!r} is not a JAMS key_mode value such as 'C:major' or 'N'")
        mode_word = (match[3] or "major").lower()
        if mode_word not in _JAMS_MODES:
            raise KeyParseError(
                f"{text!r}: mode {mode_word!r} has no major/minor equivalent among the 24 keys"
            )
        return cls(tonic=_tonic_pc(match[1], match[2]), mode=_JAMS_MODES[mode_word])

    @classmethod
    def from_id3(cls, text: str) -> Key:
        match = re.fullmatch(r"([A-G])([b#]?)(m?)", text.strip())
        if not match:
            raise KeyParseError(f"{text!r} is not an ID3 TKEY value such as 'C', 'Am' or 'Dbm'")
        return cls(tonic=_tonic_pc(match[1], match[2]), mode=Mode.MINOR if match[3] else Mode.MAJOR)

    @classmethod
    def parse(cls, text: str) -> Key:
        """Any notation we speak, plus peers' spellings ('Abm', 'db major', 'Eb\\tminor', 'A min')."""
        if not isinstance(text, str) or not text.strip():
            raise KeyParseError(f"empty or non-text key {text!r}")
        cleaned = text.strip()
        if re.fullmatch(r"\d{1,2}[ABab]", cleaned):
            return cls.from_camelot(cleaned)
        if re.fullmatch(r"\d{1,2}[dmDM]", cleaned):
            return cls.from_open_key(cleaned)
        if ":" in cleaned:
            key = cls.from_jams(cleaned)
            if key is None:
                raise KeyParseError(f"{text!r} means 'no key', which is not one of the 24 keys")
            return key
        match = re.fullmatch(_TONIC_RE + r"(?:\s*(major|minor|maj|min|m|M))?", cleaned, flags=0)
        if match:
            suffix = match[3]
            mode = Mode.MAJOR if suffix in (None, "M") else _MODE_WORDS.get(suffix.lower(), Mode.MINOR)
            return cls(tonic=_tonic_pc(match[1], match[2]), mode=mode)
        match = re.fullmatch(_TONIC_RE + r"\s+(major|minor|maj|min)", cleaned, flags=re.IGNORECASE)
        if match:
            return cls(tonic=_tonic_pc(match[1], match[2]), mode=_MODE_WORDS[match[3].lower()])
        raise KeyParseError(
            f"{text!r} is not a key we understand; write e.g. 'C major', 'F# minor', '8B', '1m', 'D:minor' or 'Am'"
        )


NOTATIONS = ("mir_eval", "camelot", "open_key", "jams", "id3")
ALL_KEYS = tuple(Key.from_index(i) for i in range(24))


RELATIONS = ("correct", "fifth", "relative", "parallel", "other")
# mir_eval 0.8's weighted key score for each relation (ml.metrics computes it through mir_eval itself).
RELATION_SCORES = {"correct": 1.0, "fifth": 0.5, "relative": 0.3, "parallel": 0.2, "other": 0.0}


def key_relation(reference: Key | None, estimated: Key | None) -> str:
    """The relation mir_eval 0.8 scores: one of RELATIONS (a fifth means the estimate is a fifth above).
    Torch- and mir_eval-free, so the web process can use it (annotator agreement)."""
    if reference == estimated:
        return "correct"
    if reference is None or estimated is None:
        return "other"
    if estimated == reference.transpose(7):
        return "fifth"
    if estimated == reference.relative:
        return "relative"
    if estimated == reference.parallel:
        return "parallel"
    return "other"
