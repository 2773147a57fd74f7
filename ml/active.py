"""Active-learning scores: which unlabeled track teaches the model most. numpy only (no torch)."""

from __future__ import annotations

import numpy as np

STRATEGIES = ("entropy", "margin", "least_confidence", "random", "diverse")


def uncertainty_scores(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Per-track scores, each 'higher = more uncertain', for probabilities of shape (n, 24).

    entropy in nats; margin score = 1 - (p1 - p2); least_confidence = 1 - p1.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1:
        probabilities = probabilities[None, :]
    clipped = np.clip(probabilities, 1e-12, 1.0)
    entropy = -(probabilities * np.log(clipped)).sum(axis=1)
    ranked = np.sort(probabilities, axis=1)
    best, second = ranked[:, -1], ranked[:, -2]
    return {
        "entropy": entropy,
        "margin": 1.0 - (best - second),
        "least_confidence": 1.0 - best,
    }


def stable_random_score(content_hash: str, salt: str = "") -> float:
    """A deterministic pseudo-random score in [0, 1) from a content hash, for the `random` strategy."""
    import hashlib

    digest = hashlib.sha256((salt + content_hash).encode()).hexdigest()
    return int(digest[:13], 16) / float(1 << 52)


def k_center_greedy(
    candidates: np.ndarray,
    *,
    n_select: int,
    anchors: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    uncertainty_weight: float = 0.5,
) -> list[int]:
    """Pick `n_select` rows of `candidates` that cover the embedding space (k-center greedy), each pick
    maximising distance to everything chosen or already labeled (`anchors`), scaled up by uncertainty.

    Near-duplicates are never picked back to back: once one is chosen its twin's distance drops to ~0.
    Returns indices in pick order, so the order is also a serving order.
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    n = len(candidates)
    if n == 0 or n_select <= 0:
        return []
    norms = np.linalg.norm(candidates, axis=1, keepdims=True)
    points = candidates / np.maximum(norms, 1e-12)
    if anchors is not None and len(anchors):
        anchor_points = np.asarray(anchors, dtype=np.float64)
        anchor_points = anchor_points / np.maximum(
            np.linalg.norm(anchor_points, axis=1, keepdims=True), 1e-12
        )
        distance = np.full(n, np.inf)
        for start in range(0, len(anchor_points), 4096):
            block = anchor_points[start : start + 4096]
            distance = np.minimum(
                distance, np.sqrt(np.maximum(_squared_distances(points, block), 0)).min(axis=1)
            )
    else:
        distance = np.full(n, np.inf)
    if uncertainty is None:
        weight = np.ones(n)
    else:
        u = np.asarray(uncertainty, dtype=np.float64)
        span = u.max() - u.min()
        u = (u - u.min()) / span if span > 0 else np.ones(n)
        weight = (1 - uncertainty_weight) + uncertainty_weight * u
    chosen: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(min(n_select, n)):
        if np.isinf(distance).all():
            score = weight.copy()  # nothing chosen yet: start from the most uncertain track
        else:
            score = np.where(np.isinf(distance), 4.0, distance) * weight
        score[~available] = -np.inf
        pick = int(np.argmax(score))
        chosen.append(pick)
        available[pick] = False
        distance = np.minimum(distance, np.linalg.norm(points - points[pick], axis=1))
    return chosen


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
