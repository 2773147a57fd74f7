"""Key metrics against hand-computed cases, calibration error on known probabilities, bootstrap intervals."""

import numpy as np
import pytest

from ml.evaluation import before_after, metrics_from_probabilities
from ml.keys import Key
from ml.metrics import (
    bootstrap_interval,
    calibrated_ece,
    expected_calibration_error,
    item_scores,
    key_metrics,
    negative_log_likelihood,
    paired_difference,
)

C = Key.parse("C major")
A_MINOR = Key.parse("A minor")

RELATION_CASES = [
    # (reference, estimate, relation, mir_eval weighted score)
    (C, Key.parse("C major"), "correct", 1.0),
    (C, Key.parse("G major"), "fifth", 0.5),
    (A_MINOR, Key.parse("E minor"), "fifth", 0.5),
    (C, Key.parse("A minor"), "relative", 0.3),
    (A_MINOR, Key.parse("C major"), "relative", 0.3),
    (C, Key.parse("C minor"), "parallel", 0.2),
    (A_MINOR, Key.parse("A major"), "parallel", 0.2),
    (C, Key.parse("D major"), "other", 0.0),
    (C, Key.parse("G minor"), "other", 0.0),  # a fifth above but the other mode
    (C, Key.parse("F major"), "other", 0.0),  # a fifth below: 0 for mir_eval 0.8.2
]


@pytest.mark.parametrize(("reference", "estimate", "relation", "score"), RELATION_CASES)
def test_each_relation(reference, estimate, relation, score):
    metrics = key_metrics([reference], [estimate])
    assert metrics["weighted"] == pytest.approx(score)
    assert metrics[relation] == 1.0
    assert sum(metrics[name] for name in ("correct", "fifth", "relative", "parallel", "other")) == 1.0
    assert metrics["n"] == 1


def test_mixture_hand_computed():
    reference = [C, C, C, C, C, A_MINOR, A_MINOR, A_MINOR]
    estimated = [
        Key.parse("C major"),  # correct 1.0
        Key.parse("G major"),  # fifth 0.5
        Key.parse("F major"),  # fifth below: other, 0.0 (0.5 under MIREX)
        Key.parse("A minor"),  # relative 0.3
        Key.parse("Eb major"),  # other 0.0
        Key.parse("A minor"),  # correct 1.0
        Key.parse("A major"),  # parallel 0.2
        Key.parse("D minor"),  # fifth below: other, 0.0 (0.5 under MIREX)
    ]
    metrics = key_metrics(reference, estimated)
    assert metrics["n"] == 8
    assert metrics["weighted"] == pytest.approx((1.0 + 0.5 + 0.3 + 1.0 + 0.2) / 8)
    assert metrics["weighted_fifth_either"] == pytest.approx((1.0 + 0.5 + 0.5 + 0.3 + 1.0 + 0.2 + 0.5) / 8)
    assert metrics["correct"] == pytest.approx(2 / 8)
    assert metrics["fifth"] == pytest.approx(1 / 8)
    assert metrics["relative"] == pytest.approx(1 / 8)
    assert metrics["parallel"] == pytest.approx(1 / 8)
    assert metrics["other"] == pytest.approx(3 / 8)
    assert metrics["fifth_below"] == pytest.approx(2 / 8)


def test_confusion_rows_are_reference_columns_estimate():
    metrics = key_metrics([C, C, A_MINOR], [Key.parse("G major"), C, C])
    confusion = np.array(metrics["confusion"])
    assert confusion.shape == (24, 24)
    assert confusion.sum() == 3
    assert confusion[C.index, Key.parse("G major").index] == 1
    assert confusion[C.index, C.index] == 1
    assert confusion[A_MINOR.index, C.index] == 1


def test_no_key_follows_mir_eval():
    metrics = key_metrics([None, None, C], [None, C, None])
    # X vs X is a match for mir_eval; X against a key is 'other'.
    assert metrics["weighted"] == pytest.approx(1 / 3)
    assert metrics["correct"] == pytest.approx(1 / 3)
    assert metrics["other"] == pytest.approx(2 / 3)
    assert np.array(metrics["confusion"]).sum() == 0


def test_empty_input_has_no_division_error():
    metrics = key_metrics([], [])
    assert metrics["n"] == 0
    assert metrics["weighted"] == 0.0 and metrics["other"] == 0.0


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="2 reference keys but 1"):
        key_metrics([C, C], [C])


def test_ece_of_perfectly_calibrated_and_overconfident_predictions():
    labels = np.zeros(10, dtype=int)
    # Confidence 0.8 and exactly 8 of 10 right: calibrated.
    calibrated = np.full((10, 24), 0.2 / 23)
    calibrated[:8, 0] = 0.8
    calibrated[8:, 1] = 0.8
    calibrated[8:, 0] = 0.2 / 23
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0.0, abs=1e-9)
    # Confidence 0.99 with the same 80 % accuracy: ECE is the gap, 0.19.
    overconfident = np.full((10, 24), 0.01 / 23)
    overconfident[:8, 0] = 0.99
    overconfident[8:, 1] = 0.99
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.19)
    assert expected_calibration_error(np.zeros((0, 24)), np.zeros(0)) == 0.0


def test_calibrated_ece_is_the_sampling_floor_and_shrinks_with_more_tracks():
    def predictions(n: int) -> np.ndarray:
        confidence = np.random.default_rng(1).uniform(0.4, 1.0, n)
        probabilities = np.tile(((1 - confidence) / 23)[:, None], (1, 24))
        probabilities[:, 0] = confidence
        return probabilities

    small, large = calibrated_ece(predictions(124), draws=300), calibrated_ece(predictions(20_000), draws=20)
    # A perfectly calibrated model's ECE on 124 tracks is mostly noise; on 20,000 it nearly vanishes.
    assert 0.04 < small < 0.12
    assert large < 0.01
    # Always right at confidence 1: nothing to draw, no error.
    certain = np.zeros((50, 24))
    certain[:, 3] = 1.0
    assert calibrated_ece(certain) == 0.0 and calibrated_ece(np.zeros((0, 24))) == 0.0


def test_negative_log_likelihood():
    probabilities = np.full((2, 24), 1 / 24)
    assert negative_log_likelihood(probabilities, np.array([0, 5])) == pytest.approx(np.log(24))


def test_item_scores_are_what_weighted_averages():
    reference = [C, C, C, A_MINOR, None]
    estimated = [C, Key.parse("G major"), Key.parse("A minor"), Key.parse("A major"), None]
    scores = item_scores(reference, estimated)
    assert scores.tolist() == pytest.approx([1.0, 0.5, 0.3, 0.2, 1.0])
    assert key_metrics(reference, estimated)["weighted"] == pytest.approx(scores.mean())
    with pytest.raises(ValueError, match="2 reference keys but 1"):
        item_scores([C, C], [C])


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_tracks():
    rng = np.random.default_rng(3)
    small = rng.choice([1.0, 0.3, 0.0], size=124, p=[0.87, 0.07, 0.06])
    low, high = bootstrap_interval(small)
    assert low < small.mean() < high
    # 124 pieces near 0.9: a normal approximation gives ±1.96·sd/√n; the bootstrap agrees within 20 %.
    half_width = 1.96 * small.std() / np.sqrt(len(small))
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.2)
    large = rng.choice([1.0, 0.3, 0.0], size=124 * 64, p=[0.87, 0.07, 0.06])
    large_low, large_high = bootstrap_interval(large, draws=400)
    assert (large_high - large_low) < (high - low) / 5  # √64 = 8× narrower, up to resampling noise
    # Same seed, same interval; a constant has no spread; a wider level gives a wider interval.
    assert bootstrap_interval(small) == [low, high]
    assert bootstrap_interval(np.full(50, 0.75)) == pytest.approx([0.75, 0.75])
    wide_low, wide_high = bootstrap_interval(small, level=0.99)
    assert wide_low <= low and wide_high >= high
    assert bootstrap_interval([]) == [0.0, 0.0]


def test_paired_differences_resolve_what_separate_intervals_cannot():
    rng = np.random.default_rng(4)
    # Two systems that agree on most pieces; the second gains 0.3 on 10 of 124.
    first = rng.choice([1.0, 0.3, 0.0], size=124, p=[0.85, 0.09, 0.06])
    second = first.copy()
    second[np.flatnonzero(first == 0.3)[:10]] = 0.6  # a relative key now a fifth: a small, consistent lead
    low, high = bootstrap_interval(second - first)
    assert 0.0 < low < high
    first_low, first_high = bootstrap_interval(first)
    assert bootstrap_interval(second)[0] < first_high  # the separate intervals overlap


def test_bootstrap_interval_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="one value per track"):
        bootstrap_interval(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([1.0, 0.0], level=95)


def test_metrics_from_probabilities_report_the_interval_of_their_weighted_score():
    probabilities = np.full((40, 24), 0.01)
    keys = [Key.from_index(i % 24) for i in range(40)]
    for row, key in enumerate(keys):
        probabilities[row, key.index if row % 4 else key.relative.index] = 0.77
    metrics = metrics_from_probabilities(probabilities, keys)
    low, high = metrics["weighted_ci95"]
    assert metrics["weighted"] == pytest.approx((30 + 10 * 0.3) / 40)
    assert low < metrics["weighted"] < high


def test_paired_difference_is_the_mean_gain_with_its_interval_and_refuses_mismatched_tracks():
    before = np.array([1.0, 0.3, 0.0, 0.5] * 30)
    after = np.array([1.0, 1.0, 0.3, 0.5] * 30)
    gain = paired_difference(after, before)
    assert gain["mean"] == pytest.approx((0.7 + 0.3) / 4)
    assert gain["ci95"] == bootstrap_interval(after - before) and gain["ci95"][0] > 0
    assert paired_difference([], [])["mean"] == 0.0
    with pytest.raises(ValueError, match="reference"):
        paired_difference([1.0, 0.0], [1.0])


def test_before_after_scores_both_sides_on_the_same_tracks_and_pairs_the_gain():
    keys = [Key.from_index(i % 24) for i in range(48)]
    right = np.full((48, 24), 0.01)
    right[np.arange(48), [key.index for key in keys]] = 0.77
    relative = np.full((48, 24), 0.01)
    relative[np.arange(48), [key.relative.index for key in keys]] = 0.77
    before = np.where(np.arange(48)[:, None] % 2 == 0, right, relative)  # half read as the relative key
    comparison = before_after(before, right, keys)
    assert comparison["n"] == 48
    assert comparison["before"]["weighted"] == pytest.approx((24 + 24 * 0.3) / 48)
    assert comparison["before"]["relative"] == pytest.approx(0.5)
    assert comparison["after"]["weighted"] == 1.0 and "confusion" not in comparison["after"]
    assert comparison["gain"]["mean"] == pytest.approx(1.0 - (24 + 24 * 0.3) / 48)
    low, high = comparison["gain"]["ci95"]
    assert 0 < low <= comparison["gain"]["mean"] <= high
    with pytest.raises(ValueError, match="no tracks"):
        before_after(before[:0], right[:0], [])
