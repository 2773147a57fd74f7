"""What the shipped network gives a user who labels their own material: a network fine-tuned on other labels.

    OMP_NUM_THREADS=2 python bench/shipped_network.py --devbench var/devbench --base var/skey/run1.pt \
        --work var/shipped-network --out /tmp/shipped-network.json

`ml/assets/skey_backbone.pt` is run1 fine-tuned on devbench's 240 train labels (docs/default-head.md), so
a learning curve read with it on devbench would teach heads labels the network has already learned; the
curves therefore use run1. A KeyWeb user's labels are ones the shipped network never saw. To measure that
case, devbench's train split is halved (seeded): half A plays the labels the shipped network was fine-tuned
on (the shipped recipe, `ml pretrain --with-keys --synthetic 192 --steps 250 --init-from BASE`), half B
plays the user's library. For each label count and seed, the fixed recipe (`train_key_model`, what a
retraining runs) learns from the curves' own draw (bench/devbench.py `curve_draw`) of k pieces of B and
is scored on the 124 test pieces; BASE with the same heads on the same draws is the reference, paired
piece by piece (each piece's score averaged over the seeds first). At 0 labels each network's own key
channels are scored alone. The test split is never trained or tuned on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.devbench import curve_draw, embed, piece_scores, split_benchmark_parser, summary_of, train_point  # noqa: E402
from ml.backbones import get_backbone  # noqa: E402
from ml.backbones.skey import network_key_probabilities  # noqa: E402
from ml.files import json_write_atomic  # noqa: E402
from ml.heads import predict_tracks  # noqa: E402
from ml.labelfile import read_label_file  # noqa: E402
from ml.metrics import bootstrap_interval, paired_difference  # noqa: E402

# The shipped network's fine-tuning (docs/default-head.md, step 2), on half A instead of all 240 pieces.
FINE_TUNING = ["--with-keys", "--synthetic", "192", "--steps", "250", "--batch-size", "16", "--seed", "1"]


def halves(n_pieces: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n_pieces)
    return np.sort(order[: n_pieces // 2]), np.sort(order[n_pieces // 2 :])


def fine_tuned(base: Path, rows, half_a: np.ndarray, work: Path) -> Path:
    """BASE fine-tuned on half A's labels, as the shipped network was on all 240. Kept in `work` and reused
    only when it was made from the same BASE (path and bytes), pieces and recipe (a record beside it says so)."""
    checkpoint = work / "fine-tuned-on-half-a.pt"
    record = work / "fine-tuned-on-half-a.json"
    made_from = {
        "base": str(base.resolve()),
        "base_sha256": hashlib.sha256(base.read_bytes()).hexdigest(),
        "half_a": [str(Path(rows[i].path).resolve()) for i in half_a],
        "fine_tuning": FINE_TUNING,
    }
    if checkpoint.exists() and record.exists() and json.loads(record.read_text()) == made_from:
        print(f"reusing {checkpoint}", flush=True)
        return checkpoint
    work.mkdir(parents=True, exist_ok=True)
    checkpoint.unlink(missing_ok=True)  # another split's or base's network: never resumed
    labels = work / "half-a.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "key"])
        writer.writerows(
            [path, str(rows[i].key)] for path, i in zip(made_from["half_a"], half_a, strict=True)
        )
    command = [sys.executable, "-m", "ml", "pretrain", "--audio-list", str(labels), *FINE_TUNING]
    command += ["--init-from", str(base), "--time-budget", "1800", "--out", str(checkpoint)]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    record.write_text(json.dumps(made_from, indent=1))
    print(f"fine-tuned in {time.perf_counter() - started:.0f} s: {checkpoint}", flush=True)
    return checkpoint


def curve(label: str, checkpoint: Path, train_rows, half_b: np.ndarray, test_rows, args) -> dict:
    backbone = get_backbone("skey", checkpoint_path=checkpoint)
    train_embeddings, _ = embed(backbone, [row.path for row in train_rows], args.cache)
    test_embeddings, _ = embed(backbone, [row.path for row in test_rows], args.cache)
    train_keys = [row.key for row in train_rows]
    test_keys = [row.key for row in test_rows]
    alone = summary_of(network_key_probabilities(test_embeddings), test_keys)
    points = {"0": {"network_alone": alone, "per_piece": piece_scores(alone, test_keys)}}
    for size in args.sizes:
        seeds = []
        for seed in args.seeds:
            chosen = half_b[curve_draw(len(half_b), size=size, seed=seed)[:size]]
            started = time.perf_counter()
            model = train_point(
                backbone, train_embeddings, train_keys, chosen, seed=seed, time_budget_s=args.time_budget
            )
            result = summary_of(predict_tracks(model.head, test_embeddings), test_keys)
            result["train_seconds"] = round(time.perf_counter() - started, 1)
            result["seed"] = seed
            seeds.append(result)
            shown = {name: result[name] for name in ("seed", "weighted", "minor_weighted", "ece")}
            print(json.dumps({"network": label, "labels": size, **shown}), flush=True)
        per_piece = np.mean([piece_scores(result, test_keys) for result in seeds], axis=0)
        points[str(size)] = {
            "seeds": seeds,
            "weighted": float(np.mean([result["weighted"] for result in seeds])),
            "weighted_ci95": bootstrap_interval(per_piece),
            "minor_weighted": float(np.mean([result["minor_weighted"] for result in seeds])),
            "ece": float(np.mean([result["ece"] for result in seeds])),
            "ece_floor": float(np.mean([result["ece_floor"] for result in seeds])),
            "spread": float(np.ptp([result["weighted"] for result in seeds])),
            "per_piece": per_piece,
        }
    return points


def combined(paths: list[Path]) -> dict:
    """Several splits' reports as one: each test piece's score averaged over the splits, then paired."""
    reports = [json.loads(path.read_text()) for path in paths]
    sizes = [
        size for size in reports[0]["networks"]["base"] if all(size in r["networks"]["base"] for r in reports)
    ]
    pooled: dict = {"splits": [str(path) for path in paths], "networks": {}}
    for size in sizes:
        mean = {
            name: np.mean([r["networks"][name][size]["per_piece"] for r in reports], axis=0)
            for name in ("base", "fine_tuned_on_half_a")
        }
        pooled["networks"][size] = {
            **{name: round(float(scores.mean()), 4) for name, scores in mean.items()},
            "over_base": paired_difference(mean["fine_tuned_on_half_a"], mean["base"]),
        }
        if size != "0":
            for name in mean:
                pooled["networks"][size][f"{name}_ece"] = round(
                    float(np.mean([r["networks"][name][size]["ece"] for r in reports])), 4
                )
        print(size, pooled["networks"][size], flush=True)
    return pooled


def main() -> int:
    parser = split_benchmark_parser(__doc__)
    parser.add_argument(
        "--base", type=Path, default=Path("var/skey/run1.pt"), help="the network before fine-tuning"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("var/shipped-network"), help="half A's list and network"
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 120])
    parser.add_argument(
        "--combine", type=Path, nargs="+", help="pool these reports of other splits into --out; run nothing"
    )
    args = parser.parse_args()
    if args.combine:
        json_write_atomic(args.out, {"command": " ".join(sys.argv), **combined(args.combine)})
        return 0
    train_rows = read_label_file(args.devbench / "train.csv", allow_no_key=False)
    test_rows = read_label_file(args.devbench / "test.csv", allow_no_key=False)
    if max(args.sizes) > len(train_rows) // 2:
        parser.error(f"at most {len(train_rows) // 2} labels: half B holds that many pieces")
    half_a, half_b = halves(len(train_rows), seed=args.split_seed)
    tuned = fine_tuned(args.base, train_rows, half_a, args.work)
    curves = {
        "base": curve("base", args.base, train_rows, half_b, test_rows, args),
        "fine_tuned_on_half_a": curve("fine_tuned_on_half_a", tuned, train_rows, half_b, test_rows, args),
    }
    report: dict = {
        "command": " ".join(sys.argv),
        "base": str(args.base),
        "fine_tuned": str(tuned),
        "half_a": half_a.tolist(),
        "half_b": half_b.tolist(),
        "networks": {},
    }
    for name, points in curves.items():
        report["networks"][name] = {}
        for size, point in points.items():
            entry = {key: value for key, value in point.items() if key != "per_piece"}
            if name != "base":
                entry["over_base"] = paired_difference(point["per_piece"], curves["base"][size]["per_piece"])
            entry["per_piece"] = [round(float(value), 3) for value in point["per_piece"]]
            report["networks"][name][size] = entry
            shown = {
                key: entry[key] for key in ("weighted", "minor_weighted", "ece", "over_base") if key in entry
            }
            print(name, size, shown, flush=True)
    json_write_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
