"""KeyMyna's classification heads on frozen embeddings: config, module, checkpoints, window-averaged prediction."""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml.files import write_atomic
from ml.keys import ALL_KEYS

N_KEYS = 24
FORMAT_VERSION = 1
CHECKPOINT_KIND = "keyweb.key_head"
LABELS = [key.mir_eval for key in ALL_KEYS]
_PREDICT_CHUNK = 4096


class HeadLoadError(RuntimeError):
    """A head checkpoint is missing, unreadable, or was written for something this code cannot rebuild."""


@dataclass
class HeadConfig:
    """The head's architecture (and its fitted temperature): everything needed to rebuild it from a checkpoint.

    How it is trained (learning rate, epochs…) is `ml.training.TrainConfig`, stored beside it.
    """

    backbone: str
    input_dim: int
    hidden_layers: int = 1  # 0 = linear probe
    hidden_dim: int = 2048
    dropout: float = 0.9
    temperature: float = 1.0
    # An ensemble (HeadEnsemble): each member's (hidden_layers, hidden_dim, dropout) as a dict, best
    # first; the fields above then repeat the first member's. Empty for a single head.
    members: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.hidden_layers not in (0, 1, 2):
            raise ValueError(f"hidden_layers must be 0, 1 or 2, got {self.hidden_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.input_dim < 1 or self.hidden_dim < 1:
            raise ValueError("input_dim and hidden_dim must be positive")

    def describe(self) -> str:
        if self.members:
            # Several seeds of one architecture are one term with their count: "1x256 dropout 0.5 ×3".
            counts = Counter(member.describe() for member in self.member_configs())
            return "mean of " + " + ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.items())
        if self.hidden_layers == 0:
            return "linear"
        return f"{self.hidden_layers}x{self.hidden_dim} dropout {self.dropout}"

    def member_configs(self) -> list[HeadConfig]:
        """Each ensemble member as a single head's config (temperature 1: the ensemble holds it)."""
        return [
            HeadConfig(backbone=self.backbone, input_dim=self.input_dim, **member) for member in self.members
        ]

    def shape(self) -> tuple:
        """What the weights depend on (everything but the temperature)."""
        return (self.backbone, self.input_dim, self.hidden_layers, self.hidden_dim, self.members)

    @classmethod
    def from_dict(cls, values: dict) -> HeadConfig:
        """From a checkpoint's config; checkpoints before TrainConfig also stored training settings there."""
        names = {item.name for item in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in names})


class KeyHead(nn.Module):
    """Standardise → (Linear → ReLU [→ Dropout]) × hidden_layers → Linear(24). Returns logits.

    As in the KeyMyna paper, dropout follows the first hidden layer only: at rates of 0.9–0.99 a second
    dropout would leave the output layer almost nothing to read.
    """

    def __init__(self, *, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        # Fitted on training embeddings so one learning rate works for every backbone's feature scale.
        self.register_buffer("input_mean", torch.zeros(config.input_dim))
        self.register_buffer("input_std", torch.ones(config.input_dim))
        layers: list[nn.Module] = []
        width = config.input_dim
        for layer in range(config.hidden_layers):
            layers += [nn.Linear(width, config.hidden_dim), nn.ReLU()]
            if layer == 0:
                layers.append(nn.Dropout(config.dropout))
            width = config.hidden_dim
        layers.append(nn.Linear(width, N_KEYS))
        self.net = nn.Sequential(*layers)

    def fit_standardisation(self, embeddings: np.ndarray) -> None:
        embeddings = np.asarray(embeddings, dtype=np.float64)
        mean = embeddings.mean(axis=0)
        std = embeddings.std(axis=0)
        # Constant features (e.g. an unused channel) must not blow up to inf.
        std = np.where(std < 1e-6, 1.0, std)
        self.input_mean.copy_(torch.as_tensor(mean, dtype=self.input_mean.dtype))
        self.input_std.copy_(torch.as_tensor(std, dtype=self.input_std.dtype))

    @property
    def temperature(self) -> float:
        """Applied to window-averaged probabilities (see `apply_temperature`); lives in the config."""
        return self.config.temperature

    def set_temperature(self, temperature: float) -> None:
        self.config = dataclasses.replace(self.config, temperature=float(temperature))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net((embeddings - self.input_mean) / self.input_std)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class HeadEnsemble(nn.Module):
    """Several heads on the same embedding, their softmaxes averaged.

    forward returns log(mean of the members' softmaxes), so that a window's softmax — and therefore a
    track's window-averaged probabilities — is the members' average: everything written for KeyHead
    (window_logits, predict_tracks, save_head…) works unchanged. The temperature is the ensemble's.
    """

    def __init__(self, *, config: HeadConfig) -> None:
        super().__init__()
        if not config.members:
            raise ValueError("an ensemble needs members")
        self.config = config
        self.members = nn.ModuleList(KeyHead(config=member) for member in config.member_configs())

    @classmethod
    def of(cls, heads: list[KeyHead], *, temperature: float = 1.0) -> HeadEnsemble:
        """The ensemble of trained heads (copied); its own architecture fields are the first head's."""
        members = [
            {name: getattr(head.config, name) for name in ("hidden_layers", "hidden_dim", "dropout")}
            for head in heads
        ]
        first = heads[0].config
        config = HeadConfig(
            backbone=first.backbone,
            input_dim=first.input_dim,
            **members[0],
            temperature=temperature,
            members=members,
        )
        ensemble = cls(config=config)
        for target, head in zip(ensemble.members, heads, strict=True):
            target.load_state_dict(head.state_dict())
        return ensemble.to(heads[0].input_mean.device).eval()

    @property
    def input_mean(self) -> torch.Tensor:  # where the weights live (see _head_device)
        return self.members[0].input_mean

    temperature = KeyHead.temperature
    set_temperature = KeyHead.set_temperature
    num_parameters = KeyHead.num_parameters

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        log_probabilities = torch.stack([member(embeddings).log_softmax(-1) for member in self.members])
        return torch.logsumexp(log_probabilities, dim=0) - math.log(len(self.members))


Head = KeyHead | HeadEnsemble


def build_head(config: HeadConfig) -> Head:
    return HeadEnsemble(config=config) if config.members else KeyHead(config=config)


@dataclass
class LoadedHead:
    head: Head
    config: HeadConfig
    metrics: dict | None = None
    extra: dict = field(default_factory=dict)


def save_head(
    path: str | os.PathLike, *, head: Head, config: HeadConfig, metrics: dict | None, extra: dict | None
) -> Path:
    """Write one self-describing checkpoint atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    if config.shape() != head.config.shape():
        raise ValueError(f"config {config} does not describe this head ({head.config})")
    config = dataclasses.replace(config, temperature=head.temperature)
    checkpoint = {
        "kind": CHECKPOINT_KIND,
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(config),
        "state_dict": {name: tensor.detach().cpu().clone() for name, tensor in head.state_dict().items()},
        "labels": list(LABELS),
        "temperature": head.temperature,
        "metrics": metrics,
        "extra": extra or {},
    }
    write_atomic(path, lambda temp_path: torch.save(checkpoint, temp_path))
    return path


def load_head(path: str | os.PathLike, *, map_location: str = "cpu") -> LoadedHead:
    """Rebuild a head from its checkpoint alone, in eval mode; HeadLoadError says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise HeadLoadError(f"head file {path} does not exist")
    try:
        # weights_only: a checkpoint is data; loading one must never run code from the file.
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise HeadLoadError(
            f"head file {path} is not a readable checkpoint ({error.__class__.__name__})"
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != CHECKPOINT_KIND:
        raise HeadLoadError(f"head file {path} is not a KeyWeb key head checkpoint")
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise HeadLoadError(
            f"head file {path} has format version {checkpoint.get('format_version')!r}; "
            f"this code reads version {FORMAT_VERSION}"
        )
    if checkpoint.get("labels") != LABELS:
        raise HeadLoadError(f"head file {path} uses a different label order than ml.keys.ALL_KEYS")
    try:
        config = HeadConfig.from_dict(checkpoint["config"])
        head = build_head(config)
        head.load_state_dict(checkpoint["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise HeadLoadError(
            f"head file {path} does not match the current head definition: {error}"
        ) from error
    head.eval()
    return LoadedHead(
        head=head, config=config, metrics=checkpoint.get("metrics"), extra=checkpoint.get("extra") or {}
    )


class EmbeddingMismatch(ValueError):
    """Window embeddings of another size than the head's: it was trained on another backbone version."""


def _head_device(head: Head) -> torch.device:
    return head.input_mean.device


def window_logits(head: Head, window_embeddings: np.ndarray) -> np.ndarray:
    """Raw logits of every window, before temperature: shape (n_windows, 24)."""
    embeddings = np.asarray(window_embeddings, dtype=np.float32)
    if embeddings.ndim != 2:
        raise ValueError(f"expected window embeddings (n, {head.config.input_dim}), got {embeddings.shape}")
    if embeddings.shape[1] != head.config.input_dim:
        raise EmbeddingMismatch(
            f"the head reads {head.config.input_dim} features per window but the {head.config.backbone} "
            f"backbone now gives {embeddings.shape[1]}: the head was trained on another version of this "
            "backbone's features; train a new one (python -m ml evaluate ... --save-head PATH)"
        )
    was_training = head.training
    head.eval()
    chunks = [np.zeros((0, N_KEYS), dtype=np.float32)]
    try:
        with torch.inference_mode():
            # Chunked so a long batch of tracks through a wide head does not need gigabytes at once.
            for start in range(0, len(embeddings), _PREDICT_CHUNK):
                batch = torch.from_numpy(embeddings[start : start + _PREDICT_CHUNK]).to(_head_device(head))
                chunks.append(head(batch).float().cpu().numpy())
    finally:
        head.train(was_training)
    return np.concatenate(chunks, axis=0)


def window_probabilities(head: Head, window_embeddings: np.ndarray) -> np.ndarray:
    """Softmax of every window's logits (no temperature): shape (n_windows, 24)."""
    return softmax(window_logits(head, window_embeddings))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return (exponentials / exponentials.sum(axis=-1, keepdims=True)).astype(np.float32)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature on window-averaged probabilities: softmax(log p / T). T = 1 changes nothing.

    Applied after averaging, not per window: when windows disagree, the average of per-window
    softmaxes cannot exceed the windows' agreement rate whatever the per-window temperature, so only a
    track-level temperature can calibrate what `predict_windows` returns. The argmax never changes.
    """
    if temperature == 1.0:
        return np.asarray(probabilities, dtype=np.float32)
    return softmax(np.log(np.clip(probabilities, 1e-12, None)) / temperature)


def track_log_probabilities(head: Head, tracks: list[np.ndarray]) -> np.ndarray:
    """log of each track's window-averaged softmax before temperature: the "logits" to calibrate."""
    return np.log(np.clip(_window_averaged(head, tracks), 1e-12, None))


def _window_averaged(head: Head, tracks: list[np.ndarray]) -> np.ndarray:
    if not tracks:
        return np.zeros((0, N_KEYS), dtype=np.float32)
    lengths = [len(windows) for windows in tracks]
    if min(lengths) == 0:
        raise ValueError("a track has no windows")
    probabilities = window_probabilities(head, np.concatenate(tracks, axis=0))
    track_of_window = np.repeat(np.arange(len(tracks)), lengths)
    sums = np.zeros((len(tracks), N_KEYS), dtype=np.float64)
    np.add.at(sums, track_of_window, probabilities)
    return (sums / np.asarray(lengths)[:, None]).astype(np.float32)


def predict_windows(head: Head, window_embeddings: np.ndarray) -> np.ndarray:
    """Key probabilities (24,) of one track: per-window softmax averaged over windows (as in the paper),
    then the head's temperature."""
    return predict_tracks(head, [np.asarray(window_embeddings)])[0]


def predict_tracks(head: Head, tracks: list[np.ndarray]) -> np.ndarray:
    """`predict_windows` for many tracks in one forward pass: shape (n_tracks, 24)."""
    return apply_temperature(_window_averaged(head, tracks), float(head.temperature))
