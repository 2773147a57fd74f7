"""Test libraries for the browser tests and the screenshot script: synthetic tracks with known keys,
imported through the real import service."""

from __future__ import annotations

from pathlib import Path

from annotations.models import Track
from annotations.services.labels import LabelValue
from annotations.services.tracks import track_import
from ml.keys import ALL_KEYS
from tests.factories import write_synthetic


def tracks_import(
    folder: Path, *, count: int, seconds: float = 8.0, labeled: bool = False, seed: int = 0
) -> list[Track]:
    """`count` synthetic tracks cycling through the 24 keys (by fifths, so neighbours differ); with
    `labeled`, each carries its true key as an imported label."""
    tracks = []
    for number in range(count):
        key = ALL_KEYS[(number * 7) % 12 + 12 * (number % 2)]
        path = write_synthetic(
            folder / f"track-{seed + number:03d}.wav", key=key.mir_eval, seed=seed + number, seconds=seconds
        )
        outcome = track_import(
            path=path,
            original_name=f"Synthetic {number + 1} ({key.mir_eval})",
            label=LabelValue.parse(key.mir_eval) if labeled else None,
        )
        assert outcome.ok, outcome.error
        tracks.append(outcome.track)
    return tracks


def tracks_analyse(tracks: list[Track]) -> None:
    """Embed and predict in this process (what the worker does), so the tracks are ready to label."""
    from annotations.worker.analysis import tracks_embed
    from annotations.worker.prediction import tracks_predict

    ids = [track.pk for track in tracks]
    tracks_embed(track_ids=ids)
    tracks_predict(track_ids=ids)
