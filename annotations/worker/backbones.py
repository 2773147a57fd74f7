"""Which backbone and head the worker uses, loaded once per process, and the content fingerprint that ties
embeddings and heads together: a head is applied only to embeddings made by the backbone it was trained
on (same name, feature version and weights)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from django.conf import settings

from ml.backbones import Backbone, get_backbone
from ml.cache import backbone_fingerprint
from ml.heads import LoadedHead, load_head

from ..models import ModelVersion
from ..selectors import backbone_name_configured, model_version_active

logger = logging.getLogger(__name__)

_backbones: dict[tuple[str, str], Backbone] = {}
_heads: dict[tuple[str, float], LoadedHead] = {}


class FingerprintMismatch(RuntimeError):
    """A head trained on other embeddings than the backbone now makes (e.g. a new Myna checkpoint)."""


def torch_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def backbone_for(name: str, checkpoint: str = "") -> Backbone:
    """The backbone called `name` with the given weights (blank: its shipped ones), built once per process."""
    if (name, checkpoint) not in _backbones:
        _backbones[(name, checkpoint)] = (
            get_backbone(name, checkpoint_path=checkpoint) if checkpoint else get_backbone(name)
        )
    return _backbones[(name, checkpoint)]


def fingerprint_for(name: str, checkpoint: str = "") -> str:
    return backbone_fingerprint(backbone_for(name, checkpoint))


def analysis_backbone() -> tuple[str, str]:
    """(name, checkpoint) that new tracks are embedded with: the active version's, so it can predict them
    at once; with no active version, the configured backbone with its shipped weights."""
    active = model_version_active()
    if active is not None:
        return active.backbone, active.backbone_checkpoint
    return backbone_name_configured(), ""


def embedding_path(*, content_hash: str, fingerprint: str, semitones: int = 0) -> Path:
    suffix = f".shift{semitones:+d}" if semitones else ""
    return settings.KEYWEB["EMBEDDING_DIR"] / fingerprint / content_hash[:2] / f"{content_hash}{suffix}.npy"


def head_for(version: ModelVersion) -> LoadedHead:
    """The version's head, loaded once per file version, after checking it fits today's backbone.

    A trained version records the fingerprint it was trained on. The shipped head records it in its
    file, and for the default version the file is the authority: an upgrade that ships another head with
    other features replaces the pin set at the old head's first use. A version with no fingerprint at all
    (a shipped head from before files recorded one) takes today's at its first use.
    """
    path = Path(version.weights_path)
    if not path.is_absolute():
        path = settings.KEYWEB["MODEL_DIR"] / path
    cache_key = (str(path), path.stat().st_mtime)
    if cache_key not in _heads:
        _heads.clear()
        _heads[cache_key] = load_head(path)
    loaded = _heads[cache_key]
    current = fingerprint_for(version.backbone, version.backbone_checkpoint)
    recorded = str((loaded.extra or {}).get("backbone_fingerprint") or "")
    if version.is_default and recorded:
        trained_on = recorded
    else:
        trained_on = version.backbone_fingerprint or recorded or current
    if version.backbone_fingerprint != trained_on:
        ModelVersion.objects.filter(pk=version.pk).update(backbone_fingerprint=trained_on)
        version.backbone_fingerprint = trained_on
    if trained_on != current:
        raise FingerprintMismatch(
            f"model {version.name} was trained on {trained_on} embeddings but the {version.backbone} "
            f"backbone now makes {current}; retrain it (the backbone's checkpoint or features changed)"
        )
    return loaded
