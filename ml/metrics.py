"""Key-estimation metrics: mir_eval's weighted score, the error breakdown papers report, and calibration."""

from __future__ import annotations

from collections.abc import Sequence

import mir_eval
import numpy as np

from ml.keys import RELATIONS, Key, key_relation

# mir_eval's spelling for "no key"; its weighted score gives 1.0 for X vs X and 0.0 for X vs any key.
NO_KEY = "X"
_FIFTH = 7


def _mir_eval_text(key: Key | None) -> str:
    return NO_KEY if key is None else key.mir_eval


def item_scores(reference: Sequence[Key | None], estimated: Sequence[Key | None]) -> np.ndarray:
    """mir_eval's weighted score of every (reference, estimate) pair: the numbers `weighted` averages."""
    if len(reference) != len(estimated):
        raise ValueError(f"{len(reference)} reference keys but {len(estimated)} estimates")
    return np.array(
        [
            float(mir_eval.key.weighted_score(_mir_eval_text(ref), _mir_eval_text(est)))
            for ref, est in zip(reference, estimated, strict=True)
        ],
        dtype=np.float64,
    )


def bootstrap_interval(
    values: Sequence[float] | np.ndarray, *, level: float = 0.95, draws: int = 2000, seed: int = 0
) -> list[float]:
    """Percentile-bootstrap interval of the mean of `values` (one per track): how far a score measured
    on this many tracks could move on another draw of tracks like them. On devbench's 124 test pieces a
    weighted score near 0.9 is uncertain by about ±0.05 (95 %), so one system's smaller lead over another
    is a finding only when the paired interval says so.

    For a paired comparison of two systems on the same tracks, pass the per-track differences. Resamples
    in chunks, so a large evaluation does not allocate draws × n indices at once.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected one value per track, got shape {values.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if len(values) == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    means = np.empty(draws, dtype=np.float64)
    chunk = max(1, 2_000_000 // len(values))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        means[start : start + size] = values[rng.integers(0, len(values), size=(size, len(values)))].mean(
            axis=1
        )
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def paired_difference(scores: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> dict:
    """Two systems scored on the same tracks: the mean per-track difference and its 95 % bootstrap
    interval (much narrower than the two scores' own intervals, since track difficulty cancels)."""
    scores, reference = np.asarray(scores, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if scores.shape != reference.shape:
        raise ValueError(f"{scores.shape} scores against {reference.shape} reference scores")
    difference = scores - reference
    return {
        "mean": float(difference.mean()) if len(difference) else 0.0,
        "ci95": bootstrap_interval(difference),
    }


def key_metrics(reference: Sequence[Key | None], estimated: Sequence[Key | None]) -> dict:
    """Mean weighted score, the correct/fifth/relative/parallel/other fractions and a 24×24 confusion.

    `weighted` and the fractions follow mir_eval 0.8.2, which counts only an estimate a fifth ABOVE the
    reference as 0.5. MIREX also counts a fifth below, so `fifth_below` (a part of `other`) and
    `weighted_fifth_either` (the weighted score with both directions at 0.5) are reported as well.
    Confusion rows are reference indices and columns estimate indices; pairs with a None are left out.
    """
    if len(reference) != len(estimated):
        raise ValueError(f"{len(reference)} reference keys but {len(estimated)} estimates")
    n = len(reference)
    counts = dict.fromkeys(RELATIONS, 0)
    fifth_below = 0
    weighted_total = float(item_scores(reference, estimated).sum())
    confusion = np.zeros((24, 24), dtype=np.int64)
    for ref, est in zip(reference, estimated, strict=True):
        counts[key_relation(ref, est)] += 1
        if ref is not None and est is not None:
            confusion[ref.index, est.index] += 1
            if est == ref.transpose(-_FIFTH):
                fifth_below += 1
    denominator = max(n, 1)
    metrics: dict = {"weighted": weighted_total / denominator}
    metrics.update({relation: counts[relation] / denominator for relation in RELATIONS})
    metrics["fifth_below"] = fifth_below / denominator
    metrics["weighted_fifth_either"] = (weighted_total + 0.5 * fifth_below) / denominator
    metrics["n"] = n
    metrics["confusion"] = confusion.tolist()
    return metrics


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top prediction: bin by confidence, average |accuracy − confidence| weighted by bin size."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(f"probabilities {probabilities.shape} and labels {labels.shape} do not match")
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    # Bins are (lo, hi]; confidence 0 cannot occur for a softmax, so the first bin's open end loses nothing.
    bin_of = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        in_bin = bin_of == b
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def calibrated_ece(probabilities: np.ndarray, *, n_bins: int = 15, draws: int = 1000, seed: int = 0) -> float:
    """The ECE a perfectly calibrated predictor with these confidences would show on this many tracks.

    Each draw marks every top prediction right with probability equal to its confidence, so the
    expected gap is zero and what remains is the estimate's own sampling noise: the floor against
    which a measured ECE on a small test set should be read (mean over `draws`).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(probabilities) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    top = probabilities.argmax(axis=1)
    wrong = (top + 1) % probabilities.shape[1]
    rng = np.random.default_rng(seed)
    errors = [
        expected_calibration_error(
            probabilities, np.where(rng.random(len(top)) < confidence, top, wrong), n_bins=n_bins
        )
        for _ in range(draws)
    ]
    return float(np.mean(errors))


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log p(true key); probabilities are clipped so a zero does not give infinity."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 0.0
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())
