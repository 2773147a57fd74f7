"""madmom's key CNN (Korzeniowski & Widmer 2018, shipped in the madmom wheel); runs in bench/.peers/madmom."""

from __future__ import annotations

import sys
from collections.abc import Callable

import madmom
from madmom.features.key import CNNKeyRecognitionProcessor, key_prediction_to_label
from peer_protocol import run


def make_estimator() -> Callable[[str], str]:
    # The processor decodes the file itself (mono, 44.1 kHz) and averages the CNN's output over time.
    processor = CNNKeyRecognitionProcessor()

    def estimate(path: str) -> str:
        return key_prediction_to_label(processor(path))

    return estimate


if __name__ == "__main__":
    sys.exit(run(peer="madmom", version=madmom.__version__, make_estimator=make_estimator))
