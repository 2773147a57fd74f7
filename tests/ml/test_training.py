"""Training heads: transposition augmentation, the loop, calibration, search, and the synthetic acceptance test."""

import time

import numpy as np
import pytest
import torch

from ml.calibration import TEMPERATURE_RANGE, fit_temperature_to_accuracy
from ml.heads import (
    HeadConfig,
    HeadEnsemble,
    apply_temperature,
    predict_tracks,
    softmax,
    track_log_probabilities,
)
from ml.keys import ALL_KEYS, Key, Mode
from ml.metrics import key_metrics, negative_log_likelihood
from ml.training import (
    SEEDS_PER_MEMBER,
    Candidate,
    CrossValidation,
    Scored,
    TrainConfig,
    TrainingExample,
    cross_validate,
    default_candidates,
    ensemble_members,
    fit_temperature,
    fold_assignment,
    roll_pitch_classes,
    search_heads,
    split_validation,
    train_head,
    train_key_model,
    transposed_views,
)

# Krumhansl–Kessler key profiles, tonic first: honest stand-ins for cyclic chroma-like embeddings.
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
CHANNELS = 3


def cyclic_track(key: Key, rng: np.random.Generator, *, noise: float = 1.5, n_windows: int = 4) -> np.ndarray:
    """(n_windows, CHANNELS * 12): each channel the key's profile rolled to its tonic, scaled, plus noise."""
    profile = np.roll(MAJOR if key.mode == Mode.MAJOR else MINOR, key.tonic)
    gains = rng.uniform(0.5, 1.5, size=(n_windows, CHANNELS, 1))
    windows = gains * profile + rng.normal(0.0, noise, size=(n_windows, CHANNELS, 12))
    return windows.reshape(n_windows, CHANNELS * 12).astype(np.float32)


def cyclic_examples(keys, *, seed: int, noise: float = 1.5) -> list[TrainingExample]:
    rng = np.random.default_rng(seed)
    return [TrainingExample(window_embeddings=cyclic_track(key, rng, noise=noise), key=key) for key in keys]


def weighted_score(head, examples) -> float:
    probabilities = predict_tracks(head, [example.window_embeddings for example in examples])
    estimated = [Key.from_index(int(i)) for i in probabilities.argmax(axis=1)]
    return key_metrics([example.key for example in examples], estimated)["weighted"]


# --- augmentation ------------------------------------------------------------------------------------


def test_rolling_transposes_the_embedding_exactly():
    rng = np.random.default_rng(0)
    key = Key.parse("D minor")
    clean = cyclic_track(key, np.random.default_rng(1), noise=0.0)
    for k in (-6, -1, 3, 5):
        rolled = roll_pitch_classes(clean, k)
        expected = cyclic_track(key.transpose(k), np.random.default_rng(1), noise=0.0)
        np.testing.assert_allclose(rolled, expected, rtol=1e-6)
    noisy = cyclic_track(key, rng)
    np.testing.assert_array_equal(roll_pitch_classes(roll_pitch_classes(noisy, 5), -5), noisy)


def test_rolling_matches_the_pitch_class_backbone_layout():
    pitchclass = pytest.importorskip("ml.backbones.pitchclass")
    embeddings = np.random.default_rng(2).normal(size=(3, pitchclass.EMBEDDING_DIM)).astype(np.float32)
    for k in (-6, 1, 7):
        np.testing.assert_array_equal(
            roll_pitch_classes(embeddings, k),
            pitchclass.PitchClassBackbone().transpose_embeddings(embeddings, k),
        )


def test_cyclic_views_cover_every_key_of_the_mode_once():
    example = cyclic_examples([Key.parse("E minor")], seed=0)[0]
    views = transposed_views(example, cyclic=True)
    keys = [key for _, key in views]
    assert sorted(key.tonic for key in keys) == list(range(12))
    assert all(key.mode == Mode.MINOR for key in keys)


def test_non_cyclic_views_use_the_stored_audio_shifts():
    windows = np.zeros((2, 8), dtype=np.float32)
    shifted = {-2: windows + 1, 0: windows + 9, 3: windows + 2}
    example = TrainingExample(window_embeddings=windows, key=Key.parse("C major"), shifted=shifted)
    views = transposed_views(example, cyclic=False)
    assert [key.mir_eval for _, key in views] == ["C major", "Bb major", "Eb major"]
    assert views[1][0][0, 0] == 1 and views[2][0][0, 0] == 2
    assert (
        len(
            transposed_views(
                TrainingExample(window_embeddings=windows, key=Key.parse("C major")), cyclic=False
            )
        )
        == 1
    )


# --- the loop ------------------------------------------------------------------------------------------


def test_overfits_one_batch():
    rng = np.random.default_rng(0)
    keys = [ALL_KEYS[i] for i in rng.integers(0, 24, size=32)]
    # Random embeddings with random labels: only memorisation can fit them.
    examples = [
        TrainingExample(window_embeddings=rng.normal(size=(1, 16)).astype(np.float32), key=k) for k in keys
    ]
    config = HeadConfig(backbone="test", input_dim=16, hidden_dim=256, dropout=0.0)
    settings = TrainConfig(learning_rate=1e-2, weight_decay=0.0, epochs=15)
    head = train_head(train=examples, config=config, train_config=settings, seed=0, cyclic=False)
    assert weighted_score(head, examples) == 1.0


def test_training_is_seeded_and_reports_progress():
    examples = cyclic_examples(ALL_KEYS, seed=3)
    config = HeadConfig(backbone="test", input_dim=36, hidden_dim=64)
    settings = TrainConfig(epochs=3)
    fractions = []
    first = train_head(
        train=examples, config=config, train_config=settings, seed=7, cyclic=True, progress=fractions.append
    )
    second = train_head(train=examples, config=config, train_config=settings, seed=7, cyclic=True)
    tracks = [example.window_embeddings for example in examples]
    np.testing.assert_array_equal(predict_tracks(first, tracks), predict_tracks(second, tracks))
    assert fractions == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_cyclic_augmentation_generalises_to_unseen_keys():
    seen = [key for key in ALL_KEYS if key.tonic in (0, 7)]  # C and G, major and minor
    unseen = [key for key in ALL_KEYS if key.tonic not in (0, 7)]
    config = HeadConfig(backbone="test", input_dim=36, hidden_dim=256, dropout=0.5)
    head = train_head(
        train=cyclic_examples(seen * 5, seed=4),
        config=config,
        train_config=TrainConfig(epochs=20),
        seed=0,
        cyclic=True,
    )
    assert weighted_score(head, cyclic_examples(unseen, seed=5)) >= 0.9


def test_dimension_mismatch_is_refused():
    config = HeadConfig(backbone="test", input_dim=10)
    with pytest.raises(ValueError, match="36 features"):
        train_head(train=cyclic_examples(ALL_KEYS[:2], seed=0), config=config, seed=0, cyclic=True)


# --- calibration ----------------------------------------------------------------------------------------


def overconfident_toy_set(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """300 tracks, 70 % right and ~100 % sure of every answer: (logits, labels)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 24, size=300)
    predicted = np.where(rng.random(300) < 0.7, labels, (labels + 5) % 24)
    logits = np.zeros((300, 24))
    logits[np.arange(300), predicted] = 12.0
    return logits, labels


def test_temperature_fitting_lowers_nll_on_an_overconfident_toy_set():
    logits, labels = overconfident_toy_set(0)
    temperature = fit_temperature(logits, labels)
    assert temperature > 1.5
    before = negative_log_likelihood(softmax(logits), labels)
    after = negative_log_likelihood(softmax(logits / temperature), labels)
    assert after < 0.6 * before


def test_temperature_sharpens_an_underconfident_set_and_never_hurts():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 24, size=200)
    logits = rng.normal(0, 0.3, size=(200, 24))
    logits[np.arange(200), labels] += 1.0  # always right, but timid
    temperature = fit_temperature(logits, labels)
    assert temperature < 0.7
    assert negative_log_likelihood(softmax(logits / temperature), labels) < negative_log_likelihood(
        softmax(logits), labels
    )
    assert fit_temperature(np.zeros((0, 24)), np.zeros(0)) == 1.0


# --- search and the entry point ---------------------------------------------------------------------------


def test_candidates_follow_the_paper_grid_with_a_good_config_first():
    candidates = default_candidates(backbone_name="test", input_dim=36)
    first = candidates[0].head
    assert (first.hidden_layers, first.hidden_dim, first.dropout) == (1, 2048, 0.9)
    heads = [c.head for c in candidates]
    settings = {(h.hidden_layers, h.hidden_dim, h.dropout) for h in heads if h.hidden_layers}
    assert len(settings) == 28 and (2, 8192, 0.9) not in settings
    assert any(h.hidden_layers == 0 for h in heads)
    assert {c.train.learning_rate for c in candidates} == {1e-3, 3e-4}


def test_search_within_a_time_budget_keeps_the_best_trial():
    examples = cyclic_examples(ALL_KEYS * 2, seed=6)
    train, validation = split_validation(examples, seed=0)
    result = search_heads(
        train=train,
        validation=validation,
        backbone_name="test",
        cyclic=True,
        time_budget_s=2.0,
        seed=0,
    )
    assert len(result.trials) >= 1
    assert max(trial["weighted"] for trial in result.trials) == pytest.approx(
        weighted_score(result.best_head, validation)
    )
    assert result.best_config.temperature == result.best_head.temperature


def test_accuracy_temperature_matches_confidence_to_accuracy_both_ways():
    overconfident, labels = overconfident_toy_set(2)
    rng = np.random.default_rng(2)
    underconfident = rng.normal(0, 0.3, size=(300, 24))
    underconfident[np.arange(300), labels] += 1.0  # always right, but timid
    for logits, softer in ((overconfident, True), (underconfident, False)):
        right = int((logits.argmax(axis=1) == labels).sum())
        temperature = fit_temperature_to_accuracy(logits, labels)
        assert (temperature > 1.0) == softer
        calibrated = softmax(logits / temperature)
        assert calibrated.max(axis=1).mean() == pytest.approx((right + 1) / 302, abs=1e-4)
        assert np.array_equal(calibrated.argmax(axis=1), logits.argmax(axis=1))
    # All right on a small set: smoothing keeps T off the floor of its range.
    small = underconfident[:10]
    assert fit_temperature_to_accuracy(small, labels[:10]) > TEMPERATURE_RANGE[0] * 1.5
    assert fit_temperature_to_accuracy(np.zeros((0, 24)), np.zeros(0)) == 1.0
    with pytest.raises(ValueError):
        fit_temperature_to_accuracy(np.zeros((3, 24)), np.zeros(2))


def test_train_key_model_selects_by_cross_validation_and_calibrates_out_of_fold():
    examples = cyclic_examples(ALL_KEYS * 2, seed=8, noise=3.0)
    candidates = [
        Candidate(
            head=HeadConfig(backbone="test", input_dim=36, hidden_dim=128, dropout=0.5),
            train=TrainConfig(epochs=10),
        ),
        Candidate(
            head=HeadConfig(backbone="test", input_dim=36, hidden_layers=0), train=TrainConfig(epochs=10)
        ),
    ]
    model = train_key_model(
        train=examples, backbone_name="test", cyclic=True, time_budget_s=30, seed=0, candidates=candidates
    )
    validation = model.metrics_validation
    # Out-of-fold: every label was predicted once by a head that did not see it.
    assert validation["n"] == len(examples) and validation["folds"] == 5
    assert len(model.trials) == 2
    # Both candidates finished well inside the budget, so the model is their ensemble, best first, each
    # trained on all labels with SEEDS_PER_MEMBER seeds.
    best = max(model.trials, key=lambda trial: (trial["weighted"], -trial["nll"]))
    assert isinstance(model.head, HeadEnsemble) and len(model.config.members) == 2 * SEEDS_PER_MEMBER
    best_name = best["config"].split(" lr ")[0]
    assert model.config.describe().startswith(f"mean of {best_name} ×{SEEDS_PER_MEMBER} + ")
    assert all(trial["in_ensemble"] and trial["seeds"] == SEEDS_PER_MEMBER for trial in model.trials)
    assert validation["cut_by_budget"] is False
    # The seeds differ: no two copies of a member have the same weights.
    first, again = model.head.members[0], model.head.members[2]
    assert first.config.shape() == again.config.shape()
    assert any(
        not torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True)
    )
    # The temperature makes the out-of-fold mean confidence their (smoothed) accuracy.
    right = round(validation["correct"] * validation["n"])
    assert validation["mean_confidence"] == pytest.approx((right + 1) / (validation["n"] + 2), abs=1e-4)
    assert 0.0 <= model.ece_after <= 1.0 and model.ece_before is not None
    assert model.config.temperature == validation["temperature"]
    # The final head is trained on every label, so it fits the training set at least as well as the folds.
    assert weighted_score(model.head, examples) >= validation["weighted"] - 1e-9
    # The temperature is what predict applies to the window-averaged probabilities.
    tracks = [example.window_embeddings for example in examples[:3]]
    np.testing.assert_allclose(
        predict_tracks(model.head, tracks),
        apply_temperature(np.exp(track_log_probabilities(model.head, tracks)), model.config.temperature),
        atol=1e-6,
    )


def test_extra_seeds_are_trained_only_while_a_whole_round_fits_the_budget():
    examples = cyclic_examples(ALL_KEYS * 2, seed=8, noise=3.0)
    candidates = [
        Candidate(head=HeadConfig(backbone="test", input_dim=36, hidden_dim=h), train=TrainConfig(epochs=8))
        for h in (64, 128)
    ]
    # The budget is gone before selection ends: the winner is still trained on all labels once, and no
    # second round starts after the deadline.
    model = train_key_model(
        train=examples, backbone_name="test", cyclic=True, time_budget_s=0.01, seed=0, candidates=candidates
    )
    in_ensemble = [trial for trial in model.trials if trial.get("in_ensemble")]
    assert len(in_ensemble) == 1 and in_ensemble[0]["seeds"] == 1
    assert not isinstance(model.head, HeadEnsemble)
    assert model.metrics_validation["cut_by_budget"] is True


def test_within_its_budget_train_key_model_is_reproducible_and_reports_progress_throughout():
    examples = cyclic_examples(ALL_KEYS * 2, seed=8, noise=3.0)
    candidates = [
        Candidate(head=HeadConfig(backbone="test", input_dim=36, hidden_dim=h), train=TrainConfig(epochs=4))
        for h in (32, 64)
    ]
    runs = []
    for _ in range(2):
        fractions: list[float] = []
        model = train_key_model(
            train=examples,
            backbone_name="test",
            cyclic=True,
            time_budget_s=60,
            seed=3,
            candidates=candidates,
            progress=fractions.append,
        )
        runs.append((model, fractions))
    (first, fractions), (again, _) = runs
    # The whole recipe ran, so the same labels and seed give the same model, whatever the clock did.
    assert first.metrics_validation["cut_by_budget"] is False
    assert first.config.describe() == again.config.describe()
    assert first.config.temperature == again.config.temperature
    tracks = [example.window_embeddings for example in examples]
    np.testing.assert_array_equal(predict_tracks(first.head, tracks), predict_tracks(again.head, tracks))
    # Every epoch of every fold and final head reports (the worker's heartbeat), never going backwards.
    heads = len(candidates) * 5 + len(candidates) * SEEDS_PER_MEMBER
    assert len(fractions) >= heads * 4
    assert fractions == sorted(fractions) and 0.0 < fractions[0] and fractions[-1] == 1.0
    assert max(np.diff(fractions)) <= 0.1


def test_train_key_model_with_a_given_validation_set_uses_it():
    examples = cyclic_examples(ALL_KEYS * 2, seed=8, noise=3.0)
    train, validation = split_validation(examples, seed=0)
    candidates = [
        Candidate(
            head=HeadConfig(backbone="test", input_dim=36, hidden_layers=0), train=TrainConfig(epochs=5)
        )
    ]
    model = train_key_model(
        train=train,
        validation=validation,
        backbone_name="test",
        cyclic=True,
        time_budget_s=10,
        seed=0,
        candidates=candidates,
    )
    assert model.metrics_validation["n"] == len(validation)


def test_the_ensemble_takes_finished_candidates_best_first_while_their_training_fits():
    def scored(hidden_dim: int, seconds: float, cut_short: bool = False) -> Scored:
        config = HeadConfig(backbone="test", input_dim=36, hidden_dim=hidden_dim)
        trial = {"seconds": seconds, "cut_short": cut_short}
        return Scored(Candidate(head=config), np.zeros((4, 24)), trial)

    finished = [scored(64, 40.0), scored(128, 80.0), scored(32, 8.0)]  # best first
    selected = CrossValidation(ranked=[*finished, scored(256, 90.0, cut_short=True)], trials=[])
    assert selected.finished == finished
    # Training on all labels is planned at a quarter of a 5-fold trial: 10, 20 and 2 s here.
    assert ensemble_members(selected, folds=5, seconds_left=100) == finished
    assert ensemble_members(selected, folds=5, seconds_left=15) == [finished[0], finished[2]]
    assert ensemble_members(selected, folds=5, seconds_left=0) == [finished[0]]
    # Nothing finished: the best candidate that was cut short, alone.
    cut_short = CrossValidation(ranked=[scored(256, 90.0, cut_short=True)], trials=[])
    assert ensemble_members(cut_short, folds=5, seconds_left=100) == [cut_short.winner]


def test_cross_validation_ranks_finished_candidates_by_score_and_a_cut_short_one_last():
    examples = cyclic_examples(ALL_KEYS, seed=10, noise=3.0)
    candidates = [
        Candidate(
            head=HeadConfig(backbone="test", input_dim=36, hidden_layers=0), train=TrainConfig(epochs=3)
        ),
        Candidate(head=HeadConfig(backbone="test", input_dim=36, hidden_dim=32), train=TrainConfig(epochs=3)),
    ]
    common = {"candidates": candidates, "cyclic": True, "folds": 3, "seed": 0}
    selected = cross_validate(examples, deadline=time.monotonic() + 600, **common)
    scores = [(scored.trial["weighted"], -scored.trial["nll"]) for scored in selected.ranked]
    assert len(selected.ranked) == 2 and scores == sorted(scores, reverse=True)
    assert selected.finished == selected.ranked and selected.winner.out_of_fold.shape == (24, 24)
    # A deadline already past: the first candidate still runs (cut short), the second is not tried.
    late = cross_validate(examples, deadline=time.monotonic(), **common)
    assert [scored.trial["cut_short"] for scored in late.ranked] == [True] and late.finished == []


def test_folds_are_balanced_and_seeded():
    assignment = fold_assignment(23, folds=5, seed=1)
    assert sorted(np.bincount(assignment).tolist()) == [4, 4, 5, 5, 5]
    np.testing.assert_array_equal(assignment, fold_assignment(23, folds=5, seed=1))
    assert not np.array_equal(assignment, fold_assignment(23, folds=5, seed=2))


def test_few_labels_fall_back_to_a_fixed_config():
    examples = cyclic_examples(ALL_KEYS[:10], seed=9)
    model = train_key_model(train=examples, backbone_name="test", cyclic=True, time_budget_s=5, seed=0)
    assert model.trials[0]["fallback"] is True
    assert model.config.temperature == 1.0 and model.metrics_validation is None
    assert (model.config.hidden_layers, model.config.hidden_dim) == (1, 1024)


# --- acceptance: real synthetic audio through the real pitch-class backbone ------------------------------


def test_head_on_synthetic_tracks_generalises_to_other_keys_and_timbres():
    synth = pytest.importorskip("ml.synth")
    from ml.backbones.pitchclass import PitchClassBackbone

    torch.set_num_threads(1)
    backbone = PitchClassBackbone()
    test_timbre = "bell"
    train_timbres = [timbre for timbre in synth.TIMBRES if timbre != test_timbre]
    train_keys = [key for key in ALL_KEYS if key.tonic < 6]
    test_keys = [key for key in ALL_KEYS if key.tonic >= 6]

    def examples(keys, timbres, n, seed):
        made = []
        for i in range(n):
            spec = synth.random_spec(
                seed=seed + i, key=keys[i % len(keys)], duration_range=(5, 8), timbres=timbres
            )
            audio = synth.render(spec, sample_rate=16_000)
            made.append(TrainingExample(window_embeddings=backbone.window_embeddings(audio), key=spec.key))
        return made

    train = examples(train_keys, train_timbres, 48, seed=1_000)
    test = examples(test_keys, [test_timbre], 24, seed=2_000)
    model = train_key_model(train=train, backbone_name=backbone.name, cyclic=True, time_budget_s=4, seed=0)
    assert weighted_score(model.head, test) >= 0.9
