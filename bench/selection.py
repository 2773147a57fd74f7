"""Nested cross-validation on devbench's train split: how a change to the model scores, without the test split.

    python bench/selection.py --devbench var/devbench --backbone skey@var/skey/run1.pt --out /tmp/selection.json

For each seed the train pieces are dealt into outer folds; `train_key_model` (what the worker and the
benchmark run, with its own inner cross-validation, ensemble and temperature) is trained on the other
folds within the time budget and predicts the held-out one. Every train piece is predicted once per seed
by a model that never saw it; test.csv is never read. Decide a change on these figures, then measure it
once with bench/devbench.py (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.devbench import embed, summary_of  # noqa: E402
from ml.backbones import get_backbone  # noqa: E402
from ml.files import json_write_atomic  # noqa: E402
from ml.heads import predict_tracks  # noqa: E402
from ml.labelfile import read_label_file  # noqa: E402
from ml.training import TrainingExample, fold_assignment, train_key_model  # noqa: E402

OUTER_SEED = 1000  # outer folds of seed s come from OUTER_SEED + s, apart from the inner ones (seed s)


def nested(examples: list[TrainingExample], *, backbone, seed: int, outer_folds: int, budget: float) -> dict:
    outer = fold_assignment(len(examples), folds=outer_folds, seed=OUTER_SEED + seed)
    probabilities = np.zeros((len(examples), 24))
    seconds = []
    for fold in range(outer_folds):
        inner, held_out = np.flatnonzero(outer != fold), np.flatnonzero(outer == fold)
        started = time.perf_counter()
        model = train_key_model(
            train=[examples[i] for i in inner],
            backbone_name=backbone.name,
            cyclic=backbone.cyclic_transposition,
            time_budget_s=budget,
            seed=seed,
        )
        seconds.append(round(time.perf_counter() - started, 1))
        probabilities[held_out] = predict_tracks(
            model.head, [examples[i].window_embeddings for i in held_out]
        )
    summary = summary_of(probabilities, [example.key for example in examples])
    return {"seed": seed, **summary, "train_seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devbench", type=Path, default=Path("var/devbench"))
    parser.add_argument("--backbone", default="skey", help='a backbone name, or "skey@CHECKPOINT"')
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--outer-folds", type=int, default=5)
    parser.add_argument("--time-budget", type=float, default=40.0, help="train_key_model's, per outer fold")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/embeddings"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    rows = read_label_file(args.devbench / "train.csv", allow_no_key=False)
    name, _, checkpoint = args.backbone.partition("@")
    backbone = get_backbone(name, checkpoint_path=checkpoint) if checkpoint else get_backbone(name)
    embeddings, _ = embed(backbone, [row.path for row in rows], args.cache_dir)
    examples = [
        TrainingExample(window_embeddings=e, key=row.key) for e, row in zip(embeddings, rows, strict=True)
    ]
    report: dict = {"command": " ".join(sys.argv), "n_train": len(rows), "seeds": []}
    for seed in args.seeds:
        result = nested(
            examples, backbone=backbone, seed=seed, outer_folds=args.outer_folds, budget=args.time_budget
        )
        print(
            json.dumps({name: result[name] for name in ("seed", "weighted", "minor_weighted", "ece")}),
            flush=True,
        )
        report["seeds"].append(result)
    scores = [result["weighted"] for result in report["seeds"]]
    report["mean"] = {
        name: float(np.mean([result[name] for result in report["seeds"]]))
        for name in ("weighted", "minor_weighted", "relative", "ece", "ece_floor")
    }
    report["mean"]["spread"] = float(max(scores) - min(scores))
    print(json.dumps({"mean": report["mean"]}), flush=True)
    json_write_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
