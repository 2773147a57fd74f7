"""Deterministic synthetic music in any of the 24 keys: the only audio KeyWeb's demo, tests and models use.

spec (what a track is) → harmony (chords) → score (notes) → instruments → render (audio) → dataset (files).
"""

from ml.synth.dataset import SynthTrack, generate_dataset, main, write_audio
from ml.synth.harmony import Chord, parse_chord, parse_progression
from ml.synth.render import render
from ml.synth.score import Note, Score, Slot, compose
from ml.synth.spec import AMBIGUOUS_PROGRESSIONS, AUDIO_FORMATS, PROGRESSIONS, TIMBRES, TrackSpec, random_spec

__all__ = [
    "AMBIGUOUS_PROGRESSIONS",
    "AUDIO_FORMATS",
    "PROGRESSIONS",
    "TIMBRES",
    "Chord",
    "Note",
    "Score",
    "Slot",
    "SynthTrack",
    "TrackSpec",
    "compose",
    "generate_dataset",
    "main",
    "parse_chord",
    "parse_progression",
    "random_spec",
    "render",
    "write_audio",
]
