"""ml.active: uncertainty scores and the diversity-aware k-center greedy selection."""

import numpy as np
import pytest

from ml.active import k_center_greedy, stable_random_score, uncertainty_scores


def test_scores_rank_hand_made_vectors():
    one_hot = np.eye(24)[0]
    uniform = np.full(24, 1 / 24)
    scores = uncertainty_scores(np.stack([one_hot, uniform]))
    assert scores["entropy"][0] == pytest.approx(0, abs=1e-9)
    assert scores["entropy"][1] == pytest.approx(np.log(24))
    assert scores["margin"].tolist() == pytest.approx([0.0, 1.0])
    assert scores["least_confidence"].tolist() == pytest.approx([0.0, 1 - 1 / 24])


def test_k_center_greedy_avoids_near_duplicates():
    rng = np.random.default_rng(0)
    clusters = rng.normal(size=(4, 16)) * 5
    # 4 clusters, each with 5 near-identical members; all equally uncertain.
    points = np.concatenate([centre + rng.normal(scale=0.01, size=(5, 16)) for centre in clusters])
    picked = k_center_greedy(points, n_select=4)
    assert sorted(index // 5 for index in picked) == [0, 1, 2, 3]  # one per cluster, never a twin


def test_k_center_greedy_starts_from_uncertainty_and_respects_anchors():
    points = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    uncertainty = np.array([0.1, 0.9, 0.5])
    assert k_center_greedy(points, n_select=1, uncertainty=uncertainty)[0] == 1
    # Point 0 is already labeled (anchor): its neighbourhood is covered, so the far point comes first.
    picked = k_center_greedy(points, n_select=2, anchors=np.array([[1.0, 0.01]]))
    assert picked[0] == 2
    assert k_center_greedy(np.zeros((0, 2)), n_select=3) == []


def test_stable_random_score():
    assert stable_random_score("abc") == stable_random_score("abc")
    assert 0 <= stable_random_score("abc") < 1
    assert stable_random_score("abc") != stable_random_score("abd")
