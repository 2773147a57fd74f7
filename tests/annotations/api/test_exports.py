"""Exports: every format's content, filters, audio with key tags written into copies, streaming zips."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from annotations.models import Track
from annotations.services.exports import ExportOptions, ZipStream, export_stream
from annotations.services.labels import LabelValue, annotation_import
from annotations.services.tracks import track_import
from tests.factories import track_fields

from .helpers import annotate, error_fields, label_track, make_track, predict, synthetic, token_client


def body_of(response) -> bytes:
    assert response.status_code == 200, response.content if not response.streaming else ""
    return b"".join(response.streaming_content)


@pytest.fixture
def labeled(active_model, annotator):
    c = label_track(make_track(title="Morning", original_filename="morning.wav"), "C major")
    annotate(make_track(), annotator, "D major")  # labeled by an annotator
    none = label_track(make_track(original_filename="drums.wav", split="test"), None, label="no_key")
    unlabeled = make_track(original_filename="open.wav")
    predict(c, active_model, "C major", 0.875)
    predict(unlabeled, active_model, "A minor", 0.5)
    return {"c": c, "none": none, "unlabeled": unlabeled}


def test_csv_has_labels_hashes_and_predictions(admin_user, labeled):
    response = token_client(admin_user).get("/api/v1/exports/csv")
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="keyweb-labels.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body_of(response).decode())))
    assert len(rows) == 3  # consensus only by default
    c = next(r for r in rows if r["file_name"] == "morning.wav")
    assert (c["key"], c["camelot"], c["label"], c["split"]) == ("C major", "8B", "key", "pool")
    assert (c["predicted_key"], c["predicted_confidence"], c["model_version"]) == ("C major", "0.875", "v1")
    assert c["content_hash"] == labeled["c"].content_hash and "annotations" not in c
    none = next(r for r in rows if r["file_name"] == "drums.wav")
    assert (none["label"], none["key"], none["predicted_key"]) == ("no_key", "", "")


def test_filters_and_annotations(admin_user, labeled):
    client = token_client(admin_user)
    everything = list(
        csv.DictReader(io.StringIO(body_of(client.get("/api/v1/exports/csv?consensus_only=false")).decode()))
    )
    assert len(everything) == 4
    tests = list(csv.DictReader(io.StringIO(body_of(client.get("/api/v1/exports/csv?split=test")).decode())))
    assert [r["file_name"] for r in tests] == ["drums.wav"]
    later = (timezone.now() + timedelta(days=1)).isoformat()
    assert (
        body_of(client.get("/api/v1/exports/csv", {"since": later})).decode().count("\n") == 1
    )  # header only

    lines = body_of(client.get("/api/v1/exports/jsonl?annotations=true")).decode().splitlines()
    records = [json.loads(line) for line in lines]
    annotated = next(r for r in records if r["key"] == "D major")
    assert annotated["annotations"][0]["annotator"] == "anna"
    assert annotated["annotations"][0]["source"] == "annotator"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("split=train", "split"),
        ("since=yesterday", "since"),
        ("since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z", "until"),
        ("consensus_only=perhaps", "consensus_only"),
        ("audio=true", "audio"),
        ("write_tags=true", "write_tags"),
    ],
)
def test_bad_export_parameters_are_named(admin_user, db, query, field):
    response = token_client(admin_user).get(f"/api/v1/exports/csv?{query}")
    assert response.status_code == 400 and error_fields(response) == [field]


def test_unknown_export_format_is_named(admin_user, db):
    response = token_client(admin_user).get("/api/v1/exports/xlsx")
    assert response.status_code == 400 and error_fields(response) == ["export_format"]


@pytest.fixture
def audio_library(tmp_path):
    """Real files in three formats, labeled; returns {format: (track, original bytes' sha256)}."""
    files = {
        "mp3": ("bass line.mp3", "Db major"),
        "flac": ("pads.flac", "F# minor"),
        "wav": ("keys.wav", "G major"),
        "ogg": ("choir.ogg", "Bb minor"),
    }
    library = {}
    for seed, (audio_format, (name, key)) in enumerate(files.items(), start=21):
        track = track_import(path=synthetic(tmp_path / "in", name, key, seed=seed)).track
        annotation_import(track=track, label=LabelValue.parse(key))
        stored = Path(settings.MEDIA_ROOT) / track.audio.name
        library[audio_format] = (track, hashlib.sha256(stored.read_bytes()).hexdigest(), stored)
    return library


def test_jams_zip_with_tagged_audio_copies(admin_user, audio_library, tmp_path):
    import mutagen
    from mutagen.id3 import ID3

    response = token_client(admin_user).get("/api/v1/exports/jams?audio=true&write_tags=true")
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(body_of(response)))
    assert archive.testzip() is None
    names = set(archive.namelist())
    assert {"jams/bass line.jams", "jams/pads.jams", "jams/keys.jams"} <= names
    assert {"audio/bass line.mp3", "audio/pads.flac", "audio/keys.wav"} <= names

    document = json.loads(archive.read("jams/pads.jams"))
    key_mode = document["annotations"][0]
    assert key_mode["namespace"] == "key_mode" and key_mode["data"][0]["value"] == "F#:minor"
    assert document["file_metadata"]["identifiers"]["content_hash"] == audio_library["flac"][0].content_hash

    (tmp_path / "out").mkdir()
    archive.extractall(tmp_path / "out")
    assert ID3(tmp_path / "out/audio/bass line.mp3")["TKEY"].text == ["Db"]
    assert mutagen.File(tmp_path / "out/audio/pads.flac")["INITIALKEY"] == ["F#m"]
    assert mutagen.File(tmp_path / "out/audio/keys.wav").tags["TKEY"].text == ["G"]
    assert mutagen.File(tmp_path / "out/audio/choir.ogg")["INITIALKEY"] == ["Bbm"]
    for _, original_hash, stored in audio_library.values():  # the library's files are untouched
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == original_hash


def test_giantsteps_zip_has_one_key_file_per_track(admin_user, audio_library):
    archive = zipfile.ZipFile(
        io.BytesIO(body_of(token_client(admin_user).get("/api/v1/exports/giantsteps?audio=true")))
    )
    assert archive.read("keys/bass line.key") == b"Db major\n"
    assert archive.read("keys/pads.key") == b"F# minor\n"
    original = audio_library["wav"][2].read_bytes()
    assert archive.read("audio/keys.wav") == original  # no write_tags: the bytes as stored


def test_missing_audio_is_reported_inside_the_zip(admin_user, audio_library):
    audio_library["wav"][2].unlink()
    archive = zipfile.ZipFile(
        io.BytesIO(body_of(token_client(admin_user).get("/api/v1/exports/giantsteps?audio=true")))
    )
    assert "audio/keys.wav" not in archive.namelist()
    assert "keys.wav" in archive.read("PROBLEMS.txt").decode()


def test_tracks_sharing_a_stem_get_distinct_names(admin_user, db):
    first = label_track(make_track(original_filename="intro.wav"), "C major")
    second = label_track(make_track(original_filename="intro.mp3"), "D major")
    archive = zipfile.ZipFile(io.BytesIO(body_of(token_client(admin_user).get("/api/v1/exports/giantsteps"))))
    assert sorted(archive.namelist()) == sorted(
        ["keys/intro.key", f"keys/intro.{second.content_hash[:8]}.key"]
    )
    assert first.pk < second.pk


def test_zip64_records_are_readable(monkeypatch):
    """Lowered thresholds make the writer (zipfile) emit the ZIP64 offsets and end records a >4 GiB
    export needs."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 3)
    archive = ZipStream()
    payload = b"".join(
        [
            *(b for i in range(5) for b in archive.entry(f"f{i}.txt", [f"entry {i} ".encode() * 30])),
            *archive.close(),
        ]
    )
    reader = zipfile.ZipFile(io.BytesIO(payload))
    assert reader.testzip() is None
    assert [reader.read(f"f{i}.txt") for i in range(5)] == [f"entry {i} ".encode() * 30 for i in range(5)]
    assert b"PK\x06\x06" in payload and b"PK\x06\x07" in payload  # ZIP64 end record and locator


def _peak_bytes(produce) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        assert sum(len(chunk) for chunk in produce()) > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_csv_export_memory_does_not_grow_with_the_number_of_tracks(db):
    """Peak memory while streaming 5,000 tracks is about that of 2,000: rows are not collected. (Below two
    fetch chunks of 1,000 rows the peak still grows, so the small case starts above that.)"""
    now = timezone.now()

    def bulk(start: int, count: int) -> None:
        Track.objects.bulk_create(
            Track(
                **track_fields(
                    audio=f"audio/x/{i}.wav",
                    original_filename=f"song {i}.wav",
                    content_hash=f"{i:064x}",
                    size_bytes=1,
                    title=f"Song {i}",
                    duration_s=180.0,
                    sample_rate=44100,
                    channels=2,
                    consensus_label="key",
                    consensus_key=i % 24,
                    consensus_at=now,
                )
            )
            for i in range(start, start + count)
        )

    bulk(10_000, 2_000)
    small = _peak_bytes(lambda: export_stream("csv", ExportOptions()))
    bulk(20_000, 3_000)
    large = _peak_bytes(lambda: export_stream("csv", ExportOptions()))
    assert large < small * 1.1 + 100_000, (small, large)


def test_zip_stream_memory_per_entry_is_small():
    """Entries are streamed; what stays in memory per entry is zipfile's central-directory record (a few
    hundred bytes), never the entry's data: 16,000 more entries of 4 KiB cost well under 1 KiB each."""

    def archive(entries: int):
        def produce():
            stream = ZipStream()
            for i in range(entries):
                yield from stream.entry(f"keys/track number {i:06d}.key", [b"Db major\n" * 455])
            yield from stream.close()

        return produce

    small, large = _peak_bytes(archive(4_000)), _peak_bytes(archive(20_000))
    assert (large - small) / 16_000 < 1024, (small, large)
