"""Temperature scaling: one scalar that makes a head's reported confidences match how often it is right."""

from __future__ import annotations

import math

import numpy as np

from ml.heads import softmax
from ml.metrics import negative_log_likelihood

TEMPERATURE_RANGE = (0.05, 20.0)
# Standard deviation of the Gaussian prior on log T. A small or perfectly classified validation set keeps
# lowering NLL as T → 0; the prior, whose weight shrinks as 1/n, stops that from making a head wildly
# overconfident, while a large validation set overrides it.
LOG_TEMPERATURE_PRIOR = 1.0


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising held-out NLL of softmax(logits / T) plus a weak prior on log T.

    `logits` is (n_tracks, 24); for a head, pass `track_log_probabilities` (what `predict_windows`
    divides by T). A log-spaced grid that contains 1.0 is refined by golden-section search on log T;
    since the prior is zero at T = 1, the NLL at the result is never worse than uncalibrated.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} do not match")
    if len(labels) == 0:
        return 1.0
    prior_weight = 1.0 / (2 * LOG_TEMPERATURE_PRIOR**2 * len(labels))

    def objective(log_t: float) -> float:
        return negative_log_likelihood(softmax(logits / math.exp(log_t)), labels) + prior_weight * log_t**2

    low_t, high_t = TEMPERATURE_RANGE
    grid = np.sort(np.append(np.linspace(math.log(low_t), math.log(high_t), 41), 0.0))
    values = [objective(x) for x in grid]
    best = int(np.argmin(values))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(25):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if objective(a) < objective(b):
            high = b
        else:
            low = a
    refined = (low + high) / 2
    return float(math.exp(refined if objective(refined) <= values[best] else grid[best]))
