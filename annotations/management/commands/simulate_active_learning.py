"""`manage.py simulate_active_learning`: learning curves of labeling strategies, from a labeled pool."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ml.active import STRATEGIES
from ml.keys import Key
from ml.labelfile import LabelFileError, read_label_file


def _labeled_tracks(csv_path: Path, role: str) -> list[tuple[Path, Key]]:
    """A `path,key` CSV as (absolute path, key) pairs, with every problem named by file and line."""
    if not csv_path.is_file():
        raise CommandError(f"{role} CSV {csv_path} does not exist")
    try:
        rows = read_label_file(csv_path)
    except LabelFileError as error:
        raise CommandError(f"{role} CSV: {error}") from error
    tracks = []
    for row in rows:
        if row.key is None:
            raise CommandError(
                f"{role} CSV {csv_path}: {row.path.name} is labeled {row.label!r}; the simulation needs a key "
                "for every track (remove the rows without one)"
            )
        if not row.path.is_file():
            raise CommandError(f"{role} CSV {csv_path}: audio file {row.path} not found")
        tracks.append((row.path, row.key))
    if not tracks:
        raise CommandError(f"{role} CSV {csv_path} lists no tracks")
    return tracks


def _strategies(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown or not names:
        raise CommandError(
            f"unknown strategy {', '.join(unknown) or text!r}; choose from {', '.join(STRATEGIES)}"
        )
    # The baseline always runs, once, last.
    return [name for name in dict.fromkeys(names) if name != "random"] + ["random"]


def _numbers(text: str, cast, what: str) -> list:
    try:
        values = [cast(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise CommandError(f"{what} must be comma-separated numbers, got {text!r}") from error
    if not values:
        raise CommandError(f"{what} is empty")
    return values


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` torch CPU threads, then put the previous setting back."""
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _command_line(options: dict, budget: int) -> str:
    """The invocation that reproduces this result, written into it."""
    words = ["python", "manage.py", "simulate_active_learning"]
    words += ["--pool", str(options["pool"]), "--test", str(options["test"])]
    words += ["--strategy", options["strategy"], "--budget", str(budget), "--step", str(options["step"])]
    if options["initial"] is not None:
        words += ["--initial", str(options["initial"])]
    words += ["--seeds", options["seeds"], "--time-budget", f"{options['time_budget']:g}"]
    words += ["--backbone", options["backbone"]]
    if options["threads"] is not None:
        words += ["--threads", str(options["threads"])]
    if options["cache_dir"]:
        words += ["--cache-dir", str(options["cache_dir"])]
    words += ["--thresholds", options["thresholds"], "--out", str(options["out"])]
    return shlex.join(words)


class Command(BaseCommand):
    help = (
        "Simulate an annotator who answers with the pool CSV's labels: retrain every STEP labels, score "
        "the test CSV, and write the learning curves (strategy and random) as JSON plus a PNG beside it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--pool", type=Path, required=True, help="CSV path,key: the tracks to label")
        parser.add_argument("--test", type=Path, required=True, help="CSV path,key: held-out tracks to score")
        parser.add_argument(
            "--strategy",
            default="entropy",
            help=f"one or more of {', '.join(STRATEGIES)}, comma-separated; random always runs too",
        )
        parser.add_argument("--budget", type=int, default=300, help="labels in all (default 300)")
        parser.add_argument("--step", type=int, default=25, help="labels between retrainings (default 25)")
        parser.add_argument(
            "--initial", type=int, help="random labels before the first training (default STEP)"
        )
        parser.add_argument("--seeds", default="0", help="comma-separated seeds to average over (default 0)")
        parser.add_argument(
            "--time-budget", type=float, default=5.0, help="seconds of head search per training (default 5)"
        )
        parser.add_argument(
            "--backbone", default="pitch_class", help="embedding backbone (default pitch_class)"
        )
        parser.add_argument("--cache-dir", type=Path, help="embedding cache (default: ml.cache's)")
        parser.add_argument(
            "--thresholds", default="0.7,0.8,0.9", help="weighted scores to report labels-needed for"
        )
        parser.add_argument(
            "--out", type=Path, required=True, help="JSON file to write; the PNG goes beside it"
        )
        parser.add_argument(
            "--threads",
            type=int,
            help="torch CPU threads (default: torch's choice); 1 is fastest for small heads on a busy machine",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        from ml.simulation import SimulationError, curve_mean, curves_plot, reach_table, result_write

        # call_command passes keyword options through unconverted.
        for name in ("pool", "test", "out", "cache_dir"):
            options[name] = Path(options[name]) if options[name] else None
        strategies = _strategies(options["strategy"])
        seeds = _numbers(options["seeds"], int, "--seeds")
        thresholds = _numbers(options["thresholds"], float, "--thresholds")
        budget, step, initial = options["budget"], options["step"], options["initial"]
        if budget < 1 or step < 1 or (initial is not None and initial < 1):
            raise CommandError("--budget, --step and --initial must be at least 1")
        if options["time_budget"] <= 0:
            raise CommandError("--time-budget must be positive")
        out: Path = options["out"]
        if out.suffix.lower() != ".json":
            raise CommandError(f"--out must name a .json file, got {out}")
        pool = _labeled_tracks(options["pool"], "pool")
        test = _labeled_tracks(options["test"], "test")
        shared = {path for path, _ in pool} & {path for path, _ in test}
        if shared:
            raise CommandError(
                f"{len(shared)} file(s) are in both the pool and the test CSV (e.g. {sorted(shared)[0]}); "
                "a test track that is also labeled for training inflates every score"
            )
        if budget > len(pool):
            self.stderr.write(
                f"--budget {budget} is more than the pool's {len(pool)} tracks; using {len(pool)}"
            )
            budget = len(pool)

        if options["threads"] is not None and options["threads"] < 1:
            raise CommandError("--threads must be at least 1")
        try:
            with _torch_threads(options["threads"]):
                runs = self._simulate_all(
                    pool=pool, test=test, strategies=strategies, seeds=seeds, budget=budget, options=options
                )
        except SimulationError as error:
            raise CommandError(str(error)) from error

        curves = {strategy: curve_mean(strategy_runs) for strategy, strategy_runs in runs.items()}
        reach = reach_table(runs, thresholds)
        result = {
            "command": _command_line(options, budget),
            "pool": str(options["pool"]),
            "test": str(options["test"]),
            "n_pool": len(pool),
            "n_test": len(test),
            "budget": budget,
            "step": step,
            "initial": step if initial is None else initial,
            "seeds": seeds,
            "backbone": options["backbone"],
            "time_budget_s": options["time_budget"],
            "strategies": strategies,
            "thresholds": thresholds,
            "curves": curves,
            "labels_to_reach": reach,
            "runs": [run for strategy_runs in runs.values() for run in strategy_runs],
        }
        result_write(out, result)
        plot = out.with_suffix(".png")
        curves_plot(
            plot,
            curves=curves,
            thresholds=thresholds,
            title=f"{options['pool'].parent.name or options['pool'].name}: {len(pool)} pool / {len(test)} test"
            f" tracks, step {step}, {len(seeds)} seed(s)",
        )
        self._report(curves, reach, thresholds)
        self.stdout.write(f"wrote {out} and {plot}")

    def _simulate_all(
        self, *, pool: list, test: list, strategies: list[str], seeds: list[int], budget: int, options: dict
    ) -> dict[str, list[dict]]:
        from ml.simulation import simulate, simulation_rounds, tracks_embed

        quiet = options["no_progress"]
        common = {"backbone_name": options["backbone"], "cache_dir": options["cache_dir"]}
        with tqdm(total=len(pool) + len(test), desc="embedding", unit="track", disable=quiet) as bar:
            tracks_embed(pool + test, progress=bar.update, **common)
        step, initial = options["step"], options["initial"]
        rounds = simulation_rounds(n_pool=len(pool), budget=budget, step=step, initial=initial)
        runs: dict[str, list[dict]] = {strategy: [] for strategy in strategies}
        total = rounds * len(strategies) * len(seeds)
        with tqdm(total=total, desc="training", unit="model", disable=quiet) as bar:
            for seed in seeds:
                for strategy in strategies:
                    bar.set_postfix_str(f"{strategy} seed {seed}")
                    runs[strategy].append(
                        simulate(
                            pool=pool,
                            test=test,
                            strategy=strategy,
                            budget=budget,
                            step=step,
                            seed=seed,
                            initial=initial,
                            time_budget_s=options["time_budget"],
                            progress=bar.update,
                            **common,
                        )
                    )
        return runs

    def _report(self, curves: dict, reach: dict, thresholds: list[float]) -> None:
        header = ["strategy", "final weighted", *(f"labels to {t:g}" for t in thresholds)]
        self.stdout.write("  ".join(f"{h:>16}" for h in header))
        for strategy, curve in curves.items():
            final = curve[-1]
            cells = [strategy, f"{final['weighted']:.3f} ± {final['weighted_std']:.3f}"]
            for threshold in thresholds:
                needed = reach[strategy][f"{threshold:g}"]["mean_curve"]
                cells.append("never" if needed is None else str(needed))
            self.stdout.write("  ".join(f"{c:>16}" for c in cells))
