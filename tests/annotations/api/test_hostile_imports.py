"""Hostile label files: a zip bomb is refused from the archive's directory without decompressing it, members
and lines are read in bounded pieces, and every malformed file is a 400 (or a reported problem), never a 500."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Annotation

from .helpers import error_fields, make_track, token_client

BOMB_MB = 400


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """A ~0.4 MB zip holding a 400 MB `.key` member (zeros), written in constant memory."""
    path = tmp_path_factory.mktemp("bomb") / "labels.zip"
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("keys/fine.key", "C major\n")
        with archive.open("keys/bomb.key", "w", force_zip64=True) as member:
            for _ in range(BOMB_MB):
                member.write(zeros)
    return path


def _post(client, content: bytes | Path, name: str):
    upload = io.BytesIO(content.read_bytes() if isinstance(content, Path) else content)
    upload.name = name
    return client.post("/api/v1/imports", {"file": upload}, format="multipart")


def test_zip_bomb_is_refused_naming_the_member_and_limit_without_memory_growth(admin_user, zip_bomb):
    assert zip_bomb.stat().st_size < 1024 * 1024
    client = token_client(admin_user)
    tracemalloc.start()
    try:
        response = _post(client, zip_bomb, "labels.zip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"\nzip bomb ({zip_bomb.stat().st_size / 1e6:.2f} MB → {BOMB_MB} MB): peak {peak / 1e6:.1f} MB traced"
    )
    assert response.status_code == 400, response.content[:300]
    detail = response.json()["detail"]
    assert "keys/bomb.key" in detail and "4 MB" in detail and "KEYWEB_IMPORT_MAX_MEMBER_MB" in detail
    assert error_fields(response) == ["file"]
    assert peak < 20 * 1024 * 1024  # the upload itself is ~0.4 MB; the member is never unpacked
    assert not Annotation.objects.exists()


def test_zip_bomb_through_the_management_command(db, zip_bomb):
    with pytest.raises(CommandError, match="keys/bomb.key"):
        call_command("import_labels", str(zip_bomb), stdout=io.StringIO(), stderr=io.StringIO())


def test_members_together_over_the_total_limit_are_refused(admin_user, settings):
    settings.KEYWEB = {**settings.KEYWEB, "IMPORT_MAX_TOTAL_BYTES": 1000}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number in range(3):
            archive.writestr(f"keys/{number}.key", "C major\n" + " " * 400)
    response = _post(token_client(admin_user), buffer.getvalue(), "keys.zip")
    assert response.status_code == 400 and "KEYWEB_IMPORT_MAX_TOTAL_MB" in response.json()["detail"]


def test_a_lone_jams_file_over_the_member_limit_is_refused(admin_user, settings):
    settings.KEYWEB = {**settings.KEYWEB, "IMPORT_MAX_MEMBER_BYTES": 100}
    response = _post(token_client(admin_user), b'{"annotations": []}' + b" " * 200, "big.jams")
    assert response.status_code == 400 and "big.jams" in response.json()["detail"]


def test_a_line_without_end_is_refused_not_held_in_memory(admin_user, monkeypatch):
    from annotations.services import label_imports

    monkeypatch.setattr(label_imports, "MAX_LINE_CHARS", 1000)
    response = _post(token_client(admin_user), b"path,key\n" + b"x" * 5000, "labels.csv")
    assert response.status_code == 400 and "line 2 is longer than 1000" in response.json()["detail"]


def _zip(members: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _truncated_zip() -> bytes:
    """A zip whose directory is intact but whose member data was cut short."""
    whole = _zip({"keys/a.key": "C major\n" * 5000})
    directory = whole.index(b"PK\x01\x02")
    return whole[:60] + b"\x00" * (directory - 60) + whole[directory:]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labels.csv", b"", "empty"),
        ("labels.csv", b"\n\n", "header"),
        ("labels.csv", b"path,key\na.wav,C major\n\xff\xfe broken,x\n", "UTF-8"),
        ("labels.csv", b"\xff\xfepath,key\n", "UTF-8"),
        ("labels.zip", _zip({"keys/a.key": "C"})[:-30], "zip"),
        ("labels.zip", b"PK\x03\x04" + b"\x00" * 100, "zip"),
    ],
)
def test_malformed_label_files_are_a_400_in_plain_words(admin_user, name, content, message):
    response = _post(token_client(admin_user), content, name)
    assert response.status_code == 400, response.content[:300]
    assert error_fields(response) == ["file"] and message in response.json()["detail"]
    assert "Traceback" not in response.json()["detail"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("labels.jsonl", b'{"key": 5, "file_name": "a.wav"}\n'),
        ("labels.jsonl", b'{"key": "C major", "file_name": ["a.wav"]}\n'),
        ("labels.jsonl", b'{"key": "C major", "content_hash": {"x": 1}}\n'),
        ("labels.jsonl", b"[" * 100_000 + b"\n"),
        ("labels.jsonl", b'"just a string"\n'),
        ("one.jams", b'{"annotations": [{"namespace": "key_mode", "sandbox": {"keyweb_label": 5}}]}'),
        ("one.jams", b'{"file_metadata": {"identifiers": {"file_name": 7}}, "annotations": []}'),
        ("one.jams", b'{"annotations": [{"namespace": "key_mode", "annotation_metadata": "x"}]}'),
        ("one.jams", b'{"annotations": [{"namespace": "key_mode", "data": [{"value": 3}]}]}'),
        ("one.jams", b"[" * 100_000),
        ("one.jams", b"\xff\xfe\x00"),
        ("labels.zip", _zip({"a.jams": '{"annotations": {"namespace": 1}}', "b.key": b"\xff\xfe"})),
    ],
)
def test_records_of_the_wrong_type_are_reported_not_a_500(admin_user, name, content):
    response = _post(token_client(admin_user), content, name)
    assert response.status_code == 200, response.content[:300]
    report = response.json()
    assert report["imported"] == 0 and report["invalid"] + report["empty"] + report["unmatched"] >= 1
    assert not Annotation.objects.exists()


def test_a_member_cut_short_is_reported_by_name(admin_user):
    response = _post(token_client(admin_user), _truncated_zip(), "labels.zip")
    assert response.status_code in (200, 400), response.content[:300]
    body = response.json()
    text = body.get("detail", "") + " ".join(p["where"] for p in body.get("problems", []))
    assert "keys/a.key" in text or "zip" in text
    assert not Annotation.objects.exists()


def test_a_file_refused_halfway_imports_nothing(admin_user, monkeypatch):
    from annotations.services import label_imports

    monkeypatch.setattr(label_imports, "MAX_LINE_CHARS", 100)
    track = make_track(original_filename="first.wav")
    content = b"path,key\nfirst.wav,C major\n" + b"x" * 500 + b"\n"
    response = _post(token_client(admin_user), content, "labels.csv")
    assert response.status_code == 400
    track.refresh_from_db()
    assert track.consensus_label == "" and not Annotation.objects.exists()
