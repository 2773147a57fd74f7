"""Versions are compared only on the same held-out tracks: the API says where a score was measured and,
for a trained version, how it and the then-active one scored on the same tracks; the dashboard shows it."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from annotations.models import ModelVersion

from .helpers import token_client


def test_versions_say_where_they_were_measured_and_what_they_were_compared_on(annotator, admin_user, db):
    ModelVersion.objects.update(is_active=False)
    shipped = ModelVersion.objects.create(
        name="shipped",
        backbone="pitch_class",
        status="ready",
        is_default=True,
        metrics={"weighted": 0.8, "n": 240},
    )
    trained = ModelVersion.objects.create(
        name="v2",
        backbone="pitch_class",
        status="ready",
        metrics={
            "weighted": 0.71,
            "n": 11,
            "active_weighted_same_test": 0.64,
            "activation": {"n": 11, "activate": True, "compared_with": "shipped"},
        },
    )
    untrained = ModelVersion.objects.create(name="v3", backbone="pitch_class", status="queued")
    rows = {row["id"]: row for row in token_client(annotator).get("/api/v1/models").json()["results"]}
    assert rows[shipped.pk]["measured_on"] == "synthetic" and rows[shipped.pk]["comparison"] is None
    assert rows[trained.pk]["measured_on"] == "held_out"
    assert rows[trained.pk]["comparison"] == {
        "with_version": "shipped",
        "n": 11,
        "weighted": 0.71,
        "other_weighted": 0.64,
    }
    assert rows[untrained.pk]["measured_on"] is None and rows[untrained.pk]["comparison"] is None

    browser = Client()
    browser.login(username="ada", password="ada-password-1")
    page = browser.get(reverse("annotations:dashboard")).content.decode()
    assert "measured on 240 synthetic tracks, not on yours" in page
    assert ">240 synthetic<" in page and ">11<" in page
    assert f'data-comparison-for="{trained.pk}"' in page
