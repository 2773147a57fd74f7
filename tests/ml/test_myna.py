"""Myna-Vertical: the published architecture, checkpoint loading and its errors, and window embeddings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.audio import split_windows
from ml.backbones.myna import (
    MynaCheckpointError,
    MynaConfig,
    MynaVerticalBackbone,
    SimpleViT,
    build_myna,
    load_myna_state_dict,
    posemb_sincos_2d,
)

SMALL = MynaConfig(depth=2)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tone(n_samples: int, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(n_samples) / 16_000
    return (0.3 * np.sin(2 * np.pi * frequency * t) + 0.01 * np.cos(2 * np.pi * 3 * frequency * t)).astype(
        np.float32
    )


def _published_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of the authors' SimpleViT (Myna-Vertical) minus linear_head, written out by hand."""
    shapes = {
        "to_patch_embedding.1.weight": (256,),
        "to_patch_embedding.1.bias": (256,),
        "to_patch_embedding.2.weight": (384, 256),
        "to_patch_embedding.2.bias": (384,),
        "to_patch_embedding.3.weight": (384,),
        "to_patch_embedding.3.bias": (384,),
        "transformer.norm.weight": (384,),
        "transformer.norm.bias": (384,),
    }
    for layer in range(12):
        prefix = f"transformer.layers.{layer}"
        shapes |= {
            f"{prefix}.0.norm.weight": (384,),
            f"{prefix}.0.norm.bias": (384,),
            f"{prefix}.0.to_qkv.weight": (3 * 6 * 64, 384),
            f"{prefix}.0.to_out.weight": (384, 6 * 64),
            f"{prefix}.1.net.0.weight": (384,),
            f"{prefix}.1.net.0.bias": (384,),
            f"{prefix}.1.net.1.weight": (1536, 384),
            f"{prefix}.1.net.1.bias": (1536,),
            f"{prefix}.1.net.3.weight": (384, 1536),
            f"{prefix}.1.net.3.bias": (384,),
        }
    return shapes


def test_published_config_has_the_authors_keys_shapes_and_22m_parameters():
    vit = SimpleViT(config=MynaConfig())
    found = {key: tuple(value.shape) for key, value in vit.state_dict().items()}
    assert found == _published_shapes()
    n_parameters = sum(p.numel() for p in vit.parameters())
    assert n_parameters == 21_375_872  # "22M" in the paper (ViT-S)


def _save_authors_checkpoint(model, path: Path, *, wrap: bool = False) -> dict[str, torch.Tensor]:
    state_dict = dict(model.vit.state_dict())
    state_dict["linear_head.weight"] = torch.randn(50, SMALL.dim)
    state_dict["linear_head.bias"] = torch.randn(50)
    if wrap:  # the DistributedDataParallel + training-loop dict shape some checkpoints have
        torch.save({"state_dict": {f"module.{key}": value for key, value in state_dict.items()}}, path)
    else:
        torch.save(state_dict, path)
    return state_dict


@pytest.mark.parametrize("wrap", [False, True])
def test_checkpoint_round_trip_gives_identical_embeddings(tmp_path, wrap):
    torch.manual_seed(0)
    original = build_myna(checkpoint_path=None, config=SMALL)
    saved = _save_authors_checkpoint(original, tmp_path / "myna.pth", wrap=wrap)

    loaded_state = load_myna_state_dict(tmp_path / "myna.pth")
    assert set(loaded_state) == {key for key in saved if not key.startswith("linear_head.")}

    torch.manual_seed(1)  # a different random init, so equal outputs prove the weights were loaded
    restored = build_myna(checkpoint_path=tmp_path / "myna.pth", config=SMALL)
    audio = torch.from_numpy(_tone(100_000))[None]
    with torch.inference_mode():
        assert torch.equal(original(audio), restored(audio))
    assert not restored.training
    assert not any(p.requires_grad for p in restored.parameters())


def test_mismatched_checkpoint_error_lists_every_problem_and_the_file(tmp_path):
    state_dict = dict(build_myna(checkpoint_path=None, config=SMALL).vit.state_dict())
    del state_dict["transformer.layers.1.0.to_qkv.weight"]
    state_dict["to_patch_embedding_b.2.weight"] = torch.zeros(384, 256)
    state_dict["transformer.norm.weight"] = torch.zeros(256)
    path = tmp_path / "wrong.pth"
    torch.save(state_dict, path)

    with pytest.raises(MynaCheckpointError) as caught:
        build_myna(checkpoint_path=path, config=SMALL)
    message = str(caught.value)
    assert str(path) in message
    assert "transformer.layers.1.0.to_qkv.weight" in message
    assert "to_patch_embedding_b.2.weight" in message
    assert "transformer.norm.weight: expected (384,), found (256,)" in message


def test_unreadable_checkpoints_raise_a_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(MynaCheckpointError, match="could not read Myna checkpoint .*corrupt.pth"):
        load_myna_state_dict(corrupt)

    with pytest.raises(MynaCheckpointError, match="nowhere.pth does not exist"):
        build_myna(checkpoint_path=tmp_path / "nowhere.pth", config=SMALL)

    not_tensors = tmp_path / "numbers.pth"
    torch.save({"epoch": 3}, not_tensors)
    with pytest.raises(MynaCheckpointError, match="not tensors.*epoch"):
        load_myna_state_dict(not_tensors)


@pytest.mark.parametrize(("window_samples", "frames"), [(100_000, 196), (200_000, 390)])
def test_vertical_patches_cover_all_bands_and_two_frames(window_samples, frames):
    model = build_myna(checkpoint_path=None, config=SMALL)
    spectrogram = model.spectrogram(torch.from_numpy(_tone(window_samples))[None])
    assert spectrogram.shape == (1, 1, 128, frames)
    tokens = model.vit.patch_tokens(spectrogram)
    assert tokens.shape == (1, (128 // 128) * (frames // 2), SMALL.dim)


def test_front_end_is_the_raw_mel_power_spectrogram():
    # The authors feed nnAudio's mel power as it is (no log, no normalisation): doubling the audio
    # must quadruple every value and silence must stay exactly zero.
    model = build_myna(checkpoint_path=None, config=SMALL)
    audio = torch.from_numpy(_tone(100_000))[None]
    quiet, loud = model.spectrogram(audio), model.spectrogram(2 * audio)
    torch.testing.assert_close(loud, 4 * quiet, rtol=1e-4, atol=1e-4)
    assert model.spectrogram(torch.zeros(1, 100_000)).abs().max() == 0
    assert quiet.dtype == torch.float32


def test_position_embedding_follows_the_sincos_2d_layout():
    table = posemb_sincos_2d(rows=2, cols=3, dim=8)
    assert table.shape == (6, 8)
    row, col = 1, 2  # patch 5 in row-major order
    omega = [1.0, 10_000.0**-1.0]  # dim/4 = 2 frequencies from 1 down to 1/temperature
    expected = [math.sin(col * w) for w in omega] + [math.cos(col * w) for w in omega]
    expected += [math.sin(row * w) for w in omega] + [math.cos(row * w) for w in omega]
    torch.testing.assert_close(table[row * 3 + col], torch.tensor(expected))


@pytest.mark.parametrize("window_samples", [100_000, 200_000])
def test_backbone_gives_one_384_d_row_per_window(window_samples):
    backbone = MynaVerticalBackbone(checkpoint_path=None, window_samples=window_samples, config=SMALL)
    audio = np.concatenate([_tone(165_000, 220.0), _tone(165_000, 523.0)])
    embeddings = backbone.window_embeddings(audio)
    n_windows = len(split_windows(audio, window_samples=window_samples))
    assert n_windows > 1
    assert embeddings.shape == (n_windows, 384)
    assert embeddings.dtype == np.float32
    assert np.isfinite(embeddings).all()
    # The first and last windows hold different notes, so their embeddings differ.
    assert not np.allclose(embeddings[0], embeddings[-1])


def test_backbone_is_deterministic_and_batching_does_not_change_results():
    backbone = MynaVerticalBackbone(checkpoint_path=None, batch_size=3, config=SMALL)
    low, high, short = _tone(260_000, 220.0), _tone(180_000, 330.0), _tone(30_000, 440.0)
    first = backbone.window_embeddings(low)
    np.testing.assert_array_equal(first, backbone.window_embeddings(low))

    batched = backbone.window_embeddings_batch([low, high, short])
    assert [len(rows) for rows in batched] == [
        len(split_windows(audio, window_samples=100_000)) for audio in (low, high, short)
    ]
    assert batched[2].shape == (1, 384)  # shorter than a window: still one row
    for rows, audio in zip(batched, (low, high, short), strict=True):
        np.testing.assert_allclose(rows, backbone.window_embeddings(audio), rtol=1e-4, atol=1e-5)
    assert backbone.window_embeddings_batch([]) == []


def test_backbone_declares_its_interface():
    backbone = MynaVerticalBackbone(checkpoint_path=None, config=SMALL)
    assert (backbone.name, backbone.embedding_dim, backbone.cyclic_transposition) == (
        "myna_vertical",
        384,
        False,
    )
    assert backbone.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert backbone.batch_size() >= 1
    with pytest.raises(ValueError, match="window_samples"):
        MynaVerticalBackbone(checkpoint_path=None, window_samples=1000, config=SMALL)
