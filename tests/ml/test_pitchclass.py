"""The pitch-class backbone (layout, transposition, tuning, template baseline) and the backbone registry."""

import dataclasses
from functools import cache

import numpy as np
import pytest

from ml.audio import pitch_shift, resample, window_starts
from ml.backbones import (
    BACKBONE_NAMES,
    SAMPLE_RATE,
    Backbone,
    default_backbone_name,
    get_backbone,
)
from ml.backbones.pitchclass import (
    CHANNELS,
    EMBEDDING_DIM,
    N_CHANNELS,
    PitchClassBackbone,
    estimate_tuning_cents,
    template_key_probabilities,
    transpose_embeddings,
)
from ml.keys import ALL_KEYS, Key, Mode
from ml.synth import random_spec, render

BACKBONE = PitchClassBackbone()


@cache
def _audio(spec) -> np.ndarray:
    return resample(render(spec), from_rate=22_050, to_rate=SAMPLE_RATE)


def _spec(*, seed: int, key: Key, timbre: str = "organ", tuning_cents: float = 0.0):
    spec = random_spec(seed=seed, key=key, duration_range=(8.0, 8.0), timbres=(timbre,))
    return dataclasses.replace(spec, tuning_cents=tuning_cents)


def _centred_cosine(first: np.ndarray, second: np.ndarray) -> float:
    """Cosine after removing each channel's mean over pitch classes, which no roll can change."""
    first = first.reshape(-1, N_CHANNELS, 12)
    second = second.reshape(-1, N_CHANNELS, 12)
    first = (first - first.mean(axis=-1, keepdims=True)).ravel()
    second = (second - second.mean(axis=-1, keepdims=True)).ravel()
    return float(first @ second / np.linalg.norm(first) / np.linalg.norm(second))


def _cosine(first: np.ndarray, second: np.ndarray) -> float:
    first, second = first.ravel(), second.ravel()
    return float(first @ second / np.linalg.norm(first) / np.linalg.norm(second))


# --- layout --------------------------------------------------------------------------------------------


def test_embeddings_have_one_row_per_window_and_the_documented_layout():
    audio = _audio(_spec(seed=1, key=Key(tonic=2, mode=Mode.MAJOR)))
    embeddings = BACKBONE.window_embeddings(audio)
    n_windows = len(window_starts(audio.size, window_samples=100_000))
    assert embeddings.shape == (n_windows, EMBEDDING_DIM) == (n_windows, BACKBONE.embedding_dim)
    assert EMBEDDING_DIM == N_CHANNELS * 12 and len(set(CHANNELS)) == N_CHANNELS
    assert embeddings.dtype == np.float32 and np.isfinite(embeddings).all()
    assert BACKBONE.name == "pitch_class" and BACKBONE.cyclic_transposition


def test_window_options_change_the_number_of_windows():
    audio = _audio(_spec(seed=1, key=Key(tonic=2, mode=Mode.MAJOR)))
    backbone = PitchClassBackbone(window_samples=32_000, hop_samples=8_000)
    expected = window_starts(audio.size, window_samples=32_000, hop_samples=8_000)
    assert len(backbone.window_embeddings(audio)) == len(expected) > 10


def test_short_and_silent_audio_still_get_one_finite_row():
    short = _audio(_spec(seed=1, key=Key(tonic=2, mode=Mode.MAJOR)))[:8_000]
    assert BACKBONE.window_embeddings(short).shape == (1, EMBEDDING_DIM)
    silent = BACKBONE.window_embeddings(np.zeros(20_000, dtype=np.float32))
    assert silent.shape == (1, EMBEDDING_DIM) and not silent.any()
    np.testing.assert_allclose(template_key_probabilities(silent), np.full(24, 1 / 24))


def test_gain_does_not_change_the_embedding():
    audio = _audio(_spec(seed=2, key=Key(tonic=7, mode=Mode.MINOR), timbre="piano"))
    np.testing.assert_allclose(
        BACKBONE.window_embeddings(0.05 * audio), BACKBONE.window_embeddings(audio), rtol=1e-3, atol=1e-4
    )


# --- transposition -------------------------------------------------------------------------------------


def test_transpose_embeddings_is_an_exact_roll_and_inverts_exactly():
    embeddings = np.random.default_rng(0).standard_normal((3, EMBEDDING_DIM)).astype(np.float32)
    for semitones in range(-6, 7):
        rolled = transpose_embeddings(embeddings, semitones)
        expected = np.roll(embeddings.reshape(3, N_CHANNELS, 12), semitones, axis=-1).reshape(3, -1)
        np.testing.assert_array_equal(rolled, expected)
        np.testing.assert_array_equal(BACKBONE.transpose_embeddings(rolled, -semitones), embeddings)
    np.testing.assert_array_equal(transpose_embeddings(embeddings, 12), embeddings)


@pytest.mark.parametrize("semitones", [-6, -2, 1, 5])
def test_the_same_music_transposed_gives_rolled_embeddings(semitones):
    spec = _spec(seed=3, key=Key(tonic=2, mode=Mode.MINOR), timbre="epiano")
    original = BACKBONE.window_embeddings(_audio(spec))
    transposed = BACKBONE.window_embeddings(
        _audio(dataclasses.replace(spec, key=spec.key.transpose(semitones)))
    )
    shifted = BACKBONE.window_embeddings(pitch_shift(_audio(spec), semitones))

    expected = transpose_embeddings(original, semitones)
    for embeddings in (transposed, shifted):
        assert _cosine(embeddings, expected) > 0.95
        assert _centred_cosine(embeddings, expected) > 0.9
        # ... and clearly closer to the right roll than to any other.
        wrong = max(
            _centred_cosine(embeddings, transpose_embeddings(original, k))
            for k in range(1, 12)
            if k != semitones % 12
        )
        assert wrong < 0.75


# --- tuning --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("timbre", "tuning_cents"), [("strings", -30.0), ("bell", 30.0), ("piano", 12.0)])
def test_tuning_is_estimated_within_three_cents(timbre, tuning_cents):
    audio = _audio(_spec(seed=4, key=Key(tonic=5, mode=Mode.MAJOR), timbre=timbre, tuning_cents=tuning_cents))
    assert estimate_tuning_cents(audio) == pytest.approx(tuning_cents, abs=3.0)
    assert BACKBONE.estimate_tuning_cents(audio) == estimate_tuning_cents(audio)


def test_tuning_estimate_wraps_around_the_half_semitone():
    t = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
    # 48 cents flat of A4 reads -48 (not +52): offsets live in [-50, 50).
    flat = np.sin(2 * np.pi * 440 * 2 ** (-48 / 1200) * t).astype(np.float32)
    assert estimate_tuning_cents(flat) == pytest.approx(-48, abs=1.0)
    assert estimate_tuning_cents(np.zeros(SAMPLE_RATE, dtype=np.float32)) == 0.0


def test_detuned_track_embeds_like_the_in_tune_one():
    spec = _spec(seed=5, key=Key(tonic=9, mode=Mode.MINOR), timbre="epiano")
    in_tune = BACKBONE.window_embeddings(_audio(spec))
    detuned = BACKBONE.window_embeddings(_audio(dataclasses.replace(spec, tuning_cents=30.0)))
    assert _centred_cosine(detuned, in_tune) > 0.95


# --- training-free key estimate ------------------------------------------------------------------------


def test_template_matching_finds_the_key_of_clean_synthetic_tracks():
    correct = 0
    for key in ALL_KEYS:
        spec = random_spec(seed=1000 + key.index, key=key, duration_range=(8.0, 8.0))
        probabilities = template_key_probabilities(BACKBONE.window_embeddings(_audio(spec)))
        assert probabilities.shape == (24,) and probabilities.sum() == pytest.approx(1.0)
        correct += Key.from_index(int(probabilities.argmax())) == key
    assert correct >= 20, f"only {correct}/24 keys found"


# --- registry ------------------------------------------------------------------------------------------


def test_registry_builds_the_pitch_class_backbone_with_options():
    backbone = get_backbone("pitch_class", window_samples=200_000, hop_samples=50_000)
    assert isinstance(backbone, PitchClassBackbone) and isinstance(backbone, Backbone)
    assert (backbone.window_samples, backbone.hop_samples) == (200_000, 50_000)
    assert BACKBONE_NAMES == ("pitch_class", "myna_vertical", "skey") and SAMPLE_RATE == 16_000


def test_registry_refuses_unknown_names_and_myna_without_weights(monkeypatch):
    with pytest.raises(ValueError, match="pitch_class, myna_vertical"):
        get_backbone("chroma_magic")
    monkeypatch.delenv("MYNA_CHECKPOINT", raising=False)
    with pytest.raises(ValueError, match="MYNA_CHECKPOINT"):
        get_backbone("myna_vertical")


def test_default_backbone_rule_myna_then_skey_then_pitch_class(monkeypatch, tmp_path):
    import ml.backbones

    assets = tmp_path / "assets"
    assets.mkdir()
    monkeypatch.setattr(ml.backbones, "ASSETS_DIR", assets)
    monkeypatch.delenv("MYNA_CHECKPOINT", raising=False)
    monkeypatch.delenv("SKEY_CHECKPOINT", raising=False)
    monkeypatch.delenv("KEYWEB_BACKBONE", raising=False)
    assert default_backbone_name() == "pitch_class"
    (assets / "skey_backbone.pt").write_bytes(b"weights")
    assert default_backbone_name() == "pitch_class"  # a network without its shipped head is not enough
    (assets / "default_head_skey.pt").write_bytes(b"head")
    assert default_backbone_name() == "skey"
    monkeypatch.setenv("MYNA_CHECKPOINT", str(tmp_path / "missing.pt"))
    assert default_backbone_name() == "skey"  # a wrong Myna path never selects Myna
    checkpoint = tmp_path / "myna.pt"
    checkpoint.write_bytes(b"weights")
    monkeypatch.setenv("MYNA_CHECKPOINT", str(checkpoint))
    assert default_backbone_name() == "myna_vertical"
    monkeypatch.setenv("KEYWEB_BACKBONE", "pitch_class")
    assert default_backbone_name() == "pitch_class"
    monkeypatch.setenv("KEYWEB_BACKBONE", "chroma_magic")
    with pytest.raises(ValueError, match="KEYWEB_BACKBONE"):
        default_backbone_name()
