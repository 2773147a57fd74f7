"""Training key heads on frozen window embeddings: augmentation by transposition, the loop, search, calibration."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange
from torch.nn import functional as F

from ml.heads import HeadConfig, KeyHead, apply_temperature, predict_tracks, softmax, track_log_probabilities
from ml.keys import Key
from ml.metrics import expected_calibration_error, key_metrics, negative_log_likelihood

Progress = Callable[[float], None]
# Below this many labelled tracks a validation slice is too small to choose between heads or fit a
# temperature: one fixed, strongly regularised config is trained on everything instead.
MIN_TRACKS_FOR_SEARCH = 20
VALIDATION_FRACTION = 0.2
FALLBACK_CONFIG = {"hidden_layers": 1, "hidden_dim": 1024, "dropout": 0.9, "epochs": 30}
# An epoch is at least this many optimiser steps, so a handful of tracks still trains properly.
MIN_STEPS_PER_EPOCH = 20


@dataclass
class TrainingExample:
    """One labelled track. `shifted[k]` holds the embeddings of the audio pitch-shifted by k semitones."""

    window_embeddings: np.ndarray
    key: Key
    shifted: dict[int, np.ndarray] | None = None


@dataclass
class SearchResult:
    best_config: HeadConfig
    best_head: KeyHead
    trials: list[dict]


@dataclass
class TrainedModel:
    head: KeyHead
    config: HeadConfig
    metrics_validation: dict | None
    ece_before: float | None
    ece_after: float | None
    trials: list[dict] = field(default_factory=list)


# --- augmentation ------------------------------------------------------------------------------------


def roll_pitch_classes(window_embeddings: np.ndarray, semitones: int) -> np.ndarray:
    """Transpose cyclic embeddings laid out as (channels, 12) pitch classes, C first, flattened row-major."""
    if window_embeddings.shape[-1] % 12:
        raise ValueError(
            f"cyclic embeddings need a multiple of 12 features, got {window_embeddings.shape[-1]}"
        )
    by_pitch_class = rearrange(window_embeddings, "window (channel pitch) -> window channel pitch", pitch=12)
    rolled = np.roll(by_pitch_class, semitones, axis=-1)
    return rearrange(rolled, "window channel pitch -> window (channel pitch)")


def transposed_views(example: TrainingExample, *, cyclic: bool) -> list[tuple[np.ndarray, Key]]:
    """The track in every key we can make from it: all 12 for cyclic embeddings, else the stored shifts.

    For cyclic backbones this also balances the classes: every track counts once in each key of its mode.
    """
    if cyclic:
        return [
            (roll_pitch_classes(example.window_embeddings, k), example.key.transpose(k)) for k in range(-6, 6)
        ]
    views = [(example.window_embeddings, example.key)]
    for semitones, embeddings in sorted((example.shifted or {}).items()):
        if semitones % 12:
            views.append((embeddings, example.key.transpose(semitones)))
    return views


@dataclass
class _Views:
    """All training views' windows stacked, with where each view starts, how many windows it has, its label."""

    windows: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    @classmethod
    def build(cls, examples: Sequence[TrainingExample], *, cyclic: bool) -> _Views:
        windows, lengths, labels = [], [], []
        for example in examples:
            for embeddings, key in transposed_views(example, cyclic=cyclic):
                if len(embeddings) == 0:
                    raise ValueError(f"a training track in {key} has no windows")
                windows.append(np.asarray(embeddings, dtype=np.float32))
                lengths.append(len(embeddings))
                labels.append(key.index)
        lengths_array = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths_array)[:-1]])
        return cls(np.concatenate(windows), starts, lengths_array, np.asarray(labels, dtype=np.int64))

    def sample_windows(self, views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random window of each view: every track counts the same however long it is."""
        return self.starts[views] + (rng.random(len(views)) * self.lengths[views]).astype(np.int64)


# --- the training loop ---------------------------------------------------------------------------------


def _validation_score(head: KeyHead, validation: Sequence[TrainingExample]) -> tuple[float, float]:
    """(weighted score, −NLL): bigger is better; NLL breaks the ties a small validation set has."""
    probabilities = predict_tracks(head, [example.window_embeddings for example in validation])
    reference = [example.key for example in validation]
    estimated = [Key.from_index(int(i)) for i in probabilities.argmax(axis=1)]
    labels = np.array([key.index for key in reference])
    return key_metrics(reference, estimated)["weighted"], -negative_log_likelihood(probabilities, labels)


def train_head(
    *,
    train: Sequence[TrainingExample],
    config: HeadConfig,
    seed: int,
    device: str = "cpu",
    cyclic: bool,
    progress: Progress | None = None,
    validation: Sequence[TrainingExample] | None = None,
    deadline: float | None = None,
) -> KeyHead:
    """AdamW + cross-entropy on windows; keeps the best epoch on `validation` when one is given.

    An epoch visits every (track, transposition) view once, through one randomly drawn window of it, and
    is at least MIN_STEPS_PER_EPOCH steps. `deadline` (a time.monotonic() value) ends training early so a
    search keeps its time budget.
    """
    if not train:
        raise ValueError("no training examples")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    views = _Views.build(train, cyclic=cyclic)
    if views.windows.shape[1] != config.input_dim:
        raise ValueError(
            f"embeddings have {views.windows.shape[1]} features but the config says {config.input_dim}"
        )

    head = KeyHead(config=config)
    head.fit_standardisation(views.windows)
    head.to(device=device, dtype=torch.float32)
    optimizer = torch.optim.AdamW(
        head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    windows = torch.from_numpy(views.windows).to(device)
    labels = torch.from_numpy(views.labels).to(device)
    n_views = len(views.labels)
    batch_size = min(config.batch_size, n_views)
    steps_per_epoch = max(math.ceil(n_views / batch_size), MIN_STEPS_PER_EPOCH)

    best_score, best_state, epochs_since_best = None, None, 0
    for epoch in range(config.epochs):
        head.train()
        passes = math.ceil(steps_per_epoch * batch_size / n_views)
        order = np.concatenate([rng.permutation(n_views) for _ in range(passes)])
        for step in range(steps_per_epoch):
            batch_views = order[step * batch_size : (step + 1) * batch_size]
            batch_windows = torch.from_numpy(views.sample_windows(batch_views, rng)).to(device)
            loss = F.cross_entropy(head(windows[batch_windows]), labels[batch_views])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if deadline is not None and time.monotonic() > deadline:
                break
        if progress:
            progress((epoch + 1) / config.epochs)
        if validation:
            score = _validation_score(head, validation)
            if best_score is None or score > best_score:
                best_score, best_state, epochs_since_best = score, copy.deepcopy(head.state_dict()), 0
            else:
                epochs_since_best += 1
                if epochs_since_best >= config.patience:
                    break
        if deadline is not None and time.monotonic() > deadline:
            break
    if best_state is not None:
        head.load_state_dict(best_state)
    return head.eval()


# --- calibration ----------------------------------------------------------------------------------------


TEMPERATURE_RANGE = (0.05, 20.0)
# Standard deviation of the Gaussian prior on log T. A small or perfectly classified validation set keeps
# lowering NLL as T → 0; the prior, whose weight shrinks as 1/n, stops that from making a head wildly
# overconfident, while a large validation set overrides it.
LOG_TEMPERATURE_PRIOR = 1.0


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising held-out NLL of softmax(logits / T) plus a weak prior on log T.

    `logits` is (n_tracks, 24); for a head, pass `track_log_probabilities` (what `predict_windows`
    divides by T). A log-spaced grid that contains 1.0 is refined by golden-section search on log T;
    since the prior is zero at T = 1, the NLL at the result is never worse than uncalibrated.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} do not match")
    if len(labels) == 0:
        return 1.0
    prior_weight = 1.0 / (2 * LOG_TEMPERATURE_PRIOR**2 * len(labels))

    def objective(log_t: float) -> float:
        return negative_log_likelihood(softmax(logits / math.exp(log_t)), labels) + prior_weight * log_t**2

    low_t, high_t = TEMPERATURE_RANGE
    grid = np.sort(np.append(np.linspace(math.log(low_t), math.log(high_t), 41), 0.0))
    values = [objective(x) for x in grid]
    best = int(np.argmin(values))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(25):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if objective(a) < objective(b):
            high = b
        else:
            low = a
    refined = (low + high) / 2
    return float(math.exp(refined if objective(refined) <= values[best] else grid[best]))


# --- hyperparameter search ---------------------------------------------------------------------------------


def default_candidates(*, backbone_name: str, input_dim: int, seed: int = 0) -> list[HeadConfig]:
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
        HeadConfig(**base, **settings, learning_rate=lr) for lr in (1e-3, 3e-4) for settings in first + rest
    ]


def _parameter_count(*, input_dim: int, hidden_layers: int, hidden_dim: int = 0, dropout: float = 0.0) -> int:
    widths = [input_dim] + [hidden_dim] * hidden_layers + [24]
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _config_parameters(config: HeadConfig) -> int:
    return _parameter_count(
        input_dim=config.input_dim, hidden_layers=config.hidden_layers, hidden_dim=config.hidden_dim
    )


def _estimated_seconds(config: HeadConfig, trials: Sequence[dict]) -> float:
    """Time of a finished trial of similar size (within 4×), scaled by parameter count; 0 when none is
    similar, because fixed overheads make tiny trials say nothing about big ones."""
    parameters = _config_parameters(config)
    similar = [trial for trial in trials if abs(math.log(trial["parameters"] / parameters)) <= math.log(4)]
    if not similar:
        return 0.0
    nearest = min(similar, key=lambda trial: abs(math.log(trial["parameters"] / parameters)))
    return nearest["seconds"] * parameters / nearest["parameters"]


def search_heads(
    *,
    train: Sequence[TrainingExample],
    validation: Sequence[TrainingExample],
    backbone_name: str,
    cyclic: bool,
    time_budget_s: float,
    seed: int,
    device: str = "cpu",
    candidates: Sequence[HeadConfig] | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Try candidates in order until the time budget is spent (at least one always runs); keep the best
    weighted score on `validation`, then fit its temperature on `validation`."""
    if not train or not validation:
        raise ValueError("search_heads needs training and validation examples")
    input_dim = train[0].window_embeddings.shape[1]
    candidates = list(
        candidates or default_candidates(backbone_name=backbone_name, input_dim=input_dim, seed=seed)
    )
    started = time.monotonic()
    deadline = started + time_budget_s
    trials: list[dict] = []
    best: tuple[tuple[float, float], KeyHead] | None = None
    for number, config in enumerate(candidates):
        remaining = deadline - time.monotonic()
        if trials and remaining <= 0:
            break
        # A trial that cannot finish in time would only be cut short and lose to a finished one.
        if trials and _estimated_seconds(config, trials) > remaining:
            continue
        trial_started = time.monotonic()
        head = train_head(
            train=train,
            config=config,
            seed=seed,
            device=device,
            cyclic=cyclic,
            validation=validation,
            deadline=deadline,
        )
        score = _validation_score(head, validation)
        trials.append(
            {
                "config": config.describe(),
                "hidden_layers": config.hidden_layers,
                "hidden_dim": config.hidden_dim,
                "dropout": config.dropout,
                "learning_rate": config.learning_rate,
                "parameters": _config_parameters(config),
                "weighted": score[0],
                "nll": -score[1],
                "seconds": time.monotonic() - trial_started,
                "cut_short": time.monotonic() > deadline,
            }
        )
        if best is None or score > best[0]:
            best = (score, head)
        if progress:
            progress(
                min(
                    max(
                        (number + 1) / len(candidates),
                        (time.monotonic() - started) / max(time_budget_s, 1e-6),
                    ),
                    1.0,
                )
            )
    best_head = best[1]
    logits = track_log_probabilities(best_head, [example.window_embeddings for example in validation])
    best_head.set_temperature(
        fit_temperature(logits, np.array([example.key.index for example in validation]))
    )
    return SearchResult(best_config=best_head.config, best_head=best_head, trials=trials)


# --- the entry point ------------------------------------------------------------------------------------------


def split_validation(
    examples: Sequence[TrainingExample], *, fraction: float = VALIDATION_FRACTION, seed: int
) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """A seeded random slice of `examples` held out for model selection and calibration."""
    order = np.random.default_rng(seed).permutation(len(examples))
    n_validation = max(1, round(len(examples) * fraction))
    held_out = set(order[:n_validation].tolist())
    train = [example for i, example in enumerate(examples) if i not in held_out]
    validation = [example for i, example in enumerate(examples) if i in held_out]
    return train, validation


def train_key_model(
    *,
    train: Sequence[TrainingExample],
    validation: Sequence[TrainingExample] | None = None,
    backbone_name: str,
    cyclic: bool,
    time_budget_s: float = 60.0,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
    candidates: Sequence[HeadConfig] | None = None,
) -> TrainedModel:
    """Search, calibrate and report: the one call the worker and the CLI make to get a head.

    Without `validation` a slice of `train` is held out. With fewer than MIN_TRACKS_FOR_SEARCH tracks
    in all, a fixed config is trained on every track at temperature 1 and no validation metrics exist.
    """
    train, validation = list(train), list(validation or [])
    if not train and not validation:
        raise ValueError("no labelled tracks to train on")
    input_dim = (train or validation)[0].window_embeddings.shape[1]
    if len(train) + len(validation) < MIN_TRACKS_FOR_SEARCH:
        config = HeadConfig(backbone=backbone_name, input_dim=input_dim, **FALLBACK_CONFIG)
        head = train_head(
            train=train + validation,
            config=config,
            seed=seed,
            device=device,
            cyclic=cyclic,
            progress=progress,
            deadline=time.monotonic() + time_budget_s,  # the budget holds for the fallback too
        )
        trial = {"config": config.describe(), "weighted": None, "nll": None, "fallback": True}
        return TrainedModel(
            head=head,
            config=head.config,
            metrics_validation=None,
            ece_before=None,
            ece_after=None,
            trials=[trial],
        )
    if not validation:
        train, validation = split_validation(train, seed=seed)
    result = search_heads(
        train=train,
        validation=validation,
        backbone_name=backbone_name,
        cyclic=cyclic,
        time_budget_s=time_budget_s,
        seed=seed,
        device=device,
        candidates=candidates,
        progress=progress,
    )
    head = result.best_head
    labels = np.array([example.key.index for example in validation])
    before = np.exp(track_log_probabilities(head, [example.window_embeddings for example in validation]))
    after = apply_temperature(before, float(head.temperature))
    metrics = key_metrics(
        [example.key for example in validation], [Key.from_index(int(i)) for i in after.argmax(axis=1)]
    )
    metrics["nll_before"] = negative_log_likelihood(before, labels)
    metrics["nll_after"] = negative_log_likelihood(after, labels)
    metrics["temperature"] = float(head.temperature)
    return TrainedModel(
        head=head,
        config=head.config,
        metrics_validation=metrics,
        ece_before=expected_calibration_error(before, labels),
        ece_after=expected_calibration_error(after, labels),
        trials=result.trials,
    )
