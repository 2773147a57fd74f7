"""The registry of embedding backbones: look one up by the name stored on models and checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

from ml.backbones.base import ASSETS_DIR, SAMPLE_RATE, SKEY_CHECKPOINT_ENV, Backbone

BACKBONE_NAMES = ("pitch_class", "myna_vertical", "skey")
CHECKPOINT_ENV = "MYNA_CHECKPOINT"
FORCE_ENV = "KEYWEB_BACKBONE"

__all__ = ["BACKBONE_NAMES", "SAMPLE_RATE", "Backbone", "default_backbone_name", "get_backbone"]


def get_backbone(name: str, **options) -> Backbone:
    """A backbone by name; options go to its constructor. Myna (and torch) is imported only when asked."""
    if name == "pitch_class":
        from ml.backbones.pitchclass import PitchClassBackbone

        return PitchClassBackbone(**options)
    if name == "myna_vertical":
        checkpoint_path = options.pop("checkpoint_path", None) or os.environ.get(CHECKPOINT_ENV)
        if not checkpoint_path:
            raise ValueError(
                "backbone 'myna_vertical' needs the Myna-Vertical weights: pass checkpoint_path or set "
                f"{CHECKPOINT_ENV} to the checkpoint file (or use the 'pitch_class' backbone, which needs none)"
            )
        from ml.backbones.myna import MynaVerticalBackbone

        return MynaVerticalBackbone(checkpoint_path=checkpoint_path, **options)
    if name == "skey":
        from ml.backbones.skey import SKeyBackbone

        return SKeyBackbone(**options)
    raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONE_NAMES)}")


def default_backbone_name() -> str:
    """The one rule for which backbone KeyWeb uses when none is named.

    KEYWEB_BACKBONE, when set, names it outright (tests and deployments that must not change models).

    'myna_vertical' when MYNA_CHECKPOINT names an existing file; else 'skey' when its network and its
    shipped head are both present (ml/assets, or SKEY_CHECKPOINT); else 'pitch_class', which needs
    no weights.
    """
    forced = os.environ.get(FORCE_ENV)
    if forced:
        if forced not in BACKBONE_NAMES:
            raise ValueError(
                f"{FORCE_ENV}={forced!r} is not a backbone; choose one of: {', '.join(BACKBONE_NAMES)}"
            )
        return forced
    checkpoint = os.environ.get(CHECKPOINT_ENV)
    if checkpoint and Path(checkpoint).is_file():
        return "myna_vertical"
    skey_checkpoint = os.environ.get(SKEY_CHECKPOINT_ENV) or ASSETS_DIR / "skey_backbone.pt"
    if Path(skey_checkpoint).is_file() and (ASSETS_DIR / "default_head_skey.pt").is_file():
        return "skey"
    return "pitch_class"
