"""Devbench in one run: cold start, learning curves (3 seeds) with ECE, peers on the same test files,
and `python -m ml predict` against essentia's KeyExtractor on the same 100 files (whole processes).

    python bench/devbench.py --devbench var/devbench --out docs/curves/devbench.json

Never trains or tunes on test.csv: curves draw their labels from train.csv; test.csv is only measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import PeerError, run_peer  # noqa: E402
from ml.backbones import get_backbone  # noqa: E402
from ml.backbones.skey import network_key_probabilities  # noqa: E402
from ml.cache import embeddings_cached_many  # noqa: E402
from ml.cli import TIME_BUDGET_S, default_head_path  # noqa: E402
from ml.evaluation import metrics_from_probabilities  # noqa: E402
from ml.files import json_write_atomic  # noqa: E402
from ml.heads import load_head, predict_tracks  # noqa: E402
from ml.keys import Key, Mode  # noqa: E402
from ml.labelfile import read_label_file  # noqa: E402
from ml.metrics import (  # noqa: E402
    bootstrap_interval,
    calibrated_ece,
    item_scores,
    key_metrics,
    paired_difference,
)
from ml.training import TrainingExample, train_key_model  # noqa: E402

# Zero-label results a backbone entry may hold: the shipped head on this backbone, and (skey networks)
# the network's own key channels with no head at all, which is what pretraining alone gives.
ZERO_LABEL_RESULTS = ("zero_labels", "network_alone")
SUMMARY = ("weighted", "correct", "fifth", "relative", "parallel", "other", "ece", "n")
# The peer every paired interval compares against (issue 10's cold-start target is stated against it).
REFERENCE_PEER = "essentia_bgate"


def minor_weighted(reference: list[Key], estimated: list[Key | None]) -> float:
    pairs = [(r, e) for r, e in zip(reference, estimated, strict=True) if r.mode == Mode.MINOR]
    return key_metrics([r for r, _ in pairs], [e for _, e in pairs])["weighted"]


def summary_of(probabilities: np.ndarray, keys: list[Key]) -> dict:
    metrics = metrics_from_probabilities(probabilities, keys)
    estimated = [Key.from_index(int(i)) for i in probabilities.argmax(axis=1)]
    return {
        **{name: metrics[name] for name in SUMMARY},
        "weighted_ci95": metrics["weighted_ci95"],
        "minor_weighted": minor_weighted(keys, estimated),
        # What a perfectly calibrated model with these confidences would show on this many tracks.
        "ece_floor": calibrated_ece(probabilities),
        # Per test piece, so that later comparisons can be paired piece by piece.
        "estimates": [key.index for key in estimated],
    }


def without_estimates(result: dict) -> dict:
    """A result as the log prints it: the per-piece estimates stay in the JSON only."""
    return {name: value for name, value in result.items() if name != "estimates"}


def piece_scores(result: dict, keys: list[Key]) -> np.ndarray | None:
    """The weighted score of every test piece from a result's `estimates` (None for older JSON)."""
    if "estimates" not in result:
        return None
    return item_scores(keys, [None if i is None else Key.from_index(i) for i in result["estimates"]])


def paired(scores: np.ndarray | None, reference: np.ndarray | None) -> dict:
    """Mean difference of two systems on the same pieces and its 95 % bootstrap interval ({} when either
    side is from a JSON that kept no per-piece estimates)."""
    if scores is None or reference is None:
        return {}
    return paired_difference(scores, reference)


def embed(backbone, paths, cache_dir: Path) -> tuple[list[np.ndarray], float]:
    started = time.perf_counter()
    embeddings, _ = embeddings_cached_many(paths, backbone, cache_dir)
    return embeddings, time.perf_counter() - started


def backbone_from(label: str):
    """A backbone by name, or "skey@CKPT": the skey backbone with other weights (curves without the
    shipped network)."""
    name, _, checkpoint = label.partition("@")
    return get_backbone(name, checkpoint_path=checkpoint) if checkpoint else get_backbone(name)


def curve_draw(n_pieces: int, *, size: int, seed: int) -> np.ndarray:
    """The order in which a curve point's seed draws train pieces: it labels the first `size` of them.
    bench/calibration_shift.py and bench/pool_scenario.py use the same draws, so their models are the
    curves' models."""
    return np.random.default_rng([seed, size]).permutation(n_pieces)


def split_benchmark_parser(description: str) -> argparse.ArgumentParser:
    """The parser bench/calibration_shift.py, pool_scenario.py and shipped_network.py start from: their
    docstring as help, and the options they share (where devbench is, the curves' seeds, the recipe's
    cap, the embedding cache, the report)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devbench", type=Path, default=Path("var/devbench"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time-budget", type=float, default=600.0)
    parser.add_argument("--cache", type=Path, default=Path("var/cache/embeddings"))
    parser.add_argument("--out", type=Path, required=True)
    return parser


def train_point(backbone, embeddings, keys, chosen, *, seed: int, time_budget_s: float):
    """The fixed recipe (what a retraining runs) on the `chosen` pieces."""
    return train_key_model(
        train=[TrainingExample(window_embeddings=embeddings[i], key=keys[i]) for i in chosen],
        backbone_name=backbone.name,
        cyclic=backbone.cyclic_transposition,
        time_budget_s=time_budget_s,
        seed=seed,
    )


def curves(backbone, train_embeddings, train_keys, test_embeddings, test_keys, args) -> list[dict]:
    points = []
    for size in args.sizes:
        for seed in args.seeds:
            chosen = curve_draw(len(train_keys), size=size, seed=seed)[:size]
            started = time.perf_counter()
            model = train_point(
                backbone, train_embeddings, train_keys, chosen, seed=seed, time_budget_s=args.time_budget
            )
            seconds = time.perf_counter() - started
            point = summary_of(predict_tracks(model.head, test_embeddings), test_keys)
            point.update(
                labels=size, seed=seed, head=model.config.describe(), train_seconds=round(seconds, 1)
            )
            print(json.dumps({"backbone": backbone.name, **without_estimates(point)}), flush=True)
            points.append(point)
    return points


def points_by_size(points: list[dict]) -> dict[int, list[dict]]:
    by_size: dict[int, list[dict]] = {}
    for point in points:
        by_size.setdefault(point["labels"], []).append(point)
    return by_size


def seed_mean_scores(group: list[dict], keys: list[Key] | None) -> np.ndarray | None:
    """Every test piece's weighted score averaged over a label count's seeds (None without estimates)."""
    scores = [piece_scores(point, keys) for point in group] if keys else []
    return np.mean(scores, axis=0) if scores and all(s is not None for s in scores) else None


def mean_curve(
    points: list[dict], keys: list[Key] | None = None, reference: np.ndarray | None = None
) -> list[dict]:
    """Per label count: the seeds' mean, spread, minor keys, ECE; with `keys` (and points that kept their
    estimates) also 95 % bootstrap intervals over test pieces of the seeds' mean (all pieces and the
    minor-key ones), of its gain over the previous label count, and of its lead over `reference` (the
    REFERENCE_PEER's piece scores)."""
    by_size = points_by_size(points)
    rows = []
    previous = None
    for size, group in sorted(by_size.items()):
        weighted = [p["weighted"] for p in group]
        per_piece = seed_mean_scores(group, keys)
        intervals = {}
        if per_piece is not None:
            intervals["weighted_mean_ci95"] = bootstrap_interval(per_piece)
            minor = np.array([key.mode == Mode.MINOR for key in keys])
            intervals["minor_weighted_mean_ci95"] = bootstrap_interval(per_piece[minor])
            intervals["gain_over_previous"] = paired(per_piece, previous)
            intervals["lead_over_reference"] = paired(per_piece, reference)
        previous = per_piece
        rows.append(
            {
                "labels": size,
                "weighted_mean": float(np.mean(weighted)),
                "weighted_spread": float(np.max(weighted) - np.min(weighted)),
                "weighted_min": float(np.min(weighted)),
                "weighted_max": float(np.max(weighted)),
                "minor_weighted_mean": float(np.mean([p["minor_weighted"] for p in group])),
                "relative_mean": float(np.mean([p["relative"] for p in group])),
                "ece_mean": float(np.mean([p["ece"] for p in group])),
                "ece_floor_mean": float(np.mean([p["ece_floor"] for p in group])),
                "seeds": len(group),
                **intervals,
            }
        )
    return rows


def summarise(report: dict, test_keys: list[Key]) -> None:
    """(Re)compute every backbone's curve rows and cold-start lead from the points and estimates in
    `report`, so that summaries added later also describe runs made before them."""
    reference = piece_scores(report.get("peers", {}).get(REFERENCE_PEER, {}), test_keys)
    for entry in report["backbones"].values():
        for zero in ZERO_LABEL_RESULTS:
            if zero in entry:
                entry[zero]["lead_over_reference"] = paired(piece_scores(entry[zero], test_keys), reference)
        if entry.get("points"):
            entry["curve"] = mean_curve(entry["points"], test_keys, reference)
    # The networks alone against each other (with and without pretraining, at zero labels), paired.
    alone = {
        label: piece_scores(entry["network_alone"], test_keys)
        for label, entry in report["backbones"].items()
        if "network_alone" in entry
    }
    for label, scores in alone.items():
        report["backbones"][label]["network_alone"]["lead_over_backbones"] = {
            other: paired(scores, theirs) for other, theirs in alone.items() if other != label
        }
    # Backbones against each other at the same label count, paired piece by piece (e.g. with and
    # without pretraining): row["lead_over_backbones"][other] = mean difference and its interval.
    means = {
        label: {
            size: seed_mean_scores(group, test_keys)
            for size, group in points_by_size(entry["points"]).items()
        }
        for label, entry in report["backbones"].items()
        if entry.get("points")
    }
    for label, sizes in means.items():
        for row in report["backbones"][label]["curve"]:
            row["lead_over_backbones"] = {
                other: paired(sizes[row["labels"]], theirs.get(row["labels"]))
                for other, theirs in means.items()
                if other != label and theirs.get(row["labels"]) is not None
            }


def run_peers(test_paths, test_keys, args) -> dict:
    results = {}
    runs = [("essentia", profile) for profile in args.essentia_profiles] + [("librosa", None)]
    for peer, profile in runs:
        name = peer if profile is None else f"essentia_{profile}"
        if profile:
            os.environ["ESSENTIA_PROFILE"] = profile
        try:
            run = run_peer(peer, test_paths, threads=2)
        except PeerError as error:
            results[name] = {"error": str(error)[:300]}
            continue
        metrics = key_metrics(test_keys, run.keys)
        results[name] = {
            **{field: metrics[field] for field in SUMMARY if field in metrics},
            "weighted_ci95": bootstrap_interval(item_scores(test_keys, run.keys)),
            "minor_weighted": minor_weighted(test_keys, run.keys),
            "wall_s": round(run.wall_s, 2),
            "version": run.version,
        }
        print(json.dumps({"peer": name, **results[name]}), flush=True)
        results[name]["estimates"] = [None if key is None else key.index for key in run.keys]
    os.environ.pop("ESSENTIA_PROFILE", None)
    return results


def speed(paths: list[str], head: Path, repeats: int = 3) -> dict:
    """Whole-process wall time on the same files: `python -m ml predict` vs essentia's KeyExtractor,
    alternated `repeats` times (this machine is noisy: the median ratio is the figure to read)."""
    command = [sys.executable, "-m", "ml", "predict", "--head", str(head), "--top", "1", *paths]
    environment = {**os.environ, "OMP_NUM_THREADS": "2"}
    os.environ["ESSENTIA_PROFILE"] = "bgate"
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
        ours = time.perf_counter() - started
        essentia = run_peer("essentia", paths, threads=2).wall_s
        runs.append(
            {
                "ml_predict_s": round(ours, 2),
                "ml_predict_rc": completed.returncode,
                "essentia_s": round(essentia, 2),
                "ratio_ml_over_essentia": round(ours / essentia, 3),
            }
        )
    os.environ.pop("ESSENTIA_PROFILE", None)
    ratios = [run["ratio_ml_over_essentia"] for run in runs]
    return {"files": len(paths), "runs": runs, "median_ratio_ml_over_essentia": float(np.median(ratios))}


def concatenated(paths: list[str], folder: Path, *, pieces: int) -> list[str]:
    """As many files as `paths`, each `pieces` consecutive devbench pieces end to end (~100 s, nearer
    what users upload): speed at track lengths where start-up matters less."""
    import soundfile

    made = []
    for i in range(len(paths)):
        parts = [soundfile.read(paths[(pieces * i + k) % len(paths)], dtype="float32") for k in range(pieces)]
        target = folder / f"long{i:03d}.flac"
        soundfile.write(target, np.concatenate([audio for audio, _ in parts]), parts[0][1])
        made.append(str(target))
    return made


def plot(report: dict, path: Path) -> None:
    """Learning curves (mean over seeds, min–max band) of every backbone that has them, as a PNG."""
    from ml.simulation import curves_plot

    curves = {}
    for label, entry in report["backbones"].items():
        rows = [
            {
                "labels": row["labels"],
                "weighted": row["weighted_mean"],
                "weighted_min": row["weighted_min"],
                "weighted_max": row["weighted_max"],
            }
            for row in mean_curve(entry.get("points", []))
        ]
        if rows and "network_alone" in entry:  # 0 labels: what the network says with no head
            alone = entry["network_alone"]["weighted"]
            rows.insert(0, {"labels": 0, "weighted": alone, "weighted_min": alone, "weighted_max": alone})
        curves[label] = rows
    peers = report.get("peers", {})
    thresholds = (
        [peers["essentia_bgate"]["weighted"]] if "weighted" in peers.get("essentia_bgate", {}) else []
    )
    title = f"devbench test ({report['n_test']} pieces); 0 labels: the network alone; grey: essentia bgate"
    curves_plot(path, curves={k: v for k, v in curves.items() if v}, thresholds=thresholds, title=title)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devbench", type=Path, default=Path("var/devbench"))
    parser.add_argument(
        "--backbones",
        nargs="+",
        default=["skey", "pitch_class"],
        help="names, or skey@CHECKPOINT for other weights",
    )
    parser.add_argument("--sizes", nargs="*", type=int, default=[25, 50, 100, 240])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--time-budget",
        type=float,
        default=TIME_BUDGET_S,
        help="head search per point, s (default: the worker's KEYWEB_TRAINING_TIME_BUDGET_S)",
    )
    parser.add_argument("--essentia-profiles", nargs="*", default=["bgate", "edma", "krumhansl"])
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/embeddings"))
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--no-curves", nargs="*", default=[], help="backbones measured at zero labels only")
    parser.add_argument("--speed-files", type=int, default=100)
    parser.add_argument("--speed-repeats", type=int, default=3)
    parser.add_argument("--speed-long", action="store_true", help="also time 3-piece concatenations")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="recompute OUT's curve summaries (means, intervals) from its points and redraw its PNG",
    )
    args = parser.parse_args()
    train_rows = read_label_file(args.devbench / "train.csv", allow_no_key=False)
    test_rows = read_label_file(args.devbench / "test.csv", allow_no_key=False)
    if args.plot_only:
        report = json.loads(args.out.read_text())
        summarise(report, [row.key for row in test_rows])
        json_write_atomic(args.out, report)
        plot(report, args.out.with_suffix(".png"))
        return 0

    if {row.path for row in train_rows} & {row.path for row in test_rows}:
        raise SystemExit("train.csv and test.csv overlap")
    train_keys, test_keys = [row.key for row in train_rows], [row.key for row in test_rows]
    report: dict = {"command": " ".join(sys.argv), "n_train": len(train_rows), "n_test": len(test_rows)}
    report["peers"] = {} if args.skip_peers else run_peers([str(r.path) for r in test_rows], test_keys, args)
    report["backbones"] = {}
    for label in args.backbones:
        name, _, checkpoint = label.partition("@")
        backbone = backbone_from(label)
        test_embeddings, test_embed_s = embed(backbone, [r.path for r in test_rows], args.cache_dir)
        train_embeddings, _ = embed(backbone, [r.path for r in train_rows], args.cache_dir)
        entry: dict = {"embed_test_s": round(test_embed_s, 1)}
        head_path = default_head_path(name)
        if head_path.is_file() and not checkpoint:
            shipped = load_head(head_path)
            entry["zero_labels"] = summary_of(predict_tracks(shipped.head, test_embeddings), test_keys)
            print(
                json.dumps({"backbone": label, "zero_labels": without_estimates(entry["zero_labels"])}),
                flush=True,
            )
        if name == "skey":
            entry["network_alone"] = summary_of(network_key_probabilities(test_embeddings), test_keys)
            print(
                json.dumps({"backbone": label, "network_alone": without_estimates(entry["network_alone"])}),
                flush=True,
            )
        if args.sizes and label not in args.no_curves:
            entry["points"] = curves(backbone, train_embeddings, train_keys, test_embeddings, test_keys, args)
        report["backbones"][label] = entry
        summarise(report, test_keys)
        json_write_atomic(args.out, report)
    if args.speed_files and not args.skip_peers:
        name = args.backbones[0].partition("@")[0]
        paths = [str(row.path) for row in (test_rows + train_rows)[: args.speed_files]]
        report["speed"] = speed(paths, default_head_path(name), repeats=args.speed_repeats)
        print(json.dumps({"speed": report["speed"]}), flush=True)
        if args.speed_long:
            with tempfile.TemporaryDirectory() as folder:
                long_paths = concatenated(paths, Path(folder), pieces=3)
                report["speed_long"] = speed(long_paths, default_head_path(name), repeats=args.speed_repeats)
            print(json.dumps({"speed_long": report["speed_long"]}), flush=True)
    json_write_atomic(args.out, report)
    plot(report, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
