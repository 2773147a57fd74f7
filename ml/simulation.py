"""Active-learning simulation: an annotator who answers with known labels, a head retrained every `step`
labels, and the learning curve on a held-out test set. Imports torch; touches no database."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.active import STRATEGIES, k_center_greedy, uncertainty_scores
from ml.audio import AudioDecodeError
from ml.backbones import get_backbone
from ml.cache import embeddings_cached
from ml.evaluation import head_evaluate
from ml.files import json_write_atomic, write_atomic
from ml.heads import predict_tracks
from ml.keys import Key
from ml.training import TrainingExample, train_key_model

# Per-point fields of a curve; `n` is the number of test tracks.
CURVE_METRICS = (
    "weighted",
    "correct",
    "fifth",
    "relative",
    "parallel",
    "other",
    "fifth_below",
    "weighted_fifth_either",
    "ece",
    "n",
)
BASELINE = "random"


class SimulationError(ValueError):
    """Input the simulation cannot use (a missing or unreadable audio file, an impossible budget)."""


@dataclass(frozen=True)
class EmbeddedTrack:
    path: Path
    key: Key
    window_embeddings: np.ndarray

    @property
    def mean_embedding(self) -> np.ndarray:
        return self.window_embeddings.mean(axis=0)


# (resolved path, size, mtime, backbone name) -> window embeddings: several strategies and seeds in one
# process embed (or read the disk cache for) each file once.
_memory: dict[tuple[str, int, int, str], np.ndarray] = {}
_backbones: dict[str, object] = {}


def _backbone(name: str):
    if name not in _backbones:
        try:
            _backbones[name] = get_backbone(name)
        except ValueError as error:  # an unknown name, or Myna without its weights
            raise SimulationError(str(error)) from error
    return _backbones[name]


def tracks_embed(
    tracks: Sequence[tuple[Path, Key]],
    *,
    backbone_name: str,
    cache_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[EmbeddedTrack]:
    """Window embeddings of every track, computed once per file content (ml.cache) and kept in memory."""
    backbone = _backbone(backbone_name)
    embedded = []
    for path, key in tracks:
        path = Path(path)
        if not path.is_file():
            raise SimulationError(f"{path}: audio file not found; check the CSV's path column")
        stat = path.stat()
        memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, backbone_name)
        if memo_key not in _memory:
            try:
                _memory[memo_key] = embeddings_cached(path, backbone, cache_dir)
            except AudioDecodeError as error:
                raise SimulationError(str(error)) from error
        embedded.append(EmbeddedTrack(path=path, key=key, window_embeddings=_memory[memo_key]))
        if progress:
            progress(1)
    return embedded


def _train(examples: Sequence[EmbeddedTrack], *, backbone_name: str, time_budget_s: float, seed: int):
    trained = train_key_model(
        train=[TrainingExample(window_embeddings=e.window_embeddings, key=e.key) for e in examples],
        backbone_name=backbone_name,
        cyclic=bool(_backbone(backbone_name).cyclic_transposition),
        time_budget_s=time_budget_s,
        seed=seed,
    )
    return trained.head


def _probabilities(head, tracks: Sequence[EmbeddedTrack]) -> np.ndarray:
    return predict_tracks(head, [track.window_embeddings for track in tracks])


def _test_metrics(head, test: Sequence[EmbeddedTrack]) -> dict:
    metrics = head_evaluate(head, [track.window_embeddings for track in test], [track.key for track in test])
    return {name: metrics[name] for name in CURVE_METRICS}


def _query(
    *,
    strategy: str,
    head,
    pool: Sequence[EmbeddedTrack],
    labeled: list[int],
    n_query: int,
    rng: np.random.Generator,
) -> list[int]:
    """The next `n_query` pool indices to label, most informative first."""
    taken = set(labeled)
    unlabeled = np.array([i for i in range(len(pool)) if i not in taken])
    if strategy == BASELINE:
        return [int(i) for i in rng.choice(unlabeled, size=n_query, replace=False)]
    scores = uncertainty_scores(_probabilities(head, [pool[i] for i in unlabeled]))
    if strategy == "diverse":
        picks = k_center_greedy(
            np.stack([pool[i].mean_embedding for i in unlabeled]),
            n_select=n_query,
            anchors=np.stack([pool[i].mean_embedding for i in labeled]),
            uncertainty=scores["entropy"],
        )
        return [int(unlabeled[p]) for p in picks]
    # Stable sort on the negated score: ties keep pool order, so a run is reproducible.
    order = np.argsort(-scores[strategy], kind="stable")[:n_query]
    return [int(unlabeled[p]) for p in order]


def simulate(
    *,
    pool: list[tuple[Path, Key]],
    test: list[tuple[Path, Key]],
    strategy: str,
    budget: int,
    step: int,
    seed: int,
    initial: int | None = None,
    time_budget_s: float,
    backbone_name: str = "pitch_class",
    cache_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """One simulated labeling session: `initial` random pool labels (default `step`), then rounds of
    train → evaluate on `test` → label the `step` pool tracks the strategy picks, until `budget` labels.

    The seed fixes the initial set, so every strategy run with the same seed starts from the same labels.
    Returns the curve ({labels, weighted, correct, …} per round), the labeling order and timings;
    `progress(1)` is called after each training.
    """
    if strategy not in STRATEGIES:
        raise SimulationError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if step < 1 or budget < 1:
        raise SimulationError("budget and step must be at least 1")
    if not pool or not test:
        raise SimulationError("the pool and the test set each need at least one track")
    started = time.monotonic()
    pool_tracks = tracks_embed(pool, backbone_name=backbone_name, cache_dir=cache_dir)
    test_tracks = tracks_embed(test, backbone_name=backbone_name, cache_dir=cache_dir)
    budget = min(budget, len(pool_tracks))
    initial = min(step if initial is None else initial, budget)
    if initial < 1:
        raise SimulationError("the initial labeled set needs at least one track")

    rng = np.random.default_rng(seed)
    labeled = [int(i) for i in rng.choice(len(pool_tracks), size=initial, replace=False)]
    points = []
    for round_number in range(math.ceil((budget - initial) / step) + 1):
        round_started = time.monotonic()
        head = _train(
            [pool_tracks[i] for i in labeled],
            backbone_name=backbone_name,
            time_budget_s=time_budget_s,
            seed=seed * 1000 + round_number,
        )
        train_seconds = time.monotonic() - round_started
        points.append(
            {
                "labels": len(labeled),
                **_test_metrics(head, test_tracks),
                "head": head.config.describe(),
                "train_seconds": round(train_seconds, 2),
            }
        )
        if progress:
            progress(1)
        if len(labeled) >= budget:
            break
        labeled += _query(
            strategy=strategy,
            head=head,
            pool=pool_tracks,
            labeled=labeled,
            n_query=min(step, budget - len(labeled)),
            rng=rng,
        )
    return {
        "strategy": strategy,
        "seed": seed,
        "budget": budget,
        "step": step,
        "initial": initial,
        "n_pool": len(pool_tracks),
        "n_test": len(test_tracks),
        "backbone": backbone_name,
        "time_budget_s": time_budget_s,
        "points": points,
        "order": labeled,
        "seconds": round(time.monotonic() - started, 2),
    }


def simulation_rounds(*, n_pool: int, budget: int, step: int, initial: int | None = None) -> int:
    """How many trainings one `simulate` call runs (for a progress bar)."""
    budget = min(budget, n_pool)
    initial = min(step if initial is None else initial, budget)
    return math.ceil(max(budget - initial, 0) / step) + 1


# --- summaries ---------------------------------------------------------------------------------------------


def curve_mean(runs: Sequence[dict]) -> list[dict]:
    """Average the curves of several seeds point by point: each metric's mean, plus the weighted score's
    standard deviation, min and max over seeds."""
    by_labels: dict[int, list[dict]] = {}
    for run in runs:
        for point in run["points"]:
            by_labels.setdefault(point["labels"], []).append(point)
    curve = []
    for labels in sorted(by_labels):
        points = by_labels[labels]
        averaged: dict = {"labels": labels, "seeds": len(points)}
        for name in CURVE_METRICS:
            averaged[name] = float(np.mean([point[name] for point in points]))
        averaged["n"] = int(points[0]["n"])
        weighted = [point["weighted"] for point in points]
        averaged["weighted_std"] = float(np.std(weighted))
        averaged["weighted_min"] = float(np.min(weighted))
        averaged["weighted_max"] = float(np.max(weighted))
        curve.append(averaged)
    return curve


def labels_to_reach(points: Sequence[dict], threshold: float) -> int | None:
    """The fewest labels at which a curve's weighted score is at least `threshold` (None: never)."""
    for point in points:
        if point["weighted"] >= threshold - 1e-9:
            return int(point["labels"])
    return None


def reach_table(runs_by_strategy: dict[str, list[dict]], thresholds: Sequence[float]) -> dict:
    """{strategy: {threshold: {"mean_curve": labels, "per_seed": [labels or None, …]}}}."""
    table: dict = {}
    for strategy, runs in runs_by_strategy.items():
        table[strategy] = {
            f"{threshold:g}": {
                "mean_curve": labels_to_reach(curve_mean(runs), threshold),
                "per_seed": [labels_to_reach(run["points"], threshold) for run in runs],
            }
            for threshold in thresholds
        }
    return table


def result_write(path: Path, result: dict) -> None:
    json_write_atomic(path, result, indent=1)


def curves_plot(
    path: Path, *, curves: dict[str, list[dict]], thresholds: Sequence[float], title: str
) -> None:
    """Weighted score against labels, one line per strategy with its min–max band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    for strategy, curve in curves.items():
        labels = [point["labels"] for point in curve]
        style = {"color": "0.4", "linestyle": "--"} if strategy == BASELINE else {}
        line = axes.plot(labels, [point["weighted"] for point in curve], marker=".", label=strategy, **style)
        axes.fill_between(
            labels,
            [point["weighted_min"] for point in curve],
            [point["weighted_max"] for point in curve],
            color=line[0].get_color(),
            alpha=0.15,
            linewidth=0,
        )
    for threshold in thresholds:
        axes.axhline(threshold, color="0.8", linewidth=0.8, zorder=0)
    axes.set_xlabel("labels")
    axes.set_ylabel("weighted score (test)")
    axes.set_ylim(0, 1)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    write_atomic(path, lambda target: figure.savefig(target, format="png"))
    plt.close(figure)
