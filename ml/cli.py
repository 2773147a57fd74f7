"""`python -m ml`: evaluate a backbone + head on labelled CSVs, predict keys, make synthetic data, train the shipped head."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ml.audio import AudioDecodeError
from ml.files import json_write_atomic
from ml.keys import Key
from ml.labelfile import LabelFileError, read_label_file

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
# Exit codes: 2 = nothing was done because of something the user can fix; 1 = some input files failed.
EXIT_USAGE = 2
EXIT_SOME_FAILED = 1
# Non-cyclic backbones are augmented with audio-domain shifts -6..+5: twelve distinct keys per track.
DEFAULT_MAX_SHIFT = 6
DEFAULT_HEAD_DIFFICULTIES = (0.0, 0.25, 0.5, 0.75)
# Cap on a head training, s: the worker's default, so `evaluate` measures what it trains. The recipe is
# fixed (ml.training.train_key_model); 240 labels need ~140 s of it on 2 CPU cores, ~800 fill the cap.
TIME_BUDGET_S = 600.0


class UsageError(Exception):
    """Something the user can fix; main() prints it as one line and exits 2."""


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    key: Key
    source: str  # "labels.csv row 7", for error messages


def default_head_path(backbone_name: str) -> Path:
    return ASSETS_DIR / f"default_head_{backbone_name}.pt"


# --- shared steps -------------------------------------------------------------------------------------------


def read_labels(csv_path: Path) -> list[LabelledFile]:
    """Rows of a `path,key` CSV (ml.labelfile) as UsageErrors a user can act on; every row needs a key."""
    try:
        rows = read_label_file(csv_path, allow_no_key=False, require_files=True)
    except LabelFileError as error:
        raise UsageError(str(error)) from error
    if not rows:
        raise UsageError(f"{csv_path}: no labelled rows")
    return [LabelledFile(path=row.path, key=row.key, source=row.source) for row in rows]


def load_backbone(name: str | None):
    from ml.backbones import default_backbone_name, get_backbone

    try:
        return get_backbone(name or default_backbone_name())
    except (ValueError, OSError) as error:
        raise UsageError(str(error)) from error


def _progress_bar(total: float, description: str):
    from tqdm import tqdm

    # disable=None: a bar on a terminal, silence in logs and pipes.
    return tqdm(total=total, desc=description, unit="track", disable=None, file=sys.stderr)


def embed_labelled(
    files: Sequence[LabelledFile], backbone, cache_dir: Path | None, *, shifts: Sequence[int] = ()
):
    """TrainingExamples for the files (with audio-domain shifts when asked), and the number of cache hits."""
    from ml.cache import embeddings_cached_many
    from ml.training import TrainingExample

    examples, hits = [], 0
    with _progress_bar(len(files), f"embedding ({backbone.name})") as bar:
        for labelled in files:
            try:
                (embeddings,), hit = embeddings_cached_many([labelled.path], backbone, cache_dir)
                shifted = {}
                for semitones in shifts:
                    (shifted[semitones],), shift_hit = embeddings_cached_many(
                        [labelled.path], backbone, cache_dir, semitones=semitones
                    )
                    hit += shift_hit
            except AudioDecodeError as error:
                raise UsageError(f"{labelled.source}: {error}") from error
            hits += hit
            examples.append(
                TrainingExample(window_embeddings=embeddings, key=labelled.key, shifted=shifted or None)
            )
            bar.update(1)
    return examples, hits


def _training_progress(description: str):
    bar = _progress_bar(100, description)
    bar.unit = "%"

    def report(fraction: float) -> None:
        bar.update(max(round(fraction * 100) - bar.n, 0))

    return bar, report


def evaluate_head(head, examples) -> dict:
    """ml.evaluation.head_evaluate on TrainingExamples."""
    from ml.evaluation import head_evaluate

    return head_evaluate(head, [example.window_embeddings for example in examples], [e.key for e in examples])


def _without_confusion(result: dict) -> dict:
    return {name: value for name, value in result.items() if name != "confusion"}


# --- evaluate -------------------------------------------------------------------------------------------------


def run_evaluate(args: argparse.Namespace) -> int:
    from ml.cache import backbone_fingerprint
    from ml.heads import save_head
    from ml.training import train_key_model

    train_files, test_files = read_labels(args.train), read_labels(args.test)
    backbone = load_backbone(args.backbone)
    cyclic = backbone.cyclic_transposition
    shifts = [] if cyclic else [k for k in range(-args.max_shift, args.max_shift) if k]

    started = time.perf_counter()
    train, train_hits = embed_labelled(train_files, backbone, args.cache_dir, shifts=shifts)
    test, test_hits = embed_labelled(test_files, backbone, args.cache_dir)
    embedding_s = time.perf_counter() - started

    started = time.perf_counter()
    bar, report = _training_progress("training")
    with bar:
        model = train_key_model(
            train=train,
            backbone_name=backbone.name,
            cyclic=cyclic,
            time_budget_s=args.time_budget,
            seed=args.seed,
            device=args.device,
            progress=report,
        )
    training_s = time.perf_counter() - started

    started = time.perf_counter()
    metrics = evaluate_head(model.head, test)
    prediction_s = time.perf_counter() - started

    lookups = len(train_files) * (1 + len(shifts)) + len(test_files)
    result = {
        **metrics,
        "backbone": backbone.name,
        "n_train": len(train),
        "head": asdict(model.config),
        "training": asdict(model.train_config),
        "validation": {
            "weighted": (model.metrics_validation or {}).get("weighted"),
            "ece_before": model.ece_before,
            "ece_after": model.ece_after,
            "mean_confidence": (model.metrics_validation or {}).get("mean_confidence"),
            # True when --time-budget left out candidates or seeds: then the model depends on the clock.
            "cut_by_budget": (model.metrics_validation or {}).get("cut_by_budget"),
        },
        "trials": len(model.trials),
        "timing": {
            "embedding_s": round(embedding_s, 3),
            "training_s": round(training_s, 3),
            "prediction_s": round(prediction_s, 3),
        },
        "cache": {"hits": train_hits + test_hits, "lookups": lookups},
    }
    if args.save_head:  # it records the embeddings it was trained on, so a loader can refuse others
        summary = _without_confusion(result)
        extra = {"backbone_fingerprint": backbone_fingerprint(backbone)}
        save_head(args.save_head, head=model.head, config=model.config, metrics=summary, extra=extra)
    if args.out:
        json_write_atomic(args.out, result)
    print(json.dumps(_without_confusion(result), indent=2))
    return 0


# --- predict --------------------------------------------------------------------------------------------------


def _resolve_head(args: argparse.Namespace):
    from ml.heads import load_head

    if args.head:
        loaded = load_head(args.head)
        if args.backbone and args.backbone != loaded.config.backbone:
            raise UsageError(
                f"{args.head} was trained on backbone {loaded.config.backbone!r}, not {args.backbone!r}; "
                "embeddings of different backbones cannot be mixed"
            )
        return loaded
    from ml.backbones import default_backbone_name

    backbone_name = args.backbone or default_backbone_name()
    path = default_head_path(backbone_name)
    if not path.is_file():
        raise UsageError(
            f"no default head ships for backbone {backbone_name!r}; pass --head PATH "
            "(e.g. one written by `python -m ml evaluate ... --save-head PATH`)"
        )
    return load_head(path)


def _usage_errors(embedded):
    """Per-file problems come back as values; one that stops every file (no backbone) is the user's to fix."""
    try:
        yield from embedded
    except ValueError as error:
        raise UsageError(f"{error}: {error.__cause__ or 'see the log'}") from error


def run_predict(args: argparse.Namespace) -> int:
    from ml.predict import Prefetch, embed_files, pooled, prediction, result_runs

    if args.top < 1:
        raise UsageError("--top must be at least 1")
    prefetch = Prefetch([] if args.cache_dir else args.files)  # decodes while torch is imported
    try:
        loaded = _resolve_head(args)
    finally:
        decoded = prefetch.finish()
    from ml.cache import embeddings_cached
    from ml.heads import predict_tracks

    if args.cache_dir:
        backbone = load_backbone(loaded.config.backbone)

        def cached(path):
            try:
                return embeddings_cached(path, backbone, args.cache_dir), None
            except (AudioDecodeError, ValueError) as error:
                return None, str(error)

        embedded = (cached(path) for path in args.files)
    else:
        name, workers = loaded.config.backbone, args.workers
        # Worker processes build their own backbone; this one only when it embeds the files itself.
        backbone = None if pooled(args.files, backbone_name=name, workers=workers) else load_backbone(name)
        embedded = embed_files(
            args.files, backbone_name=name, workers=workers, backbone=backbone, decoded=decoded
        )
    results, failures = [], 0
    paths = iter(args.files)
    # The head runs once per run of files, not per file: its many small torch calls per file in this
    # process slowed the embedding workers by ~1 s per 100 files (docs/benchmarks.md, "Speed").
    for run in result_runs(_usage_errors(embedded)):
        embedded_ok = [embeddings for embeddings, error in run if error is None]
        probabilities = iter(predict_tracks(loaded.head, embedded_ok) if embedded_ok else [])
        for (_, error), path in zip(run, paths, strict=False):
            if error is not None:
                failures += 1
                print(f"error: {error}", file=sys.stderr)
                results.append({"path": str(path), "error": error})
                continue
            result = prediction(path, next(probabilities), args.top)
            results.append(result)
            if not args.json:
                alternatives = ", ".join(f"{e['key']} {e['probability']:.2f}" for e in result["top"][1:])
                line = f"{path}\t{result['key']}\t{result['camelot']}\t{result['confidence']:.2f}"
                print(line + (f"\t(then {alternatives})" if alternatives else ""), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_SOME_FAILED if failures else 0


# --- train-default-head ---------------------------------------------------------------------------------------


def _synthetic_split(out_dir: Path, *, n_tracks: int, seed: int, duration_range: tuple[float, float]):
    """Equal shares of every difficulty in DEFAULT_HEAD_DIFFICULTIES, all timbres, keys spread evenly."""
    from ml.synth import generate_dataset

    files = []
    shares = np.array_split(np.arange(n_tracks), len(DEFAULT_HEAD_DIFFICULTIES))
    for number, (difficulty, share) in enumerate(zip(DEFAULT_HEAD_DIFFICULTIES, shares, strict=True)):
        tracks = generate_dataset(
            out_dir / f"difficulty_{difficulty:.2f}",
            n_tracks=len(share),
            seed=seed * 100 + number,
            sample_rate=16_000,
            duration_range=duration_range,
            difficulty=difficulty,
            progress=sys.stderr.isatty(),
        )
        files += [LabelledFile(path=t.path, key=t.spec.key, source=str(t.path)) for t in tracks]
    return files


def run_train_default_head(args: argparse.Namespace) -> int:
    from ml.cache import backbone_fingerprint
    from ml.heads import HeadConfig, save_head
    from ml.training import Candidate, TrainConfig, train_key_model

    started = time.perf_counter()
    backbone = load_backbone("pitch_class")
    with tempfile.TemporaryDirectory(prefix="keyweb-default-head-") as scratch:
        work = Path(args.work_dir or scratch)
        durations = (args.min_duration, args.max_duration)
        print(
            f"rendering {args.n_tracks} training and {args.n_test} held-out tracks in {work}", file=sys.stderr
        )
        rendering_started = time.perf_counter()
        train_files = _synthetic_split(
            work / "train", n_tracks=args.n_tracks, seed=args.seed, duration_range=durations
        )
        test_files = _synthetic_split(
            work / "test", n_tracks=args.n_test, seed=args.seed + 1, duration_range=durations
        )
        embedding_started = time.perf_counter()
        cache_dir = work / "embeddings"
        train, _ = embed_labelled(train_files, backbone, cache_dir)
        test, _ = embed_labelled(test_files, backbone, cache_dir)
    training_started = time.perf_counter()
    # What ships must stay small (< 2 MB): the linear probe and 1×1024 MLPs only.
    architectures = [{"hidden_layers": 0}] + [
        {"hidden_dim": 1024, "dropout": dropout} for dropout in (0.75, 0.9, 0.95, 0.99)
    ]
    candidates = [
        Candidate(
            head=HeadConfig(backbone=backbone.name, input_dim=backbone.embedding_dim, **architecture),
            train=TrainConfig(learning_rate=learning_rate),
        )
        for learning_rate in (1e-3, 3e-4)
        for architecture in architectures
    ]
    bar, report = _training_progress("training")
    with bar:
        model = train_key_model(
            train=train,
            backbone_name=backbone.name,
            cyclic=True,
            time_budget_s=args.time_budget,
            seed=args.seed,
            device=args.device,
            progress=report,
            candidates=candidates,
        )
    held_out = evaluate_head(model.head, test)
    finished = time.perf_counter()
    summary = {
        "held_out": _without_confusion(held_out),
        "validation": {
            "weighted": model.metrics_validation["weighted"],
            "ece_before": model.ece_before,
            "ece_after": model.ece_after,
        },
        "head": model.config.describe(),
        "temperature": model.config.temperature,
        "n_train": len(train),
        "n_test": len(test),
        "timing": {
            "rendering_s": round(embedding_started - rendering_started, 1),
            "embedding_s": round(training_started - embedding_started, 1),
            "training_s": round(finished - training_started, 1),
            "total_s": round(finished - started, 1),
        },
    }
    extra = {
        "backbone_fingerprint": backbone_fingerprint(backbone),
        "command": "python -m ml " + shlex.join(args.argv),
        "seed": args.seed,
        "difficulties": list(DEFAULT_HEAD_DIFFICULTIES),
        "duration_range_s": list(durations),
        "trials": model.trials,
    }
    path = save_head(args.out, head=model.head, config=model.config, metrics=summary, extra=extra)
    # A torch-free sidecar, so the web side (setup_keyweb) can show the shipped model's metrics.
    sidecar = {**summary["held_out"], "evaluated_on": "synthetic held-out tracks", "head": summary["head"]}
    json_write_atomic(path.with_suffix(".json"), sidecar)
    summary["size_bytes"] = path.stat().st_size
    summary["path"] = str(path)
    print(json.dumps(summary, indent=2))
    return 0


# --- the command line -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml", description="KeyWeb's key models from the command line."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    evaluate = commands.add_parser("evaluate", help="train on one labelled CSV, report metrics on another")
    evaluate.add_argument("--train", type=Path, required=True, help="CSV with columns path,key")
    evaluate.add_argument("--test", type=Path, required=True, help="CSV with columns path,key")
    evaluate.add_argument(
        "--backbone",
        help="pitch_class, skey or myna_vertical (default: ml.backbones.default_backbone_name())",
    )
    evaluate.add_argument(
        "--time-budget", type=float, default=TIME_BUDGET_S, help="cap on head training, s (default 600)"
    )
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--out", type=Path, help="also write the metrics (and confusion matrix) as JSON")
    evaluate.add_argument("--save-head", type=Path, help="write the trained head checkpoint here")
    evaluate.add_argument(
        "--cache-dir",
        type=Path,
        help="embedding cache (default $KEYWEB_CACHE_DIR or ~/.cache/keyweb/embeddings)",
    )
    evaluate.add_argument(
        "--max-shift",
        type=int,
        default=DEFAULT_MAX_SHIFT,
        help="audio pitch-shift augmentation for non-cyclic backbones: -N..N-1 semitones (0 = none)",
    )
    evaluate.add_argument("--device", default="cpu", help="torch device for training (cpu, cuda)")
    evaluate.set_defaults(handler=run_evaluate)

    predict = commands.add_parser("predict", help="print the key of audio files")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    predict.add_argument("--head", type=Path, help="head checkpoint (default: the backbone's shipped head)")
    predict.add_argument(
        "--backbone",
        help="backbone whose shipped head to use (default: ml.backbones.default_backbone_name())",
    )
    predict.add_argument("--top", type=int, default=3, help="also show the next K-1 keys (default 3)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of one line per file")
    predict.add_argument("--cache-dir", type=Path, help="cache embeddings here (default: no cache)")
    predict.add_argument("--workers", type=int, help="decoding and analysis processes (default: CPU count)")
    predict.set_defaults(handler=run_predict)

    commands.add_parser(
        "pretrain",
        help="pretrain the skey backbone on audio (see `python -m ml pretrain --help`)",
        add_help=False,
    )
    commands.add_parser(
        "synth", help="write synthetic labelled tracks (see `python -m ml synth --help`)", add_help=False
    )

    default_head = commands.add_parser(
        "train-default-head", help="train the head shipped in ml/assets/ on synthetic music"
    )
    default_head.add_argument("--out", type=Path, default=default_head_path("pitch_class"))
    default_head.add_argument("--n-tracks", type=int, default=480, help="training tracks (default 480)")
    default_head.add_argument("--n-test", type=int, default=240, help="held-out tracks (default 240)")
    default_head.add_argument("--min-duration", type=float, default=15.0)
    default_head.add_argument("--max-duration", type=float, default=60.0)
    default_head.add_argument("--seed", type=int, default=0)
    default_head.add_argument("--time-budget", type=float, default=TIME_BUDGET_S, help="seconds to search")
    default_head.add_argument(
        "--work-dir", type=Path, help="keep the rendered tracks here (default: a temp dir)"
    )
    default_head.add_argument("--device", default="cpu")
    default_head.set_defaults(handler=run_train_default_head)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "pretrain":
        from ml.pretrain import main as pretrain_main

        return pretrain_main(argv[1:])
    if argv and argv[0] == "synth":
        # ml.synth owns its options; hand it everything after the subcommand.
        from ml.synth import main as synth_main

        return synth_main(argv[1:])
    args = build_parser().parse_args(argv)
    args.argv = argv
    from ml.heads import EmbeddingMismatch, HeadLoadError

    try:
        return args.handler(args)
    except (UsageError, HeadLoadError, EmbeddingMismatch) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
