"""`python -m ml` end to end on a tiny synthetic data set (evaluate, predict, user errors) and its embedding cache."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml.backbones.base import Backbone
from ml.cache import backbone_fingerprint, cache_path, default_cache_dir, embeddings_cached, file_sha256
from ml.cli import default_head_path, main

ROOT = Path(__file__).resolve().parents[2]
synth = pytest.importorskip("ml.synth")


def run_ml(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ml", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """24 training tracks in six timbres, 6 test tracks in a seventh; 5–7 s each."""
    root = tmp_path_factory.mktemp("cli")
    train_timbres = [timbre for timbre in synth.TIMBRES if timbre != "bell"]
    short = {"sample_rate": 16_000, "duration_range": (5.0, 7.0)}
    synth.generate_dataset(root / "train", n_tracks=24, seed=1, timbres=train_timbres, **short)
    synth.generate_dataset(root / "test", n_tracks=6, seed=2, timbres=["bell"], **short)
    return root


def test_evaluate_end_to_end_and_the_second_run_hits_the_cache(dataset, tmp_path):
    args = [
        "evaluate",
        "--train",
        "train/labels.csv",
        "--test",
        "test/labels.csv",
        "--backbone",
        "pitch_class",
    ]
    args += [
        "--time-budget",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "result.json"),
    ]
    first = run_ml(*args, "--save-head", str(tmp_path / "head.pt"), cwd=dataset)
    assert first.returncode == 0, first.stderr
    printed = json.loads(first.stdout)
    written = json.loads((tmp_path / "result.json").read_text())
    for field in ("weighted", "correct", "fifth", "relative", "parallel", "other", "n", "ece", "n_train"):
        assert field in printed and written[field] == printed[field]
    assert printed["n"] == 6 and printed["n_train"] == 24
    assert sum(
        printed[name] for name in ("correct", "fifth", "relative", "parallel", "other")
    ) == pytest.approx(1)
    assert len(written["confusion"]) == 24 and "confusion" not in printed
    # How far the test figure could move on another draw of tracks like these.
    low, high = printed["weighted_ci95"]
    assert 0 <= low <= printed["weighted"] <= high <= 1
    assert set(printed["timing"]) == {"embedding_s", "training_s", "prediction_s"}
    # Two seconds cannot hold the whole recipe, and the report says the budget cut it short.
    assert printed["validation"]["cut_by_budget"] is True
    assert 0 < printed["validation"]["mean_confidence"] <= 1
    assert printed["cache"] == {"hits": 0, "lookups": 30}

    second = run_ml(*args, cwd=dataset)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["cache"] == {"hits": 30, "lookups": 30}
    assert again["timing"]["embedding_s"] < printed["timing"]["embedding_s"]

    # The saved head records the embeddings it was trained on, so the worker can refuse others.
    from ml.backbones import get_backbone
    from ml.heads import load_head

    recorded = load_head(tmp_path / "head.pt").extra["backbone_fingerprint"]
    assert recorded == backbone_fingerprint(get_backbone("pitch_class"))

    # The saved head predicts in-process too, and the training tracks' keys come out in both notations.
    paths = sorted(str(p) for p in (dataset / "test").glob("*.wav"))[:2]
    assert main(["predict", *paths, "--head", str(tmp_path / "head.pt"), "--json"]) == 0


def test_predict_with_a_corrupt_file_among_good_ones(dataset, tmp_path):
    if not default_head_path("pitch_class").is_file():
        pytest.skip("the default head has not been trained yet")
    good = sorted((dataset / "test").glob("*.wav"))[:2]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    result = run_ml("predict", str(good[0]), str(corrupt), str(good[1]), "--json", "--top", "2", cwd=tmp_path)
    assert result.returncode == 1
    entries = json.loads(result.stdout)
    assert [entry.get("error") is None for entry in entries] == [True, False, True]
    assert "corrupt.wav" in entries[1]["error"] and "corrupt.wav" in result.stderr
    labels = dict(line.split(",") for line in (dataset / "test" / "labels.csv").read_text().splitlines()[1:])
    for entry, path in zip((entries[0], entries[2]), good, strict=True):
        assert entry["key"] == labels[path.name]
        assert len(entry["top"]) == 2 and 0 < entry["confidence"] <= 1
        assert entry["camelot"][-1] in "AB"


def test_predict_into_a_closed_pipe_stops_quietly(dataset, tmp_path):
    """`python -m ml predict FILES | head -1`: the reader leaves early; no traceback, SIGPIPE's status."""
    files = [str(path) for path in sorted((dataset / "test").glob("*.wav"))[:3]]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ml", "predict", *files],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # the reader is gone before the first line
    _, error = process.communicate(timeout=180)
    assert process.returncode == 141
    assert "Traceback" not in error


def test_a_bad_csv_row_is_named_in_one_line(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    first_track = sorted((dataset / "train").glob("*.wav"))[0]
    bad.write_text(f"path,key\n{first_track},C major\n{first_track},H major\n")
    assert main(["evaluate", "--train", str(bad), "--test", str(bad), "--backbone", "pitch_class"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "line 3" in error and "'H major'" in error
    missing = tmp_path / "missing.csv"
    missing.write_text("path,key\nnot_here.wav,C major\n")
    assert main(["evaluate", "--train", str(missing), "--test", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "line 2" in error and "not_here.wav not found" in error


def test_predict_user_errors_exit_2_without_traceback(dataset, tmp_path, capsys):
    track = str(sorted((dataset / "test").glob("*.wav"))[0])
    assert main(["predict", track, "--backbone", "myna_vertical"]) == 2
    assert "no default head ships for backbone 'myna_vertical'" in capsys.readouterr().err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert main(["predict", track, "--head", str(broken)]) == 2
    error = capsys.readouterr().err
    assert "broken.pt" in error and "Traceback" not in error


def test_a_head_from_an_older_feature_version_is_refused_in_one_line(dataset, tmp_path, capsys):
    from ml.backbones import get_backbone
    from ml.heads import HeadConfig, KeyHead, save_head

    track = str(sorted((dataset / "test").glob("*.wav"))[0])
    features = get_backbone("pitch_class").embedding_dim
    config = HeadConfig(backbone="pitch_class", input_dim=features - 12, hidden_layers=0, hidden_dim=1)
    old = save_head(tmp_path / "old.pt", head=KeyHead(config=config), config=config, metrics=None, extra=None)
    assert main(["predict", track, "--head", str(old)]) == 2
    error = capsys.readouterr().err
    assert f"reads {features - 12} features per window" in error and f"gives {features}" in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1


# --- the embedding cache the CLI relies on --------------------------------------------------------------


class CountingBackbone(Backbone):
    """A real (if trivial) backbone: per-window RMS and peak; counts how often it really embeds."""

    name = "counting"
    embedding_dim = 2

    def __init__(self, *, window_samples: int = 16_000) -> None:
        self.window_samples = window_samples
        self.calls = 0

    def window_embeddings(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        windows = audio[: len(audio) // self.window_samples * self.window_samples].reshape(
            -1, self.window_samples
        )
        return np.stack([np.sqrt((windows**2).mean(1)), np.abs(windows).max(1)], axis=1).astype(np.float32)


def test_cache_computes_once_per_content_and_backbone_options(dataset, tmp_path):
    track = sorted((dataset / "train").glob("*.wav"))[0]
    backbone = CountingBackbone()
    first = embeddings_cached(track, backbone, tmp_path)
    second = embeddings_cached(track, backbone, tmp_path)
    np.testing.assert_array_equal(first, second)
    assert backbone.calls == 1 and first.shape[1] == 2
    # Same bytes under another name: still a hit, because the key is the content hash.
    copy = tmp_path / "copy.wav"
    shutil.copy(track, copy)
    embeddings_cached(copy, backbone, tmp_path)
    assert backbone.calls == 1
    assert file_sha256(copy) == hashlib.sha256(track.read_bytes()).hexdigest()
    # Other options change the numbers, so they must not share entries.
    other = CountingBackbone(window_samples=8_000)
    assert backbone_fingerprint(other) != backbone_fingerprint(backbone)
    assert len(embeddings_cached(track, other, tmp_path)) == 2 * len(first)


def test_a_damaged_cache_entry_is_recomputed(dataset, tmp_path):
    track = sorted((dataset / "train").glob("*.wav"))[1]
    backbone = CountingBackbone()
    expected = embeddings_cached(track, backbone, tmp_path)
    entry = cache_path(sha256=file_sha256(track), backbone=backbone, cache_dir=tmp_path)
    entry.write_bytes(entry.read_bytes()[:20])
    np.testing.assert_array_equal(embeddings_cached(track, backbone, tmp_path), expected)
    assert backbone.calls == 2
    assert not [p for p in entry.parent.iterdir() if p.suffix == ".tmp"]


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KEYWEB_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
