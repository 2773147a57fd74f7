"""Essentia's KeyExtractor (profile from $ESSENTIA_PROFILE, default 'bgate'; 44.1 kHz) on audio files; runs in bench/.peers/essentia."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import essentia
import essentia.standard as es
from peer_protocol import run

SAMPLE_RATE = 44_100


def make_estimator() -> Callable[[str], str]:
    # Essentia's defaults throughout (its spectral settings are tuned for 44.1 kHz); the key profile can be
    # chosen with ESSENTIA_PROFILE (bgate, the default; edma; krumhansl; ...).
    profile = os.environ.get("ESSENTIA_PROFILE", "bgate")
    extractor = es.KeyExtractor(sampleRate=SAMPLE_RATE, profileType=profile)

    def estimate(path: str) -> str:
        audio = es.MonoLoader(filename=path, sampleRate=SAMPLE_RATE)()
        key, scale, _strength = extractor(audio)
        return f"{key} {scale}"

    return estimate


if __name__ == "__main__":
    essentia.log.warningActive = False
    sys.exit(run(peer="essentia", version=essentia.__version__, make_estimator=make_estimator))
