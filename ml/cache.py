"""On-disk cache of window embeddings, keyed by the audio file's content and the backbone that embedded it."""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ml.audio import load_audio, pitch_shift
from ml.backbones.base import SAMPLE_RATE, Backbone
from ml.files import npy_write_atomic

CACHE_DIR_ENV = "KEYWEB_CACHE_DIR"
_CHUNK_BYTES = 1 << 20
_SCALARS = (bool, int, float, str, type(None))
# Fingerprinting hashes the backbone's weights; do it once per backbone object, not once per file.
_fingerprints: weakref.WeakKeyDictionary[Backbone, str] = weakref.WeakKeyDictionary()


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "keyweb" / "embeddings")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB chunks so long tracks are never held whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _is_scalar(value: object) -> bool:
    if isinstance(value, tuple | list):
        return all(isinstance(item, _SCALARS) for item in value)
    return isinstance(value, _SCALARS)


def backbone_fingerprint(backbone: Backbone) -> str:
    """A short hash of everything that changes a backbone's embeddings.

    A backbone may define `fingerprint()` itself. Otherwise: its name, class, embedding size, its public
    scalar options (window and hop lengths…; private attributes such as a batch size and objects such as
    the device are left out because they do not change the numbers) and the values of its weights.
    """
    if backbone in _fingerprints:
        return _fingerprints[backbone]
    custom = getattr(backbone, "fingerprint", None)
    if callable(custom):
        text = str(custom())
    else:
        description: dict[str, object] = {
            "name": backbone.name,
            "class": f"{type(backbone).__module__}.{type(backbone).__qualname__}",
            "embedding_dim": backbone.embedding_dim,
        }
        weights = hashlib.sha256()
        for attribute, value in sorted(vars(backbone).items()):
            if attribute.startswith("_"):
                continue
            if _is_scalar(value):
                description[attribute] = value
            elif hasattr(value, "state_dict"):
                for name, tensor in sorted(value.state_dict().items()):
                    weights.update(name.encode())
                    weights.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        description["weights"] = weights.hexdigest()
        text = json.dumps(description, sort_keys=True, default=str)
    fingerprint = f"{backbone.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    _fingerprints[backbone] = fingerprint
    return fingerprint


def cache_path(*, sha256: str, backbone: Backbone, cache_dir: str | os.PathLike, semitones: int = 0) -> Path:
    shift = "" if semitones == 0 else f"_shift{semitones:+d}"
    return Path(cache_dir) / backbone_fingerprint(backbone) / sha256[:2] / f"{sha256}{shift}.npy"


def _read(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # A truncated or foreign file is recomputed and overwritten rather than trusted.
        return None


def _embed(path: str | os.PathLike, backbone: Backbone, semitones: int) -> np.ndarray:
    audio = load_audio(path, sample_rate=SAMPLE_RATE)
    if semitones:
        audio = pitch_shift(audio, semitones, sample_rate=SAMPLE_RATE)
    return np.asarray(backbone.window_embeddings(audio), dtype=np.float32)


def _cached(
    path: str | os.PathLike, backbone: Backbone, cache_dir: str | os.PathLike, semitones: int
) -> tuple[np.ndarray, bool]:
    target = cache_path(sha256=file_sha256(path), backbone=backbone, cache_dir=cache_dir, semitones=semitones)
    cached = _read(target)
    if cached is not None:
        return cached, True
    embeddings = _embed(path, backbone, semitones)
    npy_write_atomic(target, embeddings)
    return embeddings, False


def embeddings_cached(
    path: str | os.PathLike,
    backbone: Backbone,
    cache_dir: str | os.PathLike | None = None,
    *,
    semitones: int = 0,
) -> np.ndarray:
    """Window embeddings of the file (pitch-shifted by `semitones` in the audio domain when non-zero),
    computed once per file content and backbone, then read from disk. Raises ml.audio.AudioDecodeError."""
    return _cached(path, backbone, cache_dir or default_cache_dir(), semitones)[0]


def embeddings_cached_many(
    paths: Sequence[str | os.PathLike],
    backbone: Backbone,
    cache_dir: str | os.PathLike | None = None,
    *,
    semitones: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[np.ndarray], int]:
    """`embeddings_cached` for many files; returns the embeddings and how many came from the cache.

    `progress(1)` is called after each file, so a tqdm bar's `update` can be passed directly.
    """
    results, hits = [], 0
    for path in paths:
        embeddings, hit = _cached(path, backbone, cache_dir or default_cache_dir(), semitones)
        results.append(embeddings)
        hits += hit
        if progress:
            progress(1)
    return results, hits
