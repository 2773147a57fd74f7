"""Choosing and calibrating key heads on frozen window embeddings: selection by k-fold cross-validation
and an ensemble of the candidates that finished, temperature on out-of-fold predictions (one head's
training loop is ml.fitting)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ml.augmentation import TrainingExample, roll_pitch_classes, transposed_views
from ml.calibration import fit_temperature, fit_temperature_to_accuracy
from ml.candidates import (
    Candidate,
    TrainConfig,
    compact_candidates,
    default_candidates,
    estimated_seconds,
    head_parameters,
)
from ml.evaluation import metrics_from_probabilities
from ml.fitting import Progress, train_head, validation_score
from ml.heads import (
    N_KEYS,
    Head,
    HeadConfig,
    HeadEnsemble,
    KeyHead,
    apply_temperature,
    track_log_probabilities,
)
from ml.keys import Key
from ml.metrics import expected_calibration_error, negative_log_likelihood

# Re-exported: the worker and the CLI import what they need for training from here.
__all__ = [
    "Candidate",
    "TrainConfig",
    "TrainedModel",
    "TrainingExample",
    "cross_validate",
    "default_candidates",
    "fit_temperature",
    "fold_assignment",
    "roll_pitch_classes",
    "search_heads",
    "train_head",
    "train_key_model",
    "transposed_views",
]

# Below this many labelled tracks cross-validation cannot choose between heads or fit a temperature:
# one fixed, strongly regularised config is trained on everything instead.
MIN_TRACKS_FOR_SEARCH = 20
VALIDATION_FRACTION = 0.2
FOLDS = 5
# Cyclic embeddings up to this size get ml.candidates.compact_candidates by default.
COMPACT_INPUT_DIM = 512
FALLBACK_HEAD = {"hidden_layers": 1, "hidden_dim": 1024, "dropout": 0.9}
FALLBACK_TRAIN = {"epochs": 30}
# Each ensemble member is trained on all labels with up to this many seeds (as the budget allows): the
# 240-label model then moves less with the seed and the order labels arrive in (docs/benchmarks.md).
SEEDS_PER_MEMBER = 3
SEED_STRIDE = 7919


@dataclass
class SearchResult:
    best_config: HeadConfig
    best_train_config: TrainConfig
    best_head: KeyHead
    trials: list[dict]


@dataclass
class TrainedModel:
    head: Head
    config: HeadConfig
    train_config: TrainConfig  # the best member's, for an ensemble
    metrics_validation: dict | None
    ece_before: float | None
    ece_after: float | None
    trials: list[dict] = field(default_factory=list)


def _trial(candidate: Candidate, score: tuple[float, float], seconds: float, cut_short: bool) -> dict:
    return {
        "config": candidate.describe(),
        "hidden_layers": candidate.head.hidden_layers,
        "hidden_dim": candidate.head.hidden_dim,
        "dropout": candidate.head.dropout,
        "learning_rate": candidate.train.learning_rate,
        "parameters": head_parameters(candidate.head),
        "weighted": score[0],
        "nll": -score[1],
        "seconds": seconds,
        "cut_short": cut_short,
    }


def _affordable(candidate: Candidate, trials: list[dict], deadline: float, cost: float = 1.0) -> bool:
    remaining = deadline - time.monotonic()
    if not trials:
        return True  # at least one candidate always runs
    # A trial that cannot finish in time would only be cut short and lose to a finished one.
    return remaining > 0 and estimated_seconds(candidate.head, trials) * cost <= remaining


def _keys(examples: Sequence[TrainingExample]) -> list[Key]:
    return [example.key for example in examples]


def _score_of(probabilities: np.ndarray, keys: Sequence[Key]) -> tuple[float, float]:
    metrics = metrics_from_probabilities(probabilities, keys)
    return metrics["weighted"], -metrics["nll"]


# --- selection on a given validation set --------------------------------------------------------------------


def search_heads(
    *,
    train: Sequence[TrainingExample],
    validation: Sequence[TrainingExample],
    backbone_name: str,
    cyclic: bool,
    time_budget_s: float,
    seed: int,
    device: str = "cpu",
    candidates: Sequence[Candidate] | None = None,
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
    best: tuple[tuple[float, float], KeyHead, Candidate] | None = None
    for number, candidate in enumerate(candidates):
        if not _affordable(candidate, trials, deadline):
            continue
        trial_started = time.monotonic()
        head = train_head(
            train=train,
            config=candidate.head,
            train_config=candidate.train,
            seed=seed,
            device=device,
            cyclic=cyclic,
            validation=validation,
            deadline=deadline,
        )
        score = validation_score(head, validation)
        trials.append(_trial(candidate, score, time.monotonic() - trial_started, time.monotonic() > deadline))
        if best is None or score > best[0]:
            best = (score, head, candidate)
        if progress:
            progress(
                min(max((number + 1) / len(candidates), (time.monotonic() - started) / time_budget_s), 1)
            )
    _, best_head, best_candidate = best
    logits = track_log_probabilities(best_head, [example.window_embeddings for example in validation])
    best_head.set_temperature(
        fit_temperature(logits, np.array([example.key.index for example in validation]))
    )
    return SearchResult(
        best_config=best_head.config,
        best_train_config=best_candidate.train,
        best_head=best_head,
        trials=trials,
    )


# --- selection by k-fold cross-validation -------------------------------------------------------------------


@dataclass
class Scored:
    """A candidate that cross-validation ran, its out-of-fold log-probabilities and its trial record."""

    candidate: Candidate
    out_of_fold: np.ndarray  # (n_examples, 24) log window-averaged probabilities, before temperature
    trial: dict


@dataclass
class CrossValidation:
    """Every candidate that ran, ranked: those that finished, best first, then any the deadline cut
    short (which can only win when nothing finished); `trials` in the order they ran."""

    ranked: list[Scored]
    trials: list[dict]

    @property
    def winner(self) -> Scored:
        return self.ranked[0]

    @property
    def finished(self) -> list[Scored]:
        return [scored for scored in self.ranked if not scored.trial["cut_short"]]


def fold_assignment(n_examples: int, *, folds: int, seed: int) -> np.ndarray:
    """Fold number of every example: a seeded permutation dealt round-robin, so folds differ by ≤ 1."""
    order = np.random.default_rng(seed).permutation(n_examples)
    assignment = np.empty(n_examples, dtype=np.int64)
    assignment[order] = np.arange(n_examples) % folds
    return assignment


def cross_validate(
    examples: Sequence[TrainingExample],
    *,
    candidates: Sequence[Candidate],
    cyclic: bool,
    folds: int,
    seed: int,
    deadline: float,
    device: str = "cpu",
    progress: Progress | None = None,
) -> CrossValidation:
    """Score candidates in order by out-of-fold predictions (every label is used for testing once) until
    the deadline; the best (weighted score, then NLL) wins. At least one candidate always runs."""
    assignment = fold_assignment(len(examples), folds=folds, seed=seed)
    keys = _keys(examples)
    trials: list[dict] = []
    ran: list[tuple[tuple[float, float], Scored]] = []
    for number, candidate in enumerate(candidates):
        if not _affordable(candidate, trials, deadline):
            continue
        trial_started = time.monotonic()
        out_of_fold = np.zeros((len(examples), N_KEYS), dtype=np.float64)
        for fold in range(folds):
            held_out = np.flatnonzero(assignment == fold)
            fold_head = train_head(
                train=[examples[i] for i in np.flatnonzero(assignment != fold)],
                config=candidate.head,
                train_config=candidate.train,
                seed=seed * 100 + fold,
                device=device,
                cyclic=cyclic,
                progress=_part_of(progress, number + fold / folds, 1 / folds, len(candidates)),
                deadline=deadline,
            )
            out_of_fold[held_out] = track_log_probabilities(
                fold_head, [examples[i].window_embeddings for i in held_out]
            )
        score = _score_of(np.exp(out_of_fold), keys)
        cut_short = time.monotonic() > deadline
        trials.append(_trial(candidate, score, time.monotonic() - trial_started, cut_short))
        ran.append((score, Scored(candidate, out_of_fold, trials[-1])))
    # Finished before cut short, then best (weighted score, then NLL) first.
    ran.sort(key=lambda item: (not item[1].trial["cut_short"], item[0]), reverse=True)
    return CrossValidation(ranked=[scored for _, scored in ran], trials=trials)


def _part_of(progress: Progress | None, done: float, share: float, total: int) -> Progress | None:
    """A train_head progress callback reporting into `progress` as part of `total` equal jobs, `done` of
    which are behind it and `share` of one is this head: every epoch reports, so a long selection keeps
    the worker's heartbeat (its progress) alive."""
    if progress is None:
        return None
    return lambda fraction: progress(min((done + share * fraction) / total, 1.0))


def ensemble_members(selected: CrossValidation, *, folds: int, seconds_left: float) -> list[Scored]:
    """Every candidate that finished cross-validation, best first, as long as training it on all labels
    fits in `seconds_left`; at least the winner.

    Averaging near-equal heads instead of picking one: on 240 devbench labels the four compact
    candidates score within 0.01 of each other out of fold but 0.02–0.04 apart on test, so the pick —
    and the test score — changed with the seed; their mean does not (docs/benchmarks.md).
    """
    finished = selected.finished
    if not finished:  # nothing finished in time: the best of what was cut short
        return [selected.winner]
    members, planned = [], 0.0
    for scored in finished:
        # A training on all labels costs about one fold's, which saw (folds - 1) / folds of them.
        cost = scored.trial["seconds"] / max(folds - 1, 1)
        if members and planned + cost > seconds_left:
            continue
        members.append(scored)
        planned += cost
    return members


def mean_log_probabilities(log_probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """log of the members' mean probabilities: what HeadEnsemble predicts, from each member's log p."""
    mean = np.mean([np.exp(values) for values in log_probabilities], axis=0)
    return np.log(np.clip(mean, 1e-12, None))


# --- the entry point ------------------------------------------------------------------------------------------


def split_validation(
    examples: Sequence[TrainingExample], *, fraction: float = VALIDATION_FRACTION, seed: int
) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """A seeded random slice of `examples` held out (for callers that want one fixed validation set)."""
    order = np.random.default_rng(seed).permutation(len(examples))
    n_validation = max(1, round(len(examples) * fraction))
    held_out = set(order[:n_validation].tolist())
    train = [example for i, example in enumerate(examples) if i not in held_out]
    validation = [example for i, example in enumerate(examples) if i in held_out]
    return train, validation


def _calibrated_metrics(log_probabilities: np.ndarray, keys: Sequence[Key], temperature: float) -> dict:
    before = np.exp(log_probabilities)
    after = apply_temperature(before, temperature)
    metrics = metrics_from_probabilities(after, keys)
    labels = np.array([key.index for key in keys])
    metrics["nll_after"] = metrics.pop("nll")
    metrics["nll_before"] = negative_log_likelihood(before, labels)
    metrics["ece_before"] = expected_calibration_error(before, labels)
    # Beside `correct`, so a report shows whether the confidences mean what they say.
    metrics["mean_confidence"] = float(after.max(axis=1).mean())
    metrics["temperature"] = float(temperature)
    return metrics


def train_key_model(
    *,
    train: Sequence[TrainingExample],
    validation: Sequence[TrainingExample] | None = None,
    backbone_name: str,
    cyclic: bool,
    time_budget_s: float,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
    candidates: Sequence[Candidate] | None = None,
    folds: int = FOLDS,
) -> TrainedModel:
    """Select, calibrate, train on every label and report: the one call the worker and the CLI make.

    Without `validation`: candidates are compared by `folds`-fold cross-validation; every candidate that
    finished (see `ensemble_members`) is trained on all of `train` and the returned head is their
    HeadEnsemble (or the one head), its temperature fitted on the ensemble's out-of-fold predictions;
    `metrics_validation` are the ensemble's out-of-fold metrics. With `validation`, it selects and
    calibrates on that set instead (and trains on `train` only). With fewer than
    MIN_TRACKS_FOR_SEARCH tracks a fixed config is trained on everything at temperature 1.
    """
    train, validation = list(train), list(validation or [])
    if not train and not validation:
        raise ValueError("no labelled tracks to train on")
    input_dim = (train or validation)[0].window_embeddings.shape[1]
    started = time.monotonic()
    deadline = started + time_budget_s
    if len(train) + len(validation) < MIN_TRACKS_FOR_SEARCH:
        config = HeadConfig(backbone=backbone_name, input_dim=input_dim, **FALLBACK_HEAD)
        train_config = TrainConfig(**FALLBACK_TRAIN)
        head = train_head(
            train=train + validation,
            config=config,
            train_config=train_config,
            seed=seed,
            device=device,
            cyclic=cyclic,
            progress=progress,
            deadline=deadline,  # the budget holds for the fallback too
        )
        trial = {"config": config.describe(), "weighted": None, "nll": None, "fallback": True}
        return TrainedModel(head, head.config, train_config, None, None, None, [trial])
    if not candidates:
        # Cyclic embeddings are small and come in 12 views per track: the paper's wide grid would spend
        # the whole budget on its first candidate; compact heads fit them as well (docs/default-head.md).
        candidates = (
            compact_candidates(backbone_name=backbone_name, input_dim=input_dim)
            if cyclic and input_dim <= COMPACT_INPUT_DIM
            else default_candidates(backbone_name=backbone_name, input_dim=input_dim, seed=seed)
        )
    candidates = list(candidates)
    if validation:
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
        log_probabilities = track_log_probabilities(
            head, [example.window_embeddings for example in validation]
        )
        metrics = _calibrated_metrics(log_probabilities, _keys(validation), head.temperature)
        return TrainedModel(
            head,
            head.config,
            result.best_train_config,
            metrics,
            metrics["ece_before"],
            metrics["ece"],
            result.trials,
        )
    folds = max(2, min(folds, len(train) // 4))
    # What is left after selection trains the ensemble on all labels: one training per member, each about
    # a fold's worth, ~a quarter of the selection's time for four members (ensemble_members plans it).
    selection_deadline = started + time_budget_s * folds / (folds + 1.2)
    report = _part_of(progress, 0.0, 0.9, 1)  # selection is the first 90 %, the final heads the rest
    selected = cross_validate(
        train,
        candidates=candidates,
        cyclic=cyclic,
        folds=folds,
        seed=seed,
        deadline=selection_deadline,
        device=device,
        progress=report,
    )
    labels = np.array([example.key.index for example in train])
    members = ensemble_members(selected, folds=folds, seconds_left=deadline - time.monotonic())
    out_of_fold = mean_log_probabilities([member.out_of_fold for member in members])
    # Top-1 confidence matched to out-of-fold accuracy, not NLL: see fit_temperature_to_accuracy.
    temperature = fit_temperature_to_accuracy(out_of_fold, labels)
    heads: list[KeyHead] = []
    round_seconds, rounds = 0.0, 0
    final = _part_of(progress, 0.9, 0.1, 1)
    for round_number in range(SEEDS_PER_MEMBER):
        round_started = time.monotonic()
        # Another seed of every member only when a whole round fits, so the members keep equal weight.
        if round_number and round_started + round_seconds > deadline:
            break
        for number, member in enumerate(members):
            member.trial["in_ensemble"] = True
            member.trial["seeds"] = round_number + 1
            heads.append(
                train_head(
                    train=train,
                    config=member.candidate.head,
                    train_config=member.candidate.train,
                    seed=seed + SEED_STRIDE * round_number,
                    device=device,
                    cyclic=cyclic,
                    progress=_part_of(
                        final, round_number * len(members) + number, 1, SEEDS_PER_MEMBER * len(members)
                    ),
                    deadline=max(deadline, time.monotonic() + 1.0),
                )
            )
        round_seconds, rounds = time.monotonic() - round_started, round_number + 1
    head = heads[0] if len(heads) == 1 else HeadEnsemble.of(heads)
    head.set_temperature(temperature)
    if progress:
        progress(1.0)
    metrics = _calibrated_metrics(out_of_fold, _keys(train), temperature)
    metrics["folds"] = folds
    # The recipe is fixed — every candidate cross-validated and in the ensemble, SEEDS_PER_MEMBER seeds
    # each — and the budget only caps it; a model the cap cut short says so (and may differ by machine).
    metrics["cut_by_budget"] = not (
        len(selected.finished) == len(candidates)
        and len(members) == len(candidates)
        and rounds == SEEDS_PER_MEMBER
        and time.monotonic() <= deadline
    )
    return TrainedModel(
        head,
        head.config,
        members[0].candidate.train,
        metrics,
        metrics["ece_before"],
        metrics["ece"],
        selected.trials,
    )
