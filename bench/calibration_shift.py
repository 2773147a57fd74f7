"""Where the labelled model's confidence comes from, and where it stops holding: out of fold vs devbench test.

    python bench/calibration_shift.py --devbench var/devbench \
        --backbones skey@var/skey/run0.pt skey@var/skey/run1.pt --out /tmp/calibration-shift.json

For each network and seed, `train_key_model` (the fixed recipe a retraining runs) learns from the same
`--labels` train pieces as bench/devbench.py's curves draw. Its temperature makes the top-1 confidence
match the ensemble's out-of-fold accuracy on those pieces; the test pieces then show whether that
accuracy, and so that confidence, carries to pieces the whole pipeline never saw. Reported per network:
out-of-fold and test accuracy, the mean test confidence, and each test piece's overconfidence (its top-1
confidence minus 1 if the top key is right, else 0), averaged over seeds and paired between networks.
A network pretrained (S-KEY) on the labelled pieces' own audio reads them better than it reads unseen
ones, which is what this measures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.devbench import (  # noqa: E402
    backbone_from,
    curve_draw,
    embed,
    split_benchmark_parser,
    summary_of,
    train_point,
)
from ml.files import json_write_atomic  # noqa: E402
from ml.heads import predict_tracks  # noqa: E402
from ml.labelfile import read_label_file  # noqa: E402
from ml.metrics import bootstrap_interval, paired_difference  # noqa: E402


def measure(spec: str, train_rows, test_rows, args) -> dict:
    backbone = backbone_from(spec)
    train_embeddings, _ = embed(backbone, [row.path for row in train_rows], args.cache)
    test_embeddings, _ = embed(backbone, [row.path for row in test_rows], args.cache)
    test_keys = [row.key for row in test_rows]
    truth = np.array([key.index for key in test_keys])
    seeds, overconfidence = [], []
    for seed in args.seeds:
        chosen = curve_draw(len(train_rows), size=args.labels, seed=seed)[: args.labels]
        model = train_point(
            backbone,
            train_embeddings,
            [row.key for row in train_rows],
            chosen,
            seed=seed,
            time_budget_s=args.time_budget,
        )
        probabilities = predict_tracks(model.head, test_embeddings)
        confidence = probabilities.max(axis=1)
        right = (probabilities.argmax(axis=1) == truth).astype(np.float64)
        overconfidence.append(confidence - right)
        test = summary_of(probabilities, test_keys)
        row = {
            "seed": seed,
            "temperature": round(float(model.head.temperature), 4),
            "out_of_fold_correct": round(model.metrics_validation["correct"], 4),
            "out_of_fold_weighted": round(model.metrics_validation["weighted"], 4),
            "test_correct": round(float(right.mean()), 4),
            "test_confidence": round(float(confidence.mean()), 4),
            "test_weighted": round(test["weighted"], 4),
            "test_ece": round(test["ece"], 4),
            "test_ece_floor": round(test["ece_floor"], 4),
            "cut_by_budget": model.metrics_validation.get("cut_by_budget"),
        }
        print(json.dumps({"backbone": spec, **row}), flush=True)
        seeds.append(row)
    per_piece = np.mean(overconfidence, axis=0)
    return {
        "seeds": seeds,
        "out_of_fold_correct_mean": round(float(np.mean([r["out_of_fold_correct"] for r in seeds])), 4),
        "test_correct_mean": round(float(np.mean([r["test_correct"] for r in seeds])), 4),
        "test_confidence_mean": round(float(np.mean([r["test_confidence"] for r in seeds])), 4),
        "overconfidence": {"mean": round(float(per_piece.mean()), 4), "ci95": bootstrap_interval(per_piece)},
        "overconfidence_per_piece": per_piece.round(5).tolist(),
    }


def main() -> int:
    parser = split_benchmark_parser(__doc__)
    parser.add_argument("--backbones", nargs="+", default=["skey@var/skey/run0.pt", "skey@var/skey/run1.pt"])
    parser.add_argument("--labels", type=int, default=240)
    args = parser.parse_args()
    train_rows = read_label_file(args.devbench / "train.csv", allow_no_key=False)
    test_rows = read_label_file(args.devbench / "test.csv", allow_no_key=False)
    report = {"command": " ".join(sys.argv), "labels": args.labels, "backbones": {}}
    for spec in args.backbones:
        report["backbones"][spec] = measure(spec, train_rows, test_rows, args)
    reference = args.backbones[0]
    for spec in args.backbones[1:]:
        report["backbones"][spec]["overconfidence_over_reference"] = paired_difference(
            report["backbones"][spec]["overconfidence_per_piece"],
            report["backbones"][reference]["overconfidence_per_piece"],
        )
        print(
            spec,
            "overconfidence minus",
            reference,
            report["backbones"][spec]["overconfidence_over_reference"],
        )
    json_write_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
