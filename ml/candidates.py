"""What the head search tries: training settings (TrainConfig), candidates, and their sizes and costs."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ml.heads import HeadConfig


@dataclass(frozen=True)
class TrainConfig:
    """How a head is trained; its architecture is ml.heads.HeadConfig."""

    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 256
    epochs: int = 60
    # Epochs without a better validation score before training stops (when a validation slice is given).
    patience: int = 10

    def describe(self) -> str:
        return f"lr {self.learning_rate:g}, {self.epochs} epochs"


@dataclass(frozen=True)
class Candidate:
    """One point of the model search: an architecture and how to train it."""

    head: HeadConfig
    train: TrainConfig = field(default_factory=TrainConfig)

    def describe(self) -> str:
        return f"{self.head.describe()} {self.train.describe()}"


# --- the candidates ----------------------------------------------------------------------------------------


def default_candidates(*, backbone_name: str, input_dim: int, seed: int = 0) -> list[Candidate]:
    """The paper's grid (linear, 1–2 hidden layers × 1024–8192 units × dropout 0.75–0.99, no 2×8192) × lr.

    Ordered so a time budget is well spent: first the configs most likely to win (a 1×2048 MLP at
    dropout 0.9, the linear probe, a 1×1024 at 0.75, then wider ones up to the paper's GiantSteps winner
    2×4096); then the rest of the grid from cheapest to dearest (seeded shuffle among equals), first at
    lr 1e-3 and then at 3e-4.
    """
    first = [
        {"hidden_layers": 1, "hidden_dim": 2048, "dropout": 0.9},
        {"hidden_layers": 0},
        {"hidden_layers": 1, "hidden_dim": 1024, "dropout": 0.75},
        {"hidden_layers": 1, "hidden_dim": 4096, "dropout": 0.9},
        {"hidden_layers": 2, "hidden_dim": 4096, "dropout": 0.9},
    ]
    grid = [
        {"hidden_layers": layers, "hidden_dim": dim, "dropout": dropout}
        for layers in (1, 2)
        for dim in (1024, 2048, 4096, 8192)
        for dropout in (0.75, 0.9, 0.95, 0.99)
        if not (layers == 2 and dim == 8192)
    ]
    rest = [settings for settings in grid if settings not in first]
    random.Random(seed).shuffle(rest)
    rest.sort(key=lambda settings: _parameter_count(input_dim=input_dim, **settings))
    base = {"backbone": backbone_name, "input_dim": input_dim}
    return [
        Candidate(head=HeadConfig(**base, **settings), train=TrainConfig(learning_rate=lr))
        for lr in (1e-3, 3e-4)
        for settings in first + rest
    ]


def _parameter_count(*, input_dim: int, hidden_layers: int, hidden_dim: int = 0, dropout: float = 0.0) -> int:
    widths = [input_dim] + [hidden_dim] * hidden_layers + [24]
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def head_parameters(config: HeadConfig) -> int:
    return _parameter_count(
        input_dim=config.input_dim, hidden_layers=config.hidden_layers, hidden_dim=config.hidden_dim
    )


def estimated_seconds(config: HeadConfig, trials: Sequence[dict]) -> float:
    """Time of a finished trial of similar size (within 4×), scaled by parameter count; 0 when none is
    similar, because fixed overheads make tiny trials say nothing about big ones."""
    parameters = head_parameters(config)
    similar = [trial for trial in trials if abs(math.log(trial["parameters"] / parameters)) <= math.log(4)]
    if not similar:
        return 0.0
    nearest = min(similar, key=lambda trial: abs(math.log(trial["parameters"] / parameters)))
    return nearest["seconds"] * parameters / nearest["parameters"]


def compact_candidates(*, backbone_name: str, input_dim: int) -> list[Candidate]:
    """Small heads for compact cyclic embeddings (pitch-class layouts, 12 views per track): cross-validating
    each costs folds + 1 trainings, so the list is short and cheap first — a linear probe, then MLPs."""
    base = {"backbone": backbone_name, "input_dim": input_dim}
    return [
        Candidate(head=HeadConfig(**base, hidden_layers=0), train=TrainConfig(epochs=30, learning_rate=3e-3)),
        Candidate(head=HeadConfig(**base, hidden_dim=256, dropout=0.5), train=TrainConfig(epochs=30)),
        Candidate(head=HeadConfig(**base, hidden_dim=512, dropout=0.75), train=TrainConfig(epochs=40)),
        Candidate(head=HeadConfig(**base, hidden_dim=1024, dropout=0.9), train=TrainConfig(epochs=40)),
    ]
