"""How keys are shown on the pages: the 24 keys for the scripts, the circle of fifths, label choices."""

from __future__ import annotations

from ml.keys import ALL_KEYS, NO_KEY_LABELS, Key

from ..models import Annotation


def keys_table() -> list[dict]:
    """The 24 keys as the pages' scripts need them (names in every notation, relative, parallel)."""
    return [
        {
            "index": key.index,
            "name": key.mir_eval,
            "short": key.id3,
            "tonic": key.tonic,
            "mode": key.mode_name,
            "camelot": key.camelot,
            "open_key": key.open_key,
            "relative": key.relative.index,
            "parallel": key.parallel.index,
        }
        for key in ALL_KEYS
    ]


def circle_of_fifths() -> list[dict]:
    """Twelve positions clockwise from C at the top: the major key outside, its relative minor inside."""
    positions = []
    for step in range(12):
        major = Key.from_index((7 * step) % 12)
        positions.append({"major": major.index, "minor": major.relative.index})
    return positions


def label_choices() -> list[tuple[str, str]]:
    """(value, text) pairs for a select: the 24 keys, then the no-key labels. Values are what the API's
    `key` field takes (a key name or a no-key label)."""
    labels = dict(Annotation.Label.choices)
    return [(key.mir_eval, f"{key.mir_eval} ({key.camelot})") for key in ALL_KEYS] + [
        (label, labels[label]) for label in NO_KEY_LABELS
    ]


def annotation_value(annotation: Annotation) -> str:
    """An annotation as the API's `key` field takes it: the key name, or the no-key label."""
    return annotation.key.mir_eval if annotation.key is not None else annotation.label
