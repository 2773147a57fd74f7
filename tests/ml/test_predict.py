"""`python -m ml predict` in a process pool, and the `python -m ml pretrain` command."""

import json

import numpy as np
import torch

from ml.backbones import get_backbone
from ml.backbones.skey_net import load_model
from ml.cli import main
from ml.keys import ALL_KEYS
from ml.predict import embed_files, result_runs
from tests.factories import write_synthetic


def tracks_and_a_broken_file(folder, *, broken_at: int):
    """Eight 3 s synthetic tracks with a file that is not audio at position `broken_at`."""
    paths = [
        write_synthetic(
            folder / f"t{i}.wav", key=ALL_KEYS[i].mir_eval, seed=i, seconds=3.0, sample_rate=16_000
        )
        for i in range(8)
    ]
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    paths.insert(broken_at, broken)
    return paths, broken


def test_the_pool_gives_the_same_embeddings_and_errors_in_order(tmp_path):
    paths, broken = tracks_and_a_broken_file(tmp_path, broken_at=3)
    pooled = list(embed_files(paths, backbone_name="pitch_class", workers=2))
    single = list(
        embed_files(paths, backbone_name="pitch_class", workers=1, backbone=get_backbone("pitch_class"))
    )
    assert [error is not None for _, error in pooled] == [path == broken for path in paths]
    for (a, error_a), (b, _) in zip(pooled, single, strict=True):
        if error_a is None:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_pretrain_command_writes_a_checkpoint_and_resume_finishes_it(tmp_path, capsys):
    folder = tmp_path / "library"
    folder.mkdir()
    for i in range(2):
        write_synthetic(folder / f"t{i}.wav", key="C major", seed=i, seconds=4.0, sample_rate=16_000)
    out = tmp_path / "skey.pt"
    torch.set_num_threads(1)
    arguments = [
        "pretrain",
        "--audio-list",
        str(folder),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]
    assert main([*arguments, "--steps", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps_done"] == 1 and summary["resumed_from"] == 0
    state = torch.load(out, weights_only=True)
    assert state["pretraining"]["complete"] and state["pretraining"]["data"]["tracks"] == 2
    load_model(out)  # rebuilt from the file alone
    assert main([*arguments, "--steps", "1", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["resumed_from"] == 1  # complete: nothing left to do
    assert main(["pretrain", "--audio-list", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
    capsys.readouterr()
    # A CSV of paths alone is a library too (keys are only read with --with-keys).
    (tmp_path / "paths.csv").write_text("path\nlibrary/t0.wav\nlibrary/t1.wav\n")
    listed = [
        *arguments[:2],
        str(tmp_path / "paths.csv"),
        "--out",
        str(tmp_path / "listed.pt"),
        *arguments[5:],
    ]
    assert main([*listed, "--steps", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["steps_done"] == 1


def test_prefetched_audio_stands_in_for_decoding_in_the_pool_and_in_process(tmp_path):
    from ml.audio import load_audio
    from ml.predict import Prefetch

    paths, _ = tracks_and_a_broken_file(tmp_path, broken_at=2)
    decoded = Prefetch(paths).wait()
    assert sorted(decoded) == [i for i in range(len(paths)) if i != 2]  # the broken file is left to report
    np.testing.assert_array_equal(decoded[0], load_audio(paths[0]))
    # Position 0 gets another file's audio: its embeddings must be that audio's, wherever they are made.
    decoded[0] = decoded[5]
    backbone = get_backbone("pitch_class")
    for workers in (2, 1):
        results = list(
            embed_files(paths, backbone_name="pitch_class", workers=workers, decoded=dict(decoded))
        )
        np.testing.assert_allclose(results[0][0], results[5][0], rtol=1e-5, atol=1e-6)
        assert results[2][0] is None and "broken.wav" in results[2][1]
        np.testing.assert_allclose(results[1][0], backbone.window_embeddings(load_audio(paths[1])), atol=1e-6)


def test_predict_applies_the_head_to_runs_of_files_cut_by_count_or_by_time():
    results = [(np.zeros((1, 4)), None), (None, "bad"), (np.ones((1, 4)), None), (None, "worse"), (None, "x")]
    by_count = list(result_runs(iter(results), files=2, seconds=3600))
    assert [len(run) for run in by_count] == [2, 2, 1]
    assert [item for run in by_count for item in run] == results  # nothing lost, order kept
    # A run is also cut once its first file has waited `seconds`: here at once, so one file per run.
    assert [len(run) for run in result_runs(iter(results), files=16, seconds=0)] == [1] * 5
    assert list(result_runs(iter([]), files=16, seconds=1)) == []
