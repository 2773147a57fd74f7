"""ml benchmarks: decode+embed+predict throughput per backbone, peers' speed and accuracy, head training time.

    OMP_NUM_THREADS=2 .venv/bin/python bench/ml_throughput.py            # everything (~20 min on 2 cores)
    OMP_NUM_THREADS=2 .venv/bin/python bench/ml_throughput.py --quick    # smoke run (~3 min)
    .venv/bin/python bench/ml_throughput.py --sections throughput --device cuda --peers   # no peers

Peers (bench/setup_peers.sh) run on the same files in the same run, round by round, so each ratio
compares numbers taken seconds apart on the same machine. Throughput is seconds of audio per wall-clock
second; every number is a median over rounds. Results: JSON in bench/results/, tables on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# So `python bench/ml_throughput.py` finds `ml` without an editable install.
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.peers import PEERS, PeerError, peer_available, run_peer  # noqa: E402
from ml.audio import load_audio, probe  # noqa: E402
from ml.backbones import get_backbone  # noqa: E402
from ml.backbones.base import Backbone  # noqa: E402
from ml.heads import HeadConfig, KeyHead, load_head, predict_tracks  # noqa: E402
from ml.keys import Key  # noqa: E402
from ml.metrics import key_metrics  # noqa: E402
from ml.synth import generate_dataset  # noqa: E402
from ml.training import TrainingExample, roll_pitch_classes, train_head, train_key_model  # noqa: E402

DEFAULT_HEAD = REPO / "ml" / "assets" / "default_head_pitch_class.pt"
RESULTS_DIR = REPO / "bench" / "results"
SECTIONS = ("throughput", "accuracy", "training")
# Seeds far from those `python -m ml train-default-head` uses (0–3, 100–103): no test track was trained on.
TEST_SEED, TRAIN_SEED = 9100, 9200
TRAIN_DIFFICULTIES = (0.0, 0.35, 0.7)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run; the defaults are what docs/benchmarks.md reports."""

    sections: tuple[str, ...] = SECTIONS
    peers: tuple[str, ...] = PEERS
    device: str = "cpu"
    threads: int = 2
    # Head training runs single-threaded: on a 2-core machine shared with other jobs, two torch threads
    # made each small MLP step several times slower (OpenMP threads wait on each other). One extra row
    # at `threads` shows the effect.
    training_threads: int = 1
    rounds: int = 3
    throughput_files: int = 8  # per round, all systems; 30 s each
    myna_files: int = 4  # Myna-Vertical on CPU is ~20× slower than the rest
    n_test: int = 72  # held-out tracks per difficulty (three per key)
    difficulties: tuple[float, ...] = (0.0, 0.7)
    n_train: int = 240  # real tracks behind the trained head and the training-time pool
    training_sizes: tuple[int, ...] = (100, 1000, 10000)
    training_epochs: int = 4  # measured; the 60-epoch total is projected from them
    search_budget_s: float = 60.0


QUICK = BenchConfig(
    rounds=2,
    throughput_files=2,
    myna_files=1,
    n_test=6,
    n_train=24,
    training_sizes=(100, 300),
    training_epochs=3,
    search_budget_s=10.0,
)


# --- data -------------------------------------------------------------------------------------------------


def synth_set(
    out_dir: Path, *, n: int, seed: int, difficulty: float, sample_rate: int, duration: tuple[float, float]
) -> list[tuple[Path, Key]]:
    """(path, key) of n rendered tracks; reuses a complete earlier render in `out_dir`."""
    if not (out_dir / "labels.csv").is_file():
        generate_dataset(
            out_dir,
            n_tracks=n,
            seed=seed,
            sample_rate=sample_rate,
            duration_range=duration,
            difficulty=difficulty,
        )
    rows = (out_dir / "labels.csv").read_text().splitlines()[1:]
    return [(out_dir / line.split(",")[0], Key.parse(line.split(",")[1])) for line in rows]


def random_myna_checkpoint(path: Path) -> Path:
    """A full-size Myna-Vertical checkpoint with random weights: throughput does not depend on them."""
    from ml.backbones.myna import build_myna

    if not path.is_file():
        torch.manual_seed(0)
        torch.save(build_myna(checkpoint_path=None, device="cpu").vit.state_dict(), path)
    return path


# --- KeyWeb's pipeline, timed by stage ---------------------------------------------------------------------


@dataclass
class KeywebPass:
    """Seconds spent per stage over a list of files, and what came out."""

    audio_s: float
    decode_s: float
    embed_s: float
    predict_s: float
    keys: list[Key]
    embeddings: list[np.ndarray]

    @property
    def seconds(self) -> float:
        return self.decode_s + self.embed_s + self.predict_s


def keyweb_pass(
    files: list[Path], backbone: Backbone, head: KeyHead, *, synchronize: bool = False
) -> KeywebPass:
    """What the worker does per track: decode to 16 kHz mono, embed every window, window-averaged head."""
    timed = KeywebPass(0.0, 0.0, 0.0, 0.0, [], [])
    for path in files:
        started = time.perf_counter()
        audio = load_audio(path)
        decoded = time.perf_counter()
        embeddings = backbone.window_embeddings(audio)
        embedded = time.perf_counter()
        probabilities = predict_tracks(head, [embeddings])[0]
        if synchronize:
            torch.cuda.synchronize()
        predicted = time.perf_counter()
        timed.audio_s += probe(path).duration_s
        timed.decode_s += decoded - started
        timed.embed_s += embedded - decoded
        timed.predict_s += predicted - embedded
        timed.keys.append(Key.from_index(int(np.argmax(probabilities))))
        timed.embeddings.append(embeddings)
    return timed


def random_head(backbone: Backbone, device: str) -> KeyHead:
    """An untrained head of the usual shape, for timing a backbone that has no trained head."""
    config = HeadConfig(backbone=backbone.name, input_dim=backbone.embedding_dim, hidden_dim=1024)
    return KeyHead(config=config).to(device).eval()


# --- sections ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeywebSystem:
    """A backbone and head timed on the first `n_files` throughput files with `threads` torch threads."""

    backbone: Backbone
    head: KeyHead
    n_files: int
    threads: int


def measure_throughput(config: BenchConfig, files: list[Path], systems: dict, progress: Progress) -> dict:
    """Round-robin over KeyWeb backbones and peers; per-round ratios against each peer, then medians."""
    rounds = []
    for number in range(config.rounds):
        row: dict[str, dict] = {}
        for name, system in systems.items():
            torch.set_num_threads(system.threads)
            timed = keyweb_pass(
                files[: system.n_files], system.backbone, system.head, synchronize=config.device == "cuda"
            )
            row[name] = {
                "audio_s": timed.audio_s,
                "seconds": timed.seconds,
                "decode_s": timed.decode_s,
                "embed_s": timed.embed_s,
                "predict_s": timed.predict_s,
            }
        for peer in config.peers:
            run = run_peer(peer, files, threads=config.threads)
            audio_s = sum(probe(path).duration_s for path in files)
            row[peer] = {
                "audio_s": audio_s,
                "seconds": run.seconds,
                "setup_s": run.setup_s,
                "wall_s": run.wall_s,
            }
        rounds.append(row)
        progress(f"throughput round {number + 1}/{config.rounds}: " + _speeds(row))
    summary = {}
    for name in rounds[0]:
        speeds = [row[name]["audio_s"] / row[name]["seconds"] for row in rounds]
        summary[name] = {"audio_s_per_s": statistics.median(speeds), "per_round": speeds}
        if "setup_s" in rounds[0][name]:
            summary[name]["setup_s"] = statistics.median(row[name]["setup_s"] for row in rounds)
        else:
            for stage in ("decode_s", "embed_s", "predict_s"):
                share = [row[name][stage] / row[name]["seconds"] for row in rounds]
                summary[name][stage.replace("_s", "_share")] = statistics.median(share)
    ratios = {
        f"{name}/{peer}": statistics.median(
            (row[name]["audio_s"] / row[name]["seconds"]) / (row[peer]["audio_s"] / row[peer]["seconds"])
            for row in rounds
        )
        for name in systems
        for peer in config.peers
    }
    return {"files": [str(path) for path in files], "rounds": rounds, "summary": summary, "ratios": ratios}


def _speeds(row: dict) -> str:
    return ", ".join(f"{name} {values['audio_s'] / values['seconds']:.1f}x" for name, values in row.items())


def measure_accuracy(
    config: BenchConfig, test_sets: dict, heads: dict, backbone: Backbone, progress: Progress
) -> dict:
    """Every KeyWeb head and every peer on the same held-out files, per difficulty (one timed pass each)."""
    results = {}
    for difficulty, tracks in test_sets.items():
        files = [path for path, _ in tracks]
        reference = [key for _, key in tracks]
        first_head = next(iter(heads.values()))
        timed = keyweb_pass(files, backbone, first_head)
        rows = {}
        for name, head in heads.items():
            estimated = [
                Key.from_index(int(i)) for i in predict_tracks(head, timed.embeddings).argmax(axis=1)
            ]
            rows[name] = _metric_row(reference, estimated)
        rows[next(iter(heads))]["audio_s_per_s"] = timed.audio_s / timed.seconds
        for peer in config.peers:
            run = run_peer(peer, files, threads=config.threads)
            rows[peer] = _metric_row(reference, run.keys)
            rows[peer]["audio_s_per_s"] = timed.audio_s / run.seconds
            rows[peer]["failed_files"] = len(run.errors)
            rows[peer]["version"] = run.version
        results[f"{difficulty:g}"] = rows
        progress(
            f"accuracy at difficulty {difficulty:g}: "
            + ", ".join(f"{name} {row['weighted']:.3f}" for name, row in rows.items())
        )
    return results


def _metric_row(reference: list[Key], estimated: list[Key | None]) -> dict:
    metrics = key_metrics(reference, estimated)
    metrics.pop("confusion")
    return metrics


def synthetic_examples(pool: list[TrainingExample], n: int, seed: int) -> list[TrainingExample]:
    """n training examples from a pool of real ones: random transposition plus 5% feature noise."""
    rng = np.random.default_rng(seed)
    scale = 0.05 * np.concatenate([example.window_embeddings for example in pool]).std(axis=0)
    examples = []
    for i in range(n):
        base = pool[i % len(pool)]
        semitones = int(rng.integers(12))
        windows = roll_pitch_classes(base.window_embeddings, semitones)
        noisy = (windows + rng.normal(size=windows.shape) * scale).astype(np.float32)
        examples.append(TrainingExample(window_embeddings=noisy, key=base.key.transpose(semitones)))
    return examples


def time_training(
    examples: list[TrainingExample], head_config: HeadConfig, *, cyclic: bool, threads: int, device: str
) -> dict:
    """One `train_head` run without validation (no early stop), timed per epoch via its progress hook."""
    torch.set_num_threads(threads)
    stamps: list[float] = []
    started = time.perf_counter()
    train_head(
        train=examples,
        config=head_config,
        seed=0,
        device=device,
        cyclic=cyclic,
        progress=lambda _fraction: stamps.append(time.perf_counter()),
    )
    first = stamps[0] - started  # includes building the views and fitting the standardisation
    epoch_s = float(np.median(np.diff(stamps))) if len(stamps) > 1 else first
    return {
        "n_tracks": len(examples),
        "augmentation": "12-fold cyclic" if cyclic else "none",
        "views": len(examples) * (12 if cyclic else 1),
        "threads": threads,
        "epochs_measured": len(stamps),
        "first_epoch_s": first,
        "epoch_s": epoch_s,
        "measured_s": stamps[-1] - started,
        "projected_60_epochs_s": first + 59 * epoch_s,
    }


def measure_training(config: BenchConfig, pool: list[TrainingExample], progress: Progress) -> list[dict]:
    """Wall time of `train_head` (MLP 1×2048, dropout 0.9) vs N, with and without 12-fold augmentation."""
    head_config = HeadConfig(
        backbone="pitch_class",
        input_dim=pool[0].window_embeddings.shape[1],
        hidden_layers=1,
        hidden_dim=2048,
        dropout=0.9,
        epochs=config.training_epochs,
    )
    plan = [(n, cyclic, config.training_threads) for n in config.training_sizes for cyclic in (False, True)]
    if config.threads != config.training_threads:
        plan.append((min(config.training_sizes), True, config.threads))
    rows = []
    for n, cyclic, threads in plan:
        examples = synthetic_examples(pool, n, seed=n)
        rows.append(
            time_training(examples, head_config, cyclic=cyclic, threads=threads, device=config.device)
        )
        progress(f"training N={n} cyclic={cyclic} threads={threads}: {rows[-1]['epoch_s']:.2f} s/epoch")
    return rows


# --- the run ----------------------------------------------------------------------------------------------


def machine_info(config: BenchConfig) -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "load_average": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": commit.stdout.strip(),
        "device": torch.cuda.get_device_name() if config.device == "cuda" else "cpu",
    }
    if DEFAULT_HEAD.is_file():
        info["default_head_sha256"] = hashlib.sha256(DEFAULT_HEAD.read_bytes()).hexdigest()[:16]
    return info


def run(config: BenchConfig, work: Path, progress: Progress = print) -> dict:
    torch.set_num_threads(config.threads)
    missing = [peer for peer in config.peers if not peer_available(peer)]
    if missing:
        raise PeerError(f"peers not installed: {', '.join(missing)}; run bash bench/setup_peers.sh")
    report: dict = {"config": dataclasses.asdict(config), "machine": machine_info(config)}
    backbone = get_backbone("pitch_class")
    default_head = load_head(DEFAULT_HEAD, map_location=config.device).head

    progress("rendering held-out and training tracks")
    test_sets = {
        difficulty: synth_set(
            work / f"test_{difficulty:g}",
            n=config.n_test,
            seed=TEST_SEED + round(difficulty * 100),
            difficulty=difficulty,
            sample_rate=44_100,  # what users upload; essentia and madmom analyse at 44.1 kHz
            duration=(20.0, 40.0),
        )
        for difficulty in config.difficulties
    }
    needs_training_set = {"accuracy", "training"} & set(config.sections)
    pool: list[TrainingExample] = []
    if needs_training_set:
        shares = np.array_split(np.arange(config.n_train), len(TRAIN_DIFFICULTIES))
        for number, (difficulty, share) in enumerate(zip(TRAIN_DIFFICULTIES, shares, strict=True)):
            tracks = synth_set(
                work / f"train_{difficulty:g}",
                n=len(share),
                seed=TRAIN_SEED + number,
                difficulty=difficulty,
                sample_rate=16_000,
                duration=(20.0, 40.0),
            )
            pool += [
                TrainingExample(backbone.window_embeddings(load_audio(path)), key) for path, key in tracks
            ]

    if "throughput" in config.sections:
        checkpoint = random_myna_checkpoint(work / "myna_random.pth")
        myna = get_backbone("myna_vertical", checkpoint_path=checkpoint, device=config.device)
        myna_head = random_head(myna, config.device)
        systems = {
            "keyweb pitch_class": KeywebSystem(
                backbone, default_head, config.throughput_files, config.threads
            ),
            "keyweb myna_vertical": KeywebSystem(myna, myna_head, config.myna_files, config.threads),
        }
        if config.device == "cpu" and config.threads > 1:
            systems["keyweb myna_vertical, 1 thread"] = KeywebSystem(myna, myna_head, config.myna_files, 1)
        hard = test_sets[max(config.difficulties)]
        files = [path for path, _ in hard[: config.throughput_files]]
        report["throughput"] = measure_throughput(config, files, systems, progress)

    if "accuracy" in config.sections:
        torch.set_num_threads(config.training_threads)
        started = time.perf_counter()
        trained = train_key_model(
            train=pool, backbone_name="pitch_class", cyclic=True, time_budget_s=config.search_budget_s, seed=0
        )
        report["trained_head"] = {
            "config": trained.config.describe(),
            "n_tracks": len(pool),
            "seconds": time.perf_counter() - started,
            "validation_weighted": (trained.metrics_validation or {}).get("weighted"),
        }
        heads = {"keyweb default head": default_head, "keyweb trained head": trained.head.to(config.device)}
        torch.set_num_threads(config.threads)
        report["accuracy"] = measure_accuracy(config, test_sets, heads, backbone, progress)

    if "training" in config.sections:
        report["training"] = measure_training(config, pool, progress)
    report["machine"]["load_average_end"] = os.getloadavg()
    return report


def print_tables(report: dict) -> None:
    machine = report["machine"]
    print(f"\n{machine['date']}, {machine['nproc']} × {machine['cpu']}, load {machine['load_average']}")
    if "throughput" in report:
        summary, ratios = report["throughput"]["summary"], report["throughput"]["ratios"]
        print("\n| system | audio s / s (median) | per round |\n|---|---:|---|")
        for name, row in summary.items():
            rounds = ", ".join(f"{speed:.1f}" for speed in row["per_round"])
            print(f"| {name} | {row['audio_s_per_s']:.1f} | {rounds} |")
        print("\n| ratio (KeyWeb / peer, median of per-round ratios) | value |\n|---|---:|")
        for name, ratio in ratios.items():
            print(f"| {name} | {ratio:.2f} |")
    if "accuracy" in report:
        print(
            "\n| difficulty | system | weighted | correct | fifth | relative | parallel | other | audio s / s |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for difficulty, rows in report["accuracy"].items():
            for name, row in rows.items():
                speed = f"{row['audio_s_per_s']:.1f}" if "audio_s_per_s" in row else ""
                fractions = " | ".join(
                    f"{row[key]:.2f}" for key in ("correct", "fifth", "relative", "parallel", "other")
                )
                print(f"| {difficulty} | {name} | {row['weighted']:.3f} | {fractions} | {speed} |")
    if "training" in report:
        print(
            "\n| N tracks | augmentation | views | threads | s / epoch | first epoch s | 60 epochs (projected) s |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|")
        for row in report["training"]:
            print(
                f"| {row['n_tracks']} | {row['augmentation']} | {row['views']} | {row['threads']} | {row['epoch_s']:.2f} | "
                f"{row['first_epoch_s']:.2f} | {row['projected_60_epochs_s']:.0f} |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=list(PEERS), help="none: KeyWeb only")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (Myna-Vertical and the heads)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads; peers get the same limit")
    parser.add_argument("--rounds", type=int, default=BenchConfig.rounds)
    parser.add_argument(
        "--n-test", type=int, default=BenchConfig.n_test, help="held-out tracks per difficulty"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every section")
    parser.add_argument(
        "--work-dir", type=Path, help="keeps rendered tracks between runs (default: temporary)"
    )
    parser.add_argument("--out", type=Path, help="JSON path (default: bench/results/ml-<time>.json)")
    args = parser.parse_args(argv)

    base = QUICK if args.quick else BenchConfig(rounds=args.rounds, n_test=args.n_test)
    config = dataclasses.replace(
        base, sections=tuple(args.sections), peers=tuple(args.peers), device=args.device, threads=args.threads
    )
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="keyweb-bench-") as scratch:
            work = args.work_dir or Path(scratch)
            work.mkdir(parents=True, exist_ok=True)
            report = run(
                config, work, progress=lambda line: print(f"[{time.perf_counter() - started:6.0f} s] {line}")
            )
    except PeerError as error:
        print(f"ml_throughput: {error}", file=sys.stderr)
        return 2
    report["seconds"] = time.perf_counter() - started
    out = args.out or RESULTS_DIR / f"ml-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print_tables(report)
    print(f"\nwrote {out} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
