"""The learned backbone: front-end alignment, exact transposition equivariance, checkpoints, pretraining
that learns and resumes after a kill, and the backbone interface."""

import numpy as np
import pytest
import torch

from ml.backbones.logcqt import (
    BINS_PER_SEMITONE,
    FRAME_SECONDS,
    LOWEST_MIDI,
    N_BINS,
    N_OPENING_PROFILES,
    log_cqt,
    opening_profiles,
)
from ml.backbones.skey_net import (
    BackboneLoadError,
    SKeyConfig,
    SKeyNet,
    load_model,
    save_checkpoint,
    weights_sha256,
)
from ml.keys import ALL_KEYS, Key
from ml.pretrain import (
    PretrainConfig,
    PretrainTrack,
    consistency_loss,
    key_signature,
    pretrain,
    pretraining_losses,
)

TINY = SKeyConfig(channels=(4, 6, 8, 8), embedding_channels=3, semitone_kernel=5)


def tiny_model(seed: int = 0) -> SKeyNet:
    torch.manual_seed(seed)
    model = SKeyNet(config=TINY)
    # Non-trivial batch-norm statistics, so eval mode is tested with real affine maps.
    with torch.no_grad():
        model.train()
        model(torch.randn(4, N_BINS, 64))
    return model.eval()


def test_a_sinusoid_lands_on_its_bin_with_c_first():
    sample_rate, seconds = 16_000, 2.0
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    for midi in (36, 57, 69, 88):
        tone = 0.5 * np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * t).astype(np.float32)
        spectrum = log_cqt(tone)
        assert spectrum.shape[0] == N_BINS
        assert int(spectrum.mean(axis=1).argmax()) == BINS_PER_SEMITONE * (midi - LOWEST_MIDI) + 1


@pytest.mark.parametrize("semitones", [1, 5, -3, 11])
def test_rolling_the_spectrogram_rolls_the_output_exactly(semitones):
    model = tiny_model()
    spectrogram = torch.rand(2, N_BINS, 40) * 3
    with torch.no_grad():
        pooled = SKeyNet.pool(model(spectrogram))
        rolled = SKeyNet.pool(model(torch.roll(spectrogram, BINS_PER_SEMITONE * semitones, dims=1)))
    assert pooled.shape == (2, 2 + TINY.embedding_channels, 12)
    torch.testing.assert_close(rolled, torch.roll(pooled, semitones, dims=-1), atol=1e-5, rtol=1e-5)
    # And the 24 key logits move to the transposed key, major and minor alike.
    with torch.no_grad():
        logits = model.key_logits(spectrogram)[0]
        moved = model.key_logits(torch.roll(spectrogram, BINS_PER_SEMITONE * semitones, dims=1))[0]
    for key in (Key.parse("C major"), Key.parse("A minor")):
        assert float(moved[key.transpose(semitones).index]) == pytest.approx(
            float(logits[key.index]), abs=1e-5
        )


def test_the_default_network_is_small():
    assert SKeyNet(config=SKeyConfig()).num_parameters() <= 1_000_000


def test_checkpoint_round_trip_rebuilds_the_same_network(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "net.pt", model=model, extra={"note": "test"})
    loaded = load_model(path)
    assert loaded.config == TINY and weights_sha256(loaded) == weights_sha256(model)
    spectrogram = torch.rand(1, N_BINS, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(spectrogram), model(spectrogram))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneLoadError, match="not a readable checkpoint"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(BackboneLoadError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_consistency_loss_is_zero_only_for_equal_one_hot_signatures():
    one_hot = torch.eye(12)[[0, 7]]
    assert float(consistency_loss(one_hot, one_hot)) == pytest.approx(0.0, abs=1e-6)
    assert float(consistency_loss(one_hot, one_hot.flip(0))) > 0.1
    uniform = torch.full((2, 12), 1 / 12)
    assert float(consistency_loss(uniform, uniform)) == pytest.approx(0.5, abs=1e-6)
    # C major and A minor share a key signature.
    probabilities = torch.zeros(2, 24)
    probabilities[0, Key.parse("C major").index] = 1
    probabilities[1, Key.parse("A minor").index] = 1
    torch.testing.assert_close(key_signature(probabilities)[0], key_signature(probabilities)[1])


def _key_tracks(n: int, frames: int = 48, *, labelled: bool = True) -> list[PretrainTrack]:
    """Spectrograms with energy on the key's triad pitch classes in every octave: a learnable toy."""
    rng = np.random.default_rng(n)
    tracks = []
    for i in range(n):
        key = ALL_KEYS[i % 24]
        third = 4 if key.mode == 0 else 3
        spectrum = rng.random((N_BINS, frames)).astype(np.float32) * 0.3
        for interval, gain in ((0, 2.0), (third, 1.2), (7, 1.5)):
            pitch_class = (key.tonic + interval) % 12
            for octave in range(7):
                spectrum[(octave * 12 + pitch_class) * BINS_PER_SEMITONE + 1] += gain
        tracks.append(PretrainTrack(log_cqt=spectrum.astype(np.float16), key=key if labelled else None))
    return tracks


def test_supervised_pretraining_overfits_a_small_batch(tmp_path):
    tracks = _key_tracks(24)
    config = PretrainConfig(steps=40, batch_size=24, segment_seconds=1.0, warmup_steps=2, learning_rate=1e-2)
    pretrain(tracks, out=tmp_path / "net.pt", config=config, model_config=TINY)
    model = load_model(tmp_path / "net.pt")
    spectrogram = torch.from_numpy(np.stack([t.log_cqt for t in tracks]).astype(np.float32))
    with torch.no_grad():
        predicted = model.key_logits(spectrogram).argmax(dim=1)
    accuracy = float((predicted == torch.tensor([t.key.index for t in tracks])).float().mean())
    assert accuracy >= 0.9


def test_every_loss_term_is_finite_and_has_gradients_without_labels():
    model = tiny_model()
    model.train()
    tracks = _key_tracks(4, labelled=False)
    excerpts = torch.from_numpy(np.stack([t.log_cqt for t in tracks]).astype(np.float32))
    terms = pretraining_losses(model, excerpts, excerpts.flip(2), torch.full((4,), -1), PretrainConfig())
    assert (
        all(torch.isfinite(value.detach()) for value in terms.values())
        and float(terms["supervised"].detach()) == 0.0
    )
    terms["total"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


class Killed(Exception):
    """Stands for the worker dying in the middle of a step's progress report."""


def killed_at(step_number: int):
    def progress(step, steps, losses):
        if step == step_number:
            raise Killed

    return progress


def test_pretraining_saves_on_time_as_well_as_every_n_steps(tmp_path):
    tracks = _key_tracks(4, labelled=False)
    config = PretrainConfig(
        steps=5,
        batch_size=4,
        segment_seconds=1.0,
        checkpoint_every=1000,
        checkpoint_seconds=0.0,
        warmup_steps=1,
    )

    with pytest.raises(Killed):
        pretrain(tracks, out=tmp_path / "timed.pt", config=config, model_config=TINY, progress=killed_at(4))
    # Far from 1,000 steps, but the time was due: the killed run kept every step before the kill.
    assert torch.load(tmp_path / "timed.pt", weights_only=True)["pretraining"]["step"] == 3


def test_pretraining_resumes_after_a_kill_and_matches_an_uninterrupted_run(tmp_path):
    tracks = _key_tracks(8, labelled=False) + _key_tracks(4)
    config = PretrainConfig(steps=6, batch_size=4, segment_seconds=1.0, checkpoint_every=2, warmup_steps=1)
    straight = pretrain(tracks, out=tmp_path / "straight.pt", config=config, model_config=TINY)

    with pytest.raises(Killed):
        pretrain(tracks, out=tmp_path / "killed.pt", config=config, model_config=TINY, progress=killed_at(3))
    state = torch.load(tmp_path / "killed.pt", weights_only=True)
    assert state["pretraining"]["step"] == 2 and "optimizer" in state  # the last periodic checkpoint
    resumed = pretrain(tracks, out=tmp_path / "killed.pt", config=config, model_config=TINY, resume=True)
    assert resumed.resumed_from == 2 and resumed.steps_done == 6
    assert weights_sha256(load_model(tmp_path / "killed.pt")) == weights_sha256(
        load_model(straight.checkpoint)
    )
    final = torch.load(tmp_path / "killed.pt", weights_only=True)
    assert final["pretraining"]["complete"] and "optimizer" not in final
    assert (
        final["config"]["channels"] == list(TINY.channels)
        or tuple(final["config"]["channels"]) == TINY.channels
    )


def test_backbone_embeddings_roll_with_transposition_and_fingerprint_follows_weights(tmp_path):
    from ml.backbones.skey import SKeyBackbone
    from ml.cache import backbone_fingerprint

    model = tiny_model()
    backbone = SKeyBackbone(model=model, device="cpu")
    audio = np.random.default_rng(0).normal(0, 0.1, 16_000 * 20).astype(np.float32)
    embeddings = backbone.window_embeddings(audio)
    opening = N_OPENING_PROFILES * 12
    assert embeddings.shape[1] == backbone.embedding_dim == 2 * TINY.embedding_dim + opening
    assert len(embeddings) >= 2
    # The opening profiles are the track's, the same in every window.
    np.testing.assert_array_equal(embeddings[0, -opening:], embeddings[-1, -opening:])
    assert backbone.cyclic_transposition
    np.testing.assert_array_equal(
        backbone.transpose_embeddings(embeddings, 12), embeddings
    )  # a whole octave is the identity
    other = SKeyBackbone(model=tiny_model(seed=1), device="cpu")
    assert backbone_fingerprint(backbone) != backbone_fingerprint(other)
    assert backbone_fingerprint(backbone).startswith("skey-")
    assert backbone_fingerprint(SKeyBackbone(model=tiny_model(), device="cpu")) == backbone_fingerprint(
        backbone
    )


def _tone(midi: float, seconds: float) -> np.ndarray:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.3 * np.sin(2 * np.pi * 440.0 * 2 ** ((midi - 69) / 12) * t)).astype(np.float32)


def test_opening_profiles_read_the_first_notes_after_the_silence_and_roll_with_transposition():
    # 3 s of silence, then a low G (bass) under a D, then 6 s of a loud A that must not count.
    audio = np.concatenate(
        [np.zeros(16_000 * 3, np.float32), _tone(43, 2.0) + _tone(62, 2.0), 2 * _tone(69, 6.0)]
    )
    spectrogram = torch.from_numpy(log_cqt(audio))
    everything, bass = opening_profiles(spectrogram).numpy().reshape(N_OPENING_PROFILES, 12)
    assert np.linalg.norm(everything) == pytest.approx(1.0) and np.linalg.norm(bass) == pytest.approx(1.0)
    assert set(np.argsort(everything)[-2:]) == {7, 2}  # G and D, not the A that follows
    assert np.argmax(bass) == 7
    # Rolling the spectrogram by k semitones rolls the all-octave profile by exactly k; the bass profile
    # follows its notes (it changes only by what crosses the B3/C4 edge of its band).
    for semitones in (1, 5, 11):
        rolled = opening_profiles(torch.roll(spectrogram, BINS_PER_SEMITONE * semitones, dims=0)).numpy()
        np.testing.assert_allclose(rolled[:12], np.roll(everything, semitones), atol=1e-6)
        assert np.argmax(rolled[12:]) == (7 + semitones) % 12


def test_opening_profiles_of_silence_are_finite():
    profiles = opening_profiles(torch.zeros(N_BINS, round(5 / FRAME_SECONDS)))
    assert profiles.shape == (N_OPENING_PROFILES * 12,) and torch.isfinite(profiles).all()


def test_the_front_end_matches_nnaudio_cqt1992v2_bin_for_bin():
    """The shipped network was trained on nnAudio's CQT1992v2 numbers; ours must stay the same."""
    from nnAudio.features import CQT1992v2

    from ml.backbones.logcqt import _BANDS, LogCQT, _band_frequencies, band_signals

    t = np.arange(16_000 * 6) / 16_000
    rng = np.random.default_rng(3)
    audio = sum(np.sin(2 * np.pi * f * t) for f in (55.0, 196.0, 659.3, 2793.0)) + rng.normal(0, 0.05, t.size)
    signals = [torch.from_numpy(signal)[None] for signal in band_signals(audio.astype(np.float32))]
    n_frames = signals[0].shape[-1] // _BANDS[0].hop + 1
    with torch.inference_mode():
        ours = LogCQT()(signals)
        reference = torch.cat(
            [
                CQT1992v2(
                    sr=band.sample_rate,
                    hop_length=band.hop,
                    fmin=float(_band_frequencies(band)[0]),
                    n_bins=band.n_octaves * BINS_PER_SEMITONE * 12,
                    bins_per_octave=BINS_PER_SEMITONE * 12,
                    output_format="Magnitude",
                    verbose=False,
                )(signal)[..., :n_frames]
                for band, signal in zip(_BANDS, signals, strict=True)
            ],
            dim=1,
        )
    # Float32 sums of up to 3,206 products in another order (a GEMM, not a convolution) differ by
    # ~1e-6 in magnitude, which log1p(100·x) magnifies to ~2e-4 in the quietest bins.
    difference = np.abs(ours.numpy() - torch.log1p(100 * reference).numpy())
    assert difference.max() < 1e-3 and difference.mean() < 1e-5


def test_window_statistics_are_the_pooled_mean_then_the_spread_and_roll_with_the_input():
    from ml.backbones.skey import window_statistics

    features = torch.randn(5, 84, 9)
    statistics = window_statistics(features)
    assert statistics.shape == (10, 12)
    torch.testing.assert_close(statistics[:5], SKeyNet.pool(features[None])[0])
    octave_sums = features.reshape(5, 7, 12, 9).sum(dim=1)
    torch.testing.assert_close(statistics[5:], octave_sums.std(dim=-1, correction=0))
    # A channel that holds still has no spread; one that alternates between 0 and 2 has spread 1.
    steady = window_statistics(torch.ones(1, 84, 6))
    assert torch.equal(steady[1], torch.zeros(12))
    alternating = torch.zeros(1, 84, 6)
    alternating[0, 0, ::2] = 2.0
    assert window_statistics(alternating)[1, 0].item() == pytest.approx(1.0)
    # Transposing by k semitones rolls every statistic by k pitch classes, exactly.
    rolled = window_statistics(torch.roll(features, 5, dims=1))
    torch.testing.assert_close(rolled, torch.roll(statistics, 5, dims=1))


@pytest.mark.parametrize("seconds", [1.0, 1.05, 1.5])
def test_audio_just_over_the_minimum_length_embeds(seconds):
    from ml.backbones.skey import SKeyBackbone

    audio = np.random.default_rng(0).normal(0, 0.1, int(16_000 * seconds)).astype(np.float32)
    embeddings = SKeyBackbone(model=tiny_model(), device="cpu").window_embeddings(audio)
    assert embeddings.shape[0] == 1 and np.isfinite(embeddings).all()


@pytest.mark.parametrize("frames", [7, 8])
def test_frame_pooling_equals_torch_pooling_with_ceil_mode(frames):
    from torch.nn import functional as F

    from ml.backbones.skey_net import _pool_time

    x = torch.randn(2, 3, 5, frames)
    torch.testing.assert_close(_pool_time(x, maximum=True), F.max_pool2d(x, (1, 2), ceil_mode=True))
    torch.testing.assert_close(_pool_time(x, maximum=False), F.avg_pool2d(x, (1, 2), ceil_mode=True))


def test_network_key_probabilities_are_the_networks_own_key_logits_averaged_over_windows():
    from ml.backbones.skey import SKeyBackbone, network_key_probabilities
    from ml.heads import softmax

    model = tiny_model()
    backbone = SKeyBackbone(model=model, device="cpu")
    # Under one window long: its embedding pools every frame, as key_logits does over the whole excerpt.
    audio = np.random.default_rng(1).normal(0, 0.1, 16_000 * 6).astype(np.float32)
    (window,) = backbone.window_embeddings(audio)
    with torch.inference_mode():
        logits = model.key_logits(backbone.log_cqt(audio)).numpy()[0]
    np.testing.assert_allclose(window[:24], logits, atol=1e-5)
    # A longer track: the mean of its windows' softmaxes; transposing it moves the estimate's key.
    long = np.random.default_rng(2).normal(0, 0.1, 16_000 * 25).astype(np.float32)
    windows = backbone.window_embeddings(long)
    probabilities = network_key_probabilities([windows, windows[:1]])
    assert probabilities.shape == (2, 24) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities[0], softmax(windows[:, :24]).mean(axis=0), atol=1e-6)
    moved = network_key_probabilities([backbone.transpose_embeddings(windows, 5)])[0]
    for key in (Key.parse("C major"), Key.parse("A minor")):
        assert moved[key.transpose(5).index] == pytest.approx(probabilities[0][key.index], abs=1e-6)
    assert network_key_probabilities([]).shape == (0, 24)
    with pytest.raises(ValueError, match="no windows"):
        network_key_probabilities([windows[:0]])
