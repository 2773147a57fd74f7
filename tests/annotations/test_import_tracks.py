"""import_tracks and track_import: good files in, every bad file reported, nothing else affected."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Annotation, Track
from annotations.services.tracks import track_import
from ml.keys import Key
from tests.factories import write_synthetic


def run_import(*args) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_tracks", *map(str, args), "--no-progress", stdout=out, stderr=err)
    except CommandError as error:
        return out.getvalue(), err.getvalue(), error
    return out.getvalue(), err.getvalue(), None


def test_folder_import_is_recursive_and_reads_metadata(db, good_files):
    out, _, error = run_import(good_files[0].parent)
    assert error is None
    assert "3 imported" in out
    assert Track.objects.count() == 3
    flac = Track.objects.get(original_filename="two.flac")
    assert flac.audio_format == "flac"
    assert flac.duration_s == pytest.approx(6.0, abs=0.05)
    assert flac.sample_rate == 22050 and flac.channels == 1
    assert flac.title == "two"
    assert Path(flac.audio.path).is_file() and flac.audio.path != str(good_files[1])
    assert len(flac.content_hash) == 64
    assert {t.split for t in Track.objects.all()} <= {"pool", "test"}


def test_reimport_is_a_no_op(db, good_files, tmp_path):
    run_import(good_files[0].parent)
    copy = tmp_path / "renamed-copy.wav"
    copy.write_bytes(good_files[0].read_bytes())
    out, _, error = run_import(good_files[0].parent, copy)
    assert error is None
    assert "0 imported" in out and "4 already present" in out
    assert Track.objects.count() == 3


def test_bad_files_are_reported_each_and_good_ones_still_import(db, good_files, bad_files):
    out, err, error = run_import(good_files[0].parent, *bad_files.values())
    assert isinstance(error, CommandError)
    assert "5 file(s) could not be imported" in str(error)
    assert "3 imported" in out and "5 failed" in out
    assert Track.objects.count() == 3
    lines = {
        name: next(line for line in err.splitlines() if str(path) in line) for name, path in bad_files.items()
    }
    assert "empty" in lines["empty"]
    assert "silent" in lines["silent"]
    for name in ("text", "corrupt", "truncated"):
        assert "not" in lines[name] and ("audio" in lines[name] or "read" in lines[name]), lines[name]


def test_limits_on_size_and_duration(db, tmp_path, settings):
    long_file = write_synthetic(tmp_path / "long.wav", key="D major", seed=4, seconds=8)
    settings.KEYWEB = {**settings.KEYWEB, "MAX_DURATION_S": 5}
    outcome = track_import(path=long_file)
    assert outcome.error and "too long" in outcome.error and "limit" in outcome.error
    assert str(tmp_path) not in outcome.error  # the user sees the file's name once, not a server path
    settings.KEYWEB = {**settings.KEYWEB, "MAX_DURATION_S": 1200, "MAX_UPLOAD_BYTES": 1000}
    outcome = track_import(path=long_file)
    assert outcome.error and "limit" in outcome.error
    assert Track.objects.count() == 0


def test_unsupported_extension(db, tmp_path):
    path = tmp_path / "song.txt"
    path.write_text("la la la")
    outcome = track_import(path=path)
    assert "unsupported file type '.txt'" in outcome.error


def test_symlinks_out_of_the_folder_are_not_followed(db, tmp_path, good_files):
    outside = write_synthetic(tmp_path / "outside" / "secret.wav", key="F major", seed=5)
    library = good_files[0].parent
    (library / "link.wav").symlink_to(outside)
    (library / "linked-dir").symlink_to(outside.parent, target_is_directory=True)
    out, err, error = run_import(library)
    assert "symbolic link pointing outside" in err
    assert Track.objects.count() == 3
    assert not Track.objects.filter(original_filename="secret.wav").exists()


def test_labels_csv_imports_annotations(db, good_files, tmp_path):
    library = good_files[0].parent
    labels = library / "labels.csv"
    labels.write_text("path,key\none.wav,C major\nsub/two.flac,8A\nsub/three.mp3,atonal\n")
    out, _, error = run_import(library, "--labels", labels)
    assert error is None and "3 labels" in out
    one = Track.objects.get(original_filename="one.wav")
    assert one.consensus == Key.parse("C major")
    assert Track.objects.get(original_filename="two.flac").consensus == Key.parse("A minor")
    three = Track.objects.get(original_filename="three.mp3")
    assert three.consensus_label == "no_key" and three.consensus_key is None
    assert Annotation.objects.filter(source="import").count() == 3
    run_import(library, "--labels", labels)  # again: no duplicate labels
    assert Annotation.objects.count() == 3


def test_bad_labels_csv_names_the_line(db, good_files, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,key\none.wav,C major\ntwo.flac,H major\n")
    _, _, error = run_import(good_files[0].parent, "--labels", labels)
    assert error is not None and "line 3" in str(error) and "'H major'" in str(error)
    assert Track.objects.count() == 0
