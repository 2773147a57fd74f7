"""Label import: the round trip through every export format into an empty database, dry runs, plain
`path,key` CSVs, the management commands, and files that cannot be read."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Annotation, Track
from annotations.services.exports import ExportOptions, export_stream
from annotations.services.labels import LabelValue, annotation_import
from annotations.services.tracks import track_import

from .helpers import annotate, error_fields, label_track, make_track, synthetic, token_client

LABELS = {
    "one.wav": "C major",
    "two.flac": "F# minor",
    "three.mp3": "Eb major",
    "four.wav": "ambiguous",
    "five.wav": "no_key",
    "six.ogg": "modulating",
}


@pytest.fixture
def labeled_audio(tmp_path, annotator) -> dict[str, Path]:
    """Six real files, each with a consensus: imported keys, an annotator's key, and no-key labels."""
    paths = {}
    for seed, (name, label) in enumerate(LABELS.items(), start=31):
        path = synthetic(tmp_path / "originals", name, "A minor" if seed % 2 else "D major", seed=seed)
        track = track_import(path=path).track
        if name == "two.flac":
            annotate(track, annotator, label)  # consensus from an annotator, not an import
        else:
            annotation_import(track=track, label=LabelValue.parse(label))
        paths[name] = path
    return paths


def consensus_by_hash() -> dict[str, tuple[str, int | None]]:
    return {t.content_hash: (t.consensus_label, t.consensus_key) for t in Track.objects.all()}


def empty_the_database() -> None:
    Annotation.objects.all().delete()
    Track.objects.all().delete()


@pytest.mark.parametrize("export_format", ["csv", "jsonl", "jams", "giantsteps"])
def test_round_trip_into_an_empty_database(admin_user, labeled_audio, tmp_path, export_format):
    before = consensus_by_hash()
    assert len(before) == 6 and all(label for label, _ in before.values())
    archive = tmp_path / f"export.{export_format}"
    audio = export_format in ("jams", "giantsteps")
    archive.write_bytes(b"".join(export_stream(export_format, ExportOptions(audio=audio))))

    empty_the_database()
    if audio:  # the zip carries the audio: load the library from it, under the exported names
        unpacked = tmp_path / "unpacked"
        zipfile.ZipFile(archive).extractall(unpacked)
        sources = sorted((unpacked / "audio").iterdir())
    else:
        sources = sorted(labeled_audio.values())
    for path in sources:
        assert track_import(path=path).created
    assert all(label == "" for label, _ in consensus_by_hash().values())

    with open(archive, "rb") as handle:
        response = token_client(admin_user).post(
            "/api/v1/imports", {"file": handle, "dry_run": "false"}, format="multipart"
        )
    assert response.status_code == 200, response.content
    report = response.json()
    assert report["format"] == export_format, report
    assert (report["imported"], report["unmatched"], report["invalid"], report["conflicts"]) == (
        6,
        0,
        0,
        0,
    ), report
    assert consensus_by_hash() == before


def test_dry_run_reports_and_changes_nothing(admin_user, db, tmp_path):
    tracks = [make_track(original_filename=f"song{i}.wav") for i in range(3)]
    label_track(tracks[0], "C major")
    label_track(tracks[1], "D major")
    csv_text = (
        "file_name,key\n"
        "song0.wav,C major\n"  # unchanged
        "song1.wav,A minor\n"  # conflicts with the imported D major
        "song2.wav,11B\n"  # new: A major
        "nowhere.wav,C major\n"  # unmatched
        "song2.wav,H major\n"  # invalid key
        "song2.wav,\n"  # no label
    )
    upload = io.BytesIO(csv_text.encode())
    upload.name = "labels.csv"
    response = token_client(admin_user).post(
        "/api/v1/imports", {"file": upload, "dry_run": "true"}, format="multipart"
    )
    report = response.json()
    assert report["dry_run"] is True
    counts = {
        name: report[name]
        for name in ("records", "imported", "unchanged", "conflicts", "unmatched", "invalid", "empty")
    }
    assert counts == {
        "records": 6,
        "imported": 1,
        "unchanged": 1,
        "conflicts": 1,
        "unmatched": 1,
        "invalid": 1,
        "empty": 1,
    }
    assert [p["where"] for p in report["problems"]] == ["line 3", "line 5", "line 6"]
    assert "H major" in report["problems"][2]["message"]
    tracks[2].refresh_from_db()
    assert tracks[2].consensus_label == "" and Annotation.objects.count() == 2


def test_import_labels_command_with_a_path_key_csv(db, tmp_path):
    originals = tmp_path / "music"
    renamed = synthetic(originals, "mix.wav", "G major", seed=41)
    track = track_import(path=renamed, original_name="different-name.wav").track
    (originals / "labels.csv").write_text("path,key\nmix.wav,9B\n")  # matched by hashing the local file

    out = io.StringIO()
    call_command(
        "import_labels", str(originals / "labels.csv"), "--dry-run", stdout=out, stderr=io.StringIO()
    )
    assert "would import 1" in out.getvalue() and "dry run" in out.getvalue()
    assert Track.objects.get(pk=track.pk).consensus_label == ""

    call_command("import_labels", str(originals / "labels.csv"), stdout=out, stderr=io.StringIO())
    track.refresh_from_db()
    assert track.consensus.mir_eval == "G major"


def test_import_labels_command_reads_a_folder_of_key_files(db, tmp_path):
    track = make_track(original_filename="10089.LOFI.mp3")
    folder = tmp_path / "giantsteps" / "annotations" / "key"
    folder.mkdir(parents=True)
    (folder / "10089.LOFI.key").write_text("Eb minor")
    (folder / "99999.LOFI.key").write_text("C major")
    err = io.StringIO()
    call_command("import_labels", str(tmp_path / "giantsteps"), stdout=io.StringIO(), stderr=err)
    track.refresh_from_db()
    assert track.consensus.mir_eval == "Eb minor"
    assert "99999.LOFI.key: no track is named '99999.lofi'" in err.getvalue()


def test_import_labels_command_fails_when_nothing_matches(db, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,key\nghost.wav,C major\n")
    with pytest.raises(CommandError, match="no record could be imported"):
        call_command("import_labels", str(labels), stdout=io.StringIO(), stderr=io.StringIO())


def test_export_dataset_command_writes_the_file(db, tmp_path):
    label_track(make_track(original_filename="a.wav"), "Db major")
    out = io.StringIO()
    call_command("export_dataset", "giantsteps", str(tmp_path / "out.zip"), "--no-progress", stdout=out)
    assert zipfile.ZipFile(tmp_path / "out.zip").read("keys/a.key") == b"Db major\n"
    assert "1 tracks exported" in out.getvalue()
    with pytest.raises(CommandError, match="zip"):
        call_command("export_dataset", "csv", str(tmp_path / "x.csv"), "--audio", stdout=out)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labels.csv", b"title,artist\nx,y\n", "header"),
        ("labels.csv", b"\xff\xfe\x00garbage", "UTF-8"),
        ("labels.zip", b"PK\x03\x04 not really a zip", "zip"),
        ("export.zip", None, "no .jams and no .key"),
    ],
)
def test_unreadable_label_files_are_a_400_on_file(admin_user, db, name, content, message):
    if content is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("readme.txt", "hello")
        content = buffer.getvalue()
    upload = io.BytesIO(content)
    upload.name = name
    response = token_client(admin_user).post("/api/v1/imports", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert error_fields(response) == ["file"] and message in response.json()["detail"]


def test_import_format_must_match_the_file(admin_user, db):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("keys/a.key", "C major")
    buffer.seek(0)
    buffer.name = "keys.zip"
    response = token_client(admin_user).post(
        "/api/v1/imports", {"file": buffer, "format": "jams"}, format="multipart"
    )
    assert response.status_code == 400 and "giantsteps" in response.json()["detail"]
    buffer.seek(0)
    bad = token_client(admin_user).post(
        "/api/v1/imports", {"file": buffer, "format": "xml"}, format="multipart"
    )
    assert error_fields(bad) == ["format"]


def test_jsonl_lines_that_are_not_objects_are_reported(admin_user, db):
    track = make_track()
    upload = io.BytesIO(
        f'{{"content_hash": "{track.content_hash}", "key": "5A"}}\n[1, 2]\n{{"content_hash": "zz", "key": "C"}}\n'.encode()
    )
    upload.name = "labels.jsonl"
    report = token_client(admin_user).post("/api/v1/imports", {"file": upload}, format="multipart").json()
    assert (report["imported"], report["invalid"], report["unmatched"]) == (1, 1, 1)
    track.refresh_from_db()
    assert track.consensus.mir_eval == "C minor"


def test_non_utf8_jsonl_is_a_400_not_a_500(admin_user, db):
    """Found by the fuzz test: a binary file named .jsonl crashed the reader."""
    upload = io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    upload.name = "labels.jsonl"
    response = token_client(admin_user).post("/api/v1/imports", {"file": upload}, format="multipart")
    assert response.status_code == 400 and "UTF-8" in response.json()["detail"]


def test_odd_jams_documents_are_reported_per_file(admin_user, db):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.jams", "[1, 2, 3]")
        archive.writestr("b.jams", '{"file_metadata": {"identifiers": [1]}, "annotations": "x"}')
        archive.writestr(
            "c.jams", '{"annotations": [{"namespace": "key_mode", "data": [{"value": "H:major"}]}]}'
        )
    buffer.seek(0)
    buffer.name = "odd.zip"
    report = token_client(admin_user).post("/api/v1/imports", {"file": buffer}, format="multipart").json()
    assert report["invalid"] == 3 and [p["where"] for p in report["problems"]] == [
        "a.jams",
        "b.jams",
        "c.jams",
    ]
