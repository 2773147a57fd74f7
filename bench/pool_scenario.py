"""What pretraining buys in the product's own scenario: pretrain on a library, label part of it, read the rest.

    python bench/pool_scenario.py --devbench var/devbench \
        --backbones skey@var/skey/run0.pt skey@var/skey/run1.pt --out /tmp/pool-scenario.json

bench/devbench.py scores every model on the test pieces, which pretraining never read: a track imported
after the pretraining. The tracks a KeyWeb user most needs keys for are the library's unlabelled ones,
and `manage.py pretrain_backbone` reads all of them. Here devbench's 240 train pieces are that library:
for each label count and seed, the curves' own draw (bench/devbench.py) of k pieces is labelled, the
fixed recipe (`train_key_model`) learns from them, and the other 240 − k pieces are scored. A network
pretrained (S-KEY) on the 240 pieces' audio, keys unseen, plays a library pretraining; one that was not
plays no pretraining. At 0 labels the network alone reads all 240; essentia's bgate profile runs on the
same pieces for scale. Each piece's score is averaged over the seeds that left it unlabelled, and
networks are paired piece by piece. test.csv is never read.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.devbench import backbone_from, curve_draw, embed, split_benchmark_parser, train_point  # noqa: E402
from bench.peers import PeerError, run_peer  # noqa: E402
from ml.backbones.skey import network_key_probabilities  # noqa: E402
from ml.evaluation import track_scores  # noqa: E402
from ml.files import json_write_atomic  # noqa: E402
from ml.heads import predict_tracks  # noqa: E402
from ml.keys import Key, Mode  # noqa: E402
from ml.labelfile import read_label_file  # noqa: E402
from ml.metrics import bootstrap_interval, item_scores, paired_difference  # noqa: E402


def summary(per_piece: np.ndarray, keys: list[Key]) -> dict:
    """Mean weighted score over the pieces that have a score (NaN: labelled in every seed), its interval,
    and the same over the minor-key ones."""
    seen = ~np.isnan(per_piece)
    minor = seen & np.array([key.mode is Mode.MINOR for key in keys])
    return {
        "n": int(seen.sum()),
        "weighted": round(float(per_piece[seen].mean()), 4),
        "weighted_ci95": bootstrap_interval(per_piece[seen]),
        "minor_weighted": round(float(per_piece[minor].mean()), 4),
    }


def curve(spec: str, rows, args) -> dict:
    backbone = backbone_from(spec)
    embeddings, _ = embed(backbone, [row.path for row in rows], args.cache)
    keys = [row.key for row in rows]
    points = {"0": track_scores(network_key_probabilities(embeddings), keys)}  # the network alone, all 240
    for size in args.sizes:
        per_seed = np.full((len(args.seeds), len(rows)), np.nan)
        for number, seed in enumerate(args.seeds):
            order = curve_draw(len(rows), size=size, seed=seed)
            labelled, rest = order[:size], order[size:]
            model = train_point(
                backbone, embeddings, keys, labelled, seed=seed, time_budget_s=args.time_budget
            )
            probabilities = predict_tracks(model.head, [embeddings[i] for i in rest])
            per_seed[number, rest] = track_scores(probabilities, [keys[i] for i in rest])
            print(
                json.dumps(
                    {
                        "backbone": spec,
                        "labels": size,
                        "seed": seed,
                        "weighted_on_the_rest": round(float(np.nanmean(per_seed[number])), 4),
                    }
                ),
                flush=True,
            )
        scored = (~np.isnan(per_seed)).sum(axis=0)  # a piece labelled in every seed has no score (NaN)
        points[str(size)] = np.where(scored > 0, np.nansum(per_seed, axis=0) / np.maximum(scored, 1), np.nan)
    return points


def main() -> int:
    parser = split_benchmark_parser(__doc__)
    parser.add_argument(
        "--backbones",
        nargs="+",
        default=["skey@var/skey/run0.pt", "skey@var/skey/run1.pt"],
        help="the first is the reference the others are paired against",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    rows = read_label_file(args.devbench / "train.csv", allow_no_key=False)
    keys = [row.key for row in rows]
    report: dict = {"command": " ".join(sys.argv), "n_pieces": len(rows), "backbones": {}, "peers": {}}
    if not args.skip_peers:
        os.environ["ESSENTIA_PROFILE"] = "bgate"
        try:
            run = run_peer("essentia", [str(row.path) for row in rows], threads=2)
            bgate = item_scores(keys, run.keys)
            report["peers"]["essentia_bgate"] = {**summary(bgate, keys), "per_piece": bgate.tolist()}
        except PeerError as error:
            report["peers"]["essentia_bgate"] = {"error": str(error)[:300]}
        os.environ.pop("ESSENTIA_PROFILE", None)
    curves = {spec: curve(spec, rows, args) for spec in args.backbones}
    reference = args.backbones[0]
    for spec, points in curves.items():
        entry = {}
        for size, per_piece in points.items():
            entry[size] = summary(per_piece, keys)
            if spec != reference:
                seen = ~np.isnan(per_piece) & ~np.isnan(curves[reference][size])
                entry[size]["over_reference"] = paired_difference(
                    per_piece[seen], curves[reference][size][seen]
                )
            bgate = report["peers"].get("essentia_bgate", {}).get("per_piece")
            if bgate is not None:
                seen = ~np.isnan(per_piece)
                entry[size]["over_bgate"] = paired_difference(per_piece[seen], np.asarray(bgate)[seen])
            entry[size]["per_piece"] = [
                None if np.isnan(value) else round(float(value), 3) for value in per_piece
            ]
            print(spec, size, {k: v for k, v in entry[size].items() if k != "per_piece"}, flush=True)
        report["backbones"][spec] = entry
    json_write_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
