"""The active-learning simulation command: a tiny real run end to end, and clear errors for bad input."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ml.keys import ALL_KEYS
from tests.factories import write_synthetic

METRIC_FIELDS = {"weighted", "correct", "fifth", "relative", "parallel", "other", "n"}


def _labeled_folder(folder: Path, *, n: int, seed: int) -> Path:
    rows = ["path,key"]
    for i in range(n):
        key = ALL_KEYS[(i * 7 + seed) % 24]
        name = f"track_{i:02d}.wav"
        write_synthetic(folder / name, key=key.mir_eval, seed=seed * 100 + i, seconds=3.0, sample_rate=16000)
        rows.append(f"{name},{key.mir_eval}")
    csv_path = folder / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return csv_path


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("simulation")
    return _labeled_folder(root / "pool", n=24, seed=1), _labeled_folder(root / "test", n=12, seed=2)


def _simulate(pool: Path, test: Path, out: Path, **options) -> str:
    stdout = StringIO()
    call_command(
        "simulate_active_learning",
        pool=str(pool),
        test=str(test),
        out=str(out),
        cache_dir=str(out.parent / "cache"),
        no_progress=True,
        stdout=stdout,
        stderr=StringIO(),
        **options,
    )
    return stdout.getvalue()


def test_tiny_run_writes_curves_for_strategy_and_random(tiny_dataset, tmp_path):
    pool, test = tiny_dataset
    out = tmp_path / "curve.json"

    report = _simulate(pool, test, out, strategy="entropy", budget=12, step=6, time_budget=2, threads=1)

    result = json.loads(out.read_text())
    assert set(result["curves"]) == {"entropy", "random"}
    for strategy, curve in result["curves"].items():
        assert [point["labels"] for point in curve] == [6, 12], strategy
        for point in curve:
            assert METRIC_FIELDS <= set(point)
            assert point["n"] == 12
            assert 0.0 <= point["weighted"] <= 1.0
            shares = sum(point[name] for name in ("correct", "fifth", "relative", "parallel", "other"))
            assert shares == pytest.approx(1.0)
    runs = {run["strategy"]: run for run in result["runs"]}
    # Same seed, same starting labels: the strategies differ only in what they ask for next.
    assert runs["entropy"]["order"][:6] == runs["random"]["order"][:6]
    assert len(set(runs["entropy"]["order"])) == 12
    assert set(result["labels_to_reach"]["entropy"]) == {"0.7", "0.8", "0.9"}
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "entropy" in report and "random" in report


def test_csv_without_the_header_is_a_clear_error(tiny_dataset, tmp_path):
    _, test = tiny_dataset
    bad = tmp_path / "pool.csv"
    bad.write_text("file,label\nx.wav,C major\n")

    with pytest.raises(CommandError, match="header 'path,key'"):
        _simulate(bad, test, tmp_path / "out.json")


def test_unknown_key_names_the_line(tiny_dataset, tmp_path):
    _, test = tiny_dataset
    bad = tmp_path / "pool.csv"
    bad.write_text("path,key\nx.wav,H sharp lydian\n")

    with pytest.raises(CommandError, match="line 2"):
        _simulate(bad, test, tmp_path / "out.json")


def test_missing_audio_file_is_named(tiny_dataset, tmp_path):
    _, test = tiny_dataset
    bad = tmp_path / "pool.csv"
    bad.write_text("path,key\nnowhere.wav,C major\n")

    with pytest.raises(CommandError, match="nowhere.wav not found"):
        _simulate(bad, test, tmp_path / "out.json")


def test_test_tracks_in_the_pool_are_refused(tiny_dataset, tmp_path):
    pool, _ = tiny_dataset

    with pytest.raises(CommandError, match="both the pool and the test"):
        _simulate(pool, pool, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
