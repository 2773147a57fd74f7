"""The one evaluation of a key head on labelled tracks: what the CLI, the training search, the
simulation and the worker report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.heads import KeyHead, predict_tracks
from ml.keys import Key
from ml.metrics import (
    bootstrap_interval,
    expected_calibration_error,
    item_scores,
    key_metrics,
    negative_log_likelihood,
    paired_difference,
)


def track_scores(probabilities: np.ndarray, keys: Sequence[Key]) -> np.ndarray:
    """mir_eval's weighted score of each track's most probable key, in order: what paired comparisons pair."""
    estimated = [Key.from_index(int(index)) for index in np.asarray(probabilities).argmax(axis=1)]
    return item_scores(list(keys), estimated)


def metrics_from_probabilities(probabilities: np.ndarray, keys: Sequence[Key]) -> dict:
    """key_metrics (weighted, outcome fractions, confusion, n) of the argmax, plus ECE, NLL and
    `weighted_ci95`, the 95 % bootstrap interval of `weighted` over these tracks."""
    probabilities = np.asarray(probabilities)
    if len(probabilities) != len(keys):
        raise ValueError(f"{len(probabilities)} predictions for {len(keys)} keys")
    labels = np.array([key.index for key in keys], dtype=np.int64)
    estimated = [Key.from_index(int(index)) for index in probabilities.argmax(axis=1)]
    metrics = key_metrics(list(keys), estimated)
    metrics["weighted_ci95"] = bootstrap_interval(item_scores(list(keys), estimated))
    metrics["ece"] = expected_calibration_error(probabilities, labels)
    metrics["nll"] = negative_log_likelihood(probabilities, labels)
    return metrics


def head_evaluate(head: KeyHead, tracks: Sequence[np.ndarray], keys: Sequence[Key]) -> dict:
    """Metrics of `head` (with its temperature) on tracks' window embeddings and their true keys.

    Returns key_metrics' fields (`weighted`, `correct`, `fifth`, `relative`, `parallel`, `other`, …,
    `confusion`, `n`) plus `weighted_ci95`, `ece` and `nll`.
    """
    if not tracks:
        raise ValueError("no tracks to evaluate on")
    return metrics_from_probabilities(predict_tracks(head, list(tracks)), keys)


def summary_metrics(probabilities: np.ndarray, keys: Sequence[Key]) -> dict:
    """metrics_from_probabilities without the 24×24 confusion matrix: what a stored comparison keeps."""
    metrics = metrics_from_probabilities(probabilities, keys)
    return {name: value for name, value in metrics.items() if name != "confusion"}


def before_after(before: np.ndarray, after: np.ndarray, keys: Sequence[Key]) -> dict:
    """Two models' track probabilities on the same labelled tracks (e.g. a network before and after
    pretraining): each side's summary metrics and the paired gain in mir_eval's weighted score, with its
    95 % bootstrap interval."""
    if not keys:
        raise ValueError("no tracks to compare on")
    return {
        "n": len(keys),
        "before": summary_metrics(before, keys),
        "after": summary_metrics(after, keys),
        "gain": paired_difference(track_scores(after, keys), track_scores(before, keys)),
    }
