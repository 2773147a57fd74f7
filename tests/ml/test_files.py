"""The one atomic writer and the one label-file reader."""

from pathlib import Path

import numpy as np
import pytest

from ml.files import json_write_atomic, npy_write_atomic, write_atomic
from ml.keys import Key
from ml.labelfile import LabelFileError, read_label_file


def test_write_atomic_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "result.json"
    json_write_atomic(target, {"a": 1})
    json_write_atomic(target, {"a": 2})
    assert target.read_text().strip().replace(" ", "").replace("\n", "") == '{"a":2}'
    npy_write_atomic(tmp_path / "x.npy", np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.arange(3))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["result.json", "sub", "x.npy"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text("old")

    def failing(temp_path: Path) -> None:
        temp_path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, failing)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]


def test_the_temp_name_keeps_the_suffix_so_format_sniffing_writers_work(tmp_path):
    seen = []
    write_atomic(
        tmp_path / "a.flac", lambda temp_path: seen.append(temp_path.suffix) or temp_path.write_text("")
    )
    assert seen == [".flac"]


def test_label_file_reads_keys_and_no_key_labels_resolving_paths(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\ufeffpath , key\na.wav,C major\nsub/b.wav, 8A \nc.wav,Ambiguous\nd.wav,no key\n")
    rows = read_label_file(csv_path)
    assert [row.path for row in rows] == [
        (tmp_path / name).resolve() for name in ("a.wav", "sub/b.wav", "c.wav", "d.wav")
    ]
    assert rows[0].key == Key.parse("C major") and rows[1].key == Key.parse("A minor")
    assert [(row.key, row.label) for row in rows[2:]] == [(None, "ambiguous"), (None, "no_key")]
    assert rows[3].line == 5


def test_a_list_of_audio_files_needs_only_a_path_column(tmp_path):
    (tmp_path / "paths.csv").write_text("path\na.wav\nsub/b.wav\n")
    # keys=False ignores a key column, even one that would not parse.
    (tmp_path / "labels.csv").write_text("path,key\na.wav,H major\nb.wav,modulating\n")
    rows = read_label_file(tmp_path / "paths.csv", keys=False)
    assert [(row.path, row.key, row.label) for row in rows] == [
        ((tmp_path / "a.wav").resolve(), None, ""),
        ((tmp_path / "sub/b.wav").resolve(), None, ""),
    ]
    assert [row.key for row in read_label_file(tmp_path / "labels.csv", keys=False, allow_no_key=False)] == [
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("file,label\na.wav,C major\n", {}, "header 'path,key'"),
        ("path\na.wav\n", {}, "header 'path,key'"),
        ("file\na.wav\n", {"keys": False}, "header 'path \\(and any other columns\\)'"),
        ("path,key\na.wav,C major\n,C major\n", {}, "line 3: the path is empty"),
        ("path,key\na.wav,H major\n", {}, "line 2: 'H major'"),
        ("path,key\na.wav,modulating\n", {"allow_no_key": False}, "line 2: labelled 'modulating'"),
        ("path,key\nmissing.wav,C major\n", {"require_files": True}, "line 2: audio file"),
    ],
)
def test_label_file_errors_name_the_file_and_line(tmp_path, text, options, message):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(text)
    with pytest.raises(LabelFileError, match=message) as raised:
        read_label_file(csv_path, **options)
    assert str(csv_path) in str(raised.value)
