"""Key heads: shapes, window-averaged prediction, temperature, and checkpoints that rebuild themselves."""

import numpy as np
import pytest
import torch

from ml.heads import (
    EmbeddingMismatch,
    HeadConfig,
    HeadEnsemble,
    HeadLoadError,
    KeyHead,
    apply_temperature,
    load_head,
    predict_tracks,
    predict_windows,
    save_head,
    window_probabilities,
)

INPUT_DIM = 36


def make_head(*, hidden_layers: int = 1, hidden_dim: int = 64, seed: int = 0) -> KeyHead:
    torch.manual_seed(seed)
    config = HeadConfig(
        backbone="test", input_dim=INPUT_DIM, hidden_layers=hidden_layers, hidden_dim=hidden_dim
    )
    head = KeyHead(config=config)
    head.fit_standardisation(np.random.default_rng(seed).normal(2.0, 3.0, size=(50, INPUT_DIM)))
    return head.eval()


def windows(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(2.0, 3.0, size=(n, INPUT_DIM)).astype(np.float32)


@pytest.mark.parametrize(
    ("hidden_layers", "expected_parameters"),
    [(0, 37 * 24), (1, 37 * 64 + 65 * 24), (2, 37 * 64 + 65 * 64 + 65 * 24)],
)
def test_forward_shape_and_size(hidden_layers, expected_parameters):
    head = make_head(hidden_layers=hidden_layers)
    logits = head(torch.from_numpy(windows(5)))
    assert logits.shape == (5, 24)
    assert head.num_parameters() == expected_parameters


def test_dropout_only_after_first_hidden_layer():
    head = make_head(hidden_layers=2)
    dropouts = [module for module in head.net if isinstance(module, torch.nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].p == 0.9


def test_config_rejects_out_of_range_values():
    with pytest.raises(ValueError, match="hidden_layers"):
        HeadConfig(backbone="test", input_dim=4, hidden_layers=3)
    with pytest.raises(ValueError, match="dropout"):
        HeadConfig(backbone="test", input_dim=4, dropout=1.0)


def test_standardisation_centres_and_scales_inputs():
    head = make_head()
    data = np.random.default_rng(3).normal([5.0] * INPUT_DIM, 10.0, size=(400, INPUT_DIM))
    data[:, 0] = 7.0  # a constant feature must not divide by zero
    head.fit_standardisation(data)
    standardised = (torch.from_numpy(data).float() - head.input_mean) / head.input_std
    assert torch.isfinite(standardised).all()
    assert standardised[:, 1:].mean(0).abs().max() < 1e-4
    assert (standardised[:, 1:].std(0) - 1).abs().max() < 0.01


def test_predict_windows_averages_window_softmaxes():
    head = make_head()
    track = windows(7)
    probabilities = predict_windows(head, track)
    assert probabilities.shape == (24,)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(probabilities, window_probabilities(head, track).mean(0), atol=1e-6)


def test_predict_tracks_matches_one_by_one():
    head = make_head()
    tracks = [windows(n, seed=n) for n in (1, 4, 9)]
    batched = predict_tracks(head, tracks)
    assert batched.shape == (3, 24)
    for row, track in zip(batched, tracks, strict=True):
        np.testing.assert_allclose(row, predict_windows(head, track), atol=1e-6)
    assert predict_tracks(head, []).shape == (0, 24)


def test_temperature_changes_confidence_not_the_decision():
    head = make_head()
    track = windows(3)
    plain = predict_windows(head, track)
    head.set_temperature(0.5)
    sharper = predict_windows(head, track)
    assert sharper.argmax() == plain.argmax()
    assert sharper.max() > plain.max()
    assert head.config.temperature == 0.5


def test_wrong_input_size_and_empty_track_are_refused():
    head = make_head()
    with pytest.raises(EmbeddingMismatch, match=f"reads {INPUT_DIM} features per window"):
        predict_windows(head, np.zeros((2, INPUT_DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="expected window embeddings"):
        predict_windows(head, np.zeros(INPUT_DIM, dtype=np.float32))
    with pytest.raises(ValueError, match="no windows"):
        predict_windows(head, np.zeros((0, INPUT_DIM), dtype=np.float32))


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    head = make_head(hidden_layers=2)
    head.set_temperature(1.7)
    path = save_head(
        tmp_path / "head.pt", head=head, config=head.config, metrics={"weighted": 0.9}, extra={"note": "x"}
    )
    loaded = load_head(path)
    assert loaded.config == head.config
    assert loaded.metrics == {"weighted": 0.9} and loaded.extra == {"note": "x"}
    assert not loaded.head.training
    tracks = [windows(n, seed=n) for n in (2, 5)]
    np.testing.assert_array_equal(predict_tracks(loaded.head, tracks), predict_tracks(head, tracks))
    # The atomic write leaves nothing but the checkpoint behind.
    assert [p.name for p in tmp_path.iterdir()] == ["head.pt"]


def test_missing_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(HeadLoadError, match="does not exist"):
        load_head(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(HeadLoadError, match="not a readable checkpoint"):
        load_head(garbage)
    good = save_head(
        tmp_path / "good.pt", head=make_head(), config=make_head().config, metrics=None, extra=None
    )
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(HeadLoadError, match="not a readable checkpoint"):
        load_head(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(HeadLoadError, match="not a KeyWeb key head"):
        load_head(foreign)


def test_incompatible_checkpoint_is_refused(tmp_path):
    head = make_head()
    path = save_head(tmp_path / "head.pt", head=head, config=head.config, metrics=None, extra=None)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["format_version"] = 99
    torch.save(checkpoint, tmp_path / "future.pt")
    with pytest.raises(HeadLoadError, match="format version 99"):
        load_head(tmp_path / "future.pt")
    checkpoint["format_version"] = 1
    checkpoint["config"]["hidden_dim"] = 32  # weights no longer fit the config
    torch.save(checkpoint, tmp_path / "mismatch.pt")
    with pytest.raises(HeadLoadError, match="does not match"):
        load_head(tmp_path / "mismatch.pt")
    checkpoint["config"]["hidden_dim"] = 64
    checkpoint["labels"] = list(reversed(checkpoint["labels"]))
    torch.save(checkpoint, tmp_path / "relabelled.pt")
    with pytest.raises(HeadLoadError, match="label order"):
        load_head(tmp_path / "relabelled.pt")


def test_saving_with_a_config_of_another_shape_is_refused(tmp_path):
    head = make_head(hidden_dim=64)
    other = HeadConfig(backbone="test", input_dim=INPUT_DIM, hidden_dim=128)
    with pytest.raises(ValueError, match="does not describe this head"):
        save_head(tmp_path / "head.pt", head=head, config=other, metrics=None, extra=None)
    assert not list(tmp_path.iterdir())


def test_an_ensemble_predicts_the_mean_of_its_members_and_round_trips(tmp_path):
    members = [make_head(hidden_layers=0, seed=1), make_head(hidden_layers=1, seed=2)]
    ensemble = HeadEnsemble.of(members, temperature=1.3)
    assert ensemble.config.describe() == "mean of linear + 1x64 dropout 0.9"
    assert ensemble.config.hidden_layers == 0  # its own architecture fields repeat the first member's
    assert ensemble.num_parameters() == sum(member.num_parameters() for member in members)
    many = windows(7)
    np.testing.assert_allclose(
        window_probabilities(ensemble, many),
        np.mean([window_probabilities(member, many) for member in members], axis=0),
        atol=1e-6,
    )
    tracks = [windows(n, seed=n) for n in (1, 3, 6)]
    expected = apply_temperature(np.mean([predict_tracks(member, tracks) for member in members], axis=0), 1.3)
    np.testing.assert_allclose(predict_tracks(ensemble, tracks), expected, atol=1e-6)
    path = save_head(
        tmp_path / "ensemble.pt", head=ensemble, config=ensemble.config, metrics=None, extra=None
    )
    loaded = load_head(path)
    assert isinstance(loaded.head, HeadEnsemble) and loaded.config == ensemble.config
    np.testing.assert_array_equal(predict_tracks(loaded.head, tracks), predict_tracks(ensemble, tracks))
    # A single head's config does not describe the ensemble's weights.
    with pytest.raises(ValueError, match="does not describe this head"):
        save_head(tmp_path / "wrong.pt", head=ensemble, config=members[1].config, metrics=None, extra=None)


def test_checkpoints_written_before_ensembles_still_load(tmp_path):
    head = make_head()
    path = save_head(tmp_path / "head.pt", head=head, config=head.config, metrics=None, extra=None)
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["config"]["members"]
    torch.save(checkpoint, tmp_path / "old.pt")
    loaded = load_head(tmp_path / "old.pt")
    assert isinstance(loaded.head, KeyHead) and loaded.config.members == []
    tracks = [windows(4)]
    np.testing.assert_array_equal(predict_tracks(loaded.head, tracks), predict_tracks(head, tracks))


@pytest.mark.parametrize("backbone_name", ["skey", "pitch_class"])
def test_each_shipped_head_records_the_fingerprint_of_the_shipped_backbone(backbone_name):
    """The worker trusts a shipped head's file over a pin from an older release (annotations.worker.
    backbones.head_for), so a head retrained for other features must say which ones it was made for."""
    from ml.backbones import get_backbone
    from ml.cache import backbone_fingerprint
    from ml.cli import default_head_path

    recorded = load_head(default_head_path(backbone_name)).extra.get("backbone_fingerprint")
    assert recorded == backbone_fingerprint(get_backbone(backbone_name))
