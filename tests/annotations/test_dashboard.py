"""The admin dashboard: staff only, statistics, queue strategy, training requests and status, activation,
the CSV export, and the selectors behind them."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from annotations import selectors
from annotations.models import Annotation, ModelVersion, QueueSettings, Track
from annotations.pages.dashboard import api_export_links
from annotations.pages.keys import circle_of_fifths
from annotations.selectors import dashboard as dashboard_reads
from annotations.services.labels import LabelValue, annotation_import
from annotations.services.model_versions import model_training_request
from annotations.services.tracks import track_import

DASHBOARD = reverse("annotations:dashboard")
TRAIN = reverse("annotations:dashboard_training_request")
STATUS = reverse("annotations:dashboard_training_status")


@pytest.fixture
def ada(client, admin_user):
    assert client.login(username="ada", password="ada-password-1")
    return client


@pytest.fixture
def labeled(good_files, roles, annotator) -> list[Track]:
    """Three tracks: two with key labels (one from an annotator), one marked no-key."""
    tracks = [track_import(path=path).track for path in good_files]
    annotation_import(track=tracks[0], label=LabelValue.parse("A minor"))
    annotation_import(track=tracks[1], label=LabelValue.parse("no_key"))
    Annotation.objects.create(
        track=tracks[2], annotator=annotator, label="key", key_index=3, time_spent_s=12.0
    )
    from annotations.services.labels import track_consensus_refresh

    track_consensus_refresh(track=tracks[2])
    return tracks


def test_dashboard_is_for_staff_only(client, annotator):
    client.login(username="anna", password="anna-password-1")
    response = client.get(DASHBOARD)
    assert response.status_code == 403
    assert "for admins only" in response.content.decode()
    assert client.post(TRAIN).status_code == 403
    assert client.get(STATUS).status_code == 403


def test_dashboard_shows_tracks_labels_throughput_and_versions(ada, labeled):
    page = ada.get(DASHBOARD)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-status="labeled"' in html
    assert '<th scope="row">anna</th>' in html
    charts = page.context["charts"]
    assert charts["distribution"]["keys"][21] == 1  # A minor
    assert charts["distribution"]["keys"][3] == 1
    assert charts["distribution"]["no_key"]["no_key"] == 1
    for script in ("common.js", "charts.js", "dashboard.js"):
        assert f"keyweb/{script}" in html
    assert "Retrain now" in html


def test_selectors_count_what_the_dashboard_shows(labeled, annotator):
    table = dashboard_reads.tracks_by_status_and_split()
    assert table["total"] == 3 and table["labeled_total"] == 3
    assert sum(row["total"] for row in table["rows"]) == 3
    assert next(row for row in table["rows"] if row["status"] == "pending")["total"] == 3
    throughput = dashboard_reads.annotator_throughput()
    assert throughput == [{"username": "anna", "today": 1, "week": 1, "total": 1, "seconds_per_track": 12.0}]
    assert len(circle_of_fifths()) == 12
    assert circle_of_fifths()[1] == {"major": 7, "minor": 16}  # G major and E minor


def test_training_request_answers_json_and_never_queues_two(ada, admin_user):
    first = ada.post(TRAIN, HTTP_ACCEPT="application/json")
    assert first.status_code == 201
    body = first.json()
    assert body["created"] is True and body["status"] == "queued"
    second = ada.post(TRAIN, HTTP_ACCEPT="application/json")
    assert second.status_code == 200 and second.json()["created"] is False
    assert "already queued" in second.json()["message"]
    assert ModelVersion.objects.filter(in_progress=True).count() == 1
    status = ada.get(STATUS).json()
    assert status["version"]["id"] == body["version"]["id"]
    assert status["status"] == "queued" and status["progress"] == 0.0


def test_training_status_reports_a_failure_with_its_message(ada, admin_user):
    version, _ = model_training_request(user=admin_user)
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.FAILED,
        in_progress=None,
        error="ValueError: there are no labeled training tracks yet",
    )
    status = ada.get(STATUS).json()
    assert status["status"] == "failed"
    assert "no labeled training tracks" in status["error"]
    assert "no labeled training tracks" in ada.get(DASHBOARD).content.decode()


def test_training_request_without_javascript_redirects_with_a_message(ada, admin_user):
    response = ada.post(TRAIN, follow=True)
    assert response.redirect_chain[-1][0] == DASHBOARD
    assert "was queued" in response.content.decode()


def test_activating_a_version(ada, admin_user):
    ready = ModelVersion.objects.create(
        name="v7", backbone="pitch_class", status="ready", metrics={"weighted": 0.7}
    )
    response = ada.post(reverse("annotations:dashboard_version_activate", args=[ready.pk]))
    assert response.status_code == 302
    ready.refresh_from_db()
    assert ready.is_active
    assert ModelVersion.objects.filter(is_active=True).count() == 1


def test_activating_a_version_that_is_not_ready_is_a_400_that_says_why(ada, admin_user):
    failed = ModelVersion.objects.create(name="v8", backbone="pitch_class", status="failed")
    response = ada.post(reverse("annotations:dashboard_version_activate", args=[failed.pk]))
    assert response.status_code == 400
    assert "v8 cannot be activated" in response.content.decode()
    assert not ModelVersion.objects.get(pk=failed.pk).is_active
    assert ada.post(reverse("annotations:dashboard_version_activate", args=[99999])).status_code == 404


def test_choosing_the_queue_strategy(ada, admin_user):
    response = ada.post(reverse("annotations:dashboard_strategy"), {"strategy": "margin"})
    assert response.status_code == 302
    assert QueueSettings.objects.get(pk=1).strategy == "margin"
    refused = ada.post(reverse("annotations:dashboard_strategy"), {"strategy": "vibes"})
    assert refused.status_code == 400
    assert "unknown strategy" in refused.content.decode()
    assert QueueSettings.objects.get(pk=1).strategy == "margin"


def test_csv_export_of_labeled_tracks(ada, labeled):
    response = ada.get(reverse("annotations:export_labels_csv"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="keyweb-labels-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {(row["label"], row["key"], row["camelot"]) for row in rows} == {
        ("key", "A minor", "8A"),
        ("no_key", "", ""),
        ("key", "Eb major", "5B"),
    }


def test_learning_curve_and_confusion_come_from_version_metrics(ada):
    confusion = [[0] * 24 for _ in range(24)]
    confusion[0][7] = 2
    versions = [
        ModelVersion.objects.create(
            name=f"v{n}",
            backbone="pitch_class",
            status="ready",
            n_training_labels=10 * n,
            metrics={
                "weighted": 0.5 + n / 10,
                "confusion": confusion,
                "ece": 0.1,
                "validation": {"cut_by_budget": n == 2},
                **({"weighted_ci95": [0.52, 0.71]} if n == 1 else {}),
            },
        )
        for n in (1, 2)
    ]
    ModelVersion.objects.create(name="v3", backbone="pitch_class", status="failed", error="boom")
    curve = selectors.model_learning_curve()
    assert [(p["n_training_labels"], p["weighted"]) for p in curve] == [(10, 0.6), (20, 0.7)]
    assert dashboard_reads.model_version_confusion(versions[0])[0][7] == 2
    summary = dashboard_reads.model_version_summary(versions[1])
    assert summary["relations"]["correct"] is None and summary["ece"] == 0.1
    assert summary["cut_by_budget"] is True
    assert dashboard_reads.model_version_summary(versions[0])["cut_by_budget"] is False
    # The dashboard tells the admin which version the budget cut short, and only that one.
    html = ada.get(DASHBOARD).content.decode()
    assert html.count('data-testid="cut-by-budget"') == 1
    # The interval shows where the metrics have one (versions trained before it was reported have none).
    assert summary["weighted_ci95"] is None
    assert dashboard_reads.model_version_summary(versions[0])["weighted_ci95"] == [0.52, 0.71]
    assert html.count('data-testid="weighted-ci"') == 1 and "0.52–0.71" in html
    assert json.dumps(summary)  # the status endpoint serialises it


def test_non_staff_reviewer_cannot_open_the_dashboard(client, roles):
    user = User.objects.create_user(username="rita", password="rita-password-1")
    user.groups.add(roles["reviewer"])
    client.login(username="rita", password="rita-password-1")
    assert client.get(DASHBOARD).status_code == 403


def test_training_status_answers_an_expired_session_in_json(client, db):
    response = client.get(STATUS)
    assert response.status_code == 401 and "log in" in response.json()["error"]
    assert client.get(DASHBOARD).status_code == 302  # pages still send people to the login form


def test_dashboard_links_the_api_exports_when_the_api_is_installed(ada, admin_user):
    links = api_export_links()
    assert [url for _, url in links] == [
        f"/api/v1/exports/{f}" for f in ("csv", "jsonl", "jams", "giantsteps")
    ]
    html = ada.get(DASHBOARD).content.decode()
    for text, url in links:
        assert f'href="{url}"' in html and text in html
    assert reverse("annotations:export_labels_csv") in html


def test_dashboard_shows_what_a_pretraining_bought_on_held_out_tracks(ada):
    from annotations.models import PretrainingRun

    def side(weighted: float) -> dict:
        return {"weighted": weighted, "weighted_ci95": [weighted - 0.05, weighted + 0.05], "n": 124}

    held_out = {
        "n": 124,
        "before": side(0.677),
        "after": side(0.767),
        "gain": {"mean": 0.09, "ci95": [0.016, 0.16]},
    }
    PretrainingRun.objects.create(
        status=PretrainingRun.Status.READY, progress=1.0, steps_done=400, steps_total=400, held_out=held_out
    )
    html = ada.get(DASHBOARD).content.decode()
    assert 'data-testid="pretraining-held-out"' in html
    assert "on 124 held-out labelled tracks" in html
    assert '<span class="before">0.677</span> before, <span class="after">0.767</span> after' in html
    assert '<span class="gain">+0.090</span> (95 % interval +0.016 to +0.160)' in html
    # From random weights there is no "before"; with no labelled held-out track there is nothing to show.
    PretrainingRun.objects.create(
        status=PretrainingRun.Status.READY, held_out={**held_out, "before": None, "gain": None}
    )
    html = ada.get(DASHBOARD).content.decode()
    assert 'weighted <span class="after">0.767</span> (it started from random weights)' in html
    PretrainingRun.objects.create(status=PretrainingRun.Status.READY, held_out={"n": 0, "error": "disk full"})
    assert (
        '(<span class="error">disk full</span>); the checkpoint is usable'
        in ada.get(DASHBOARD).content.decode()
    )
    PretrainingRun.objects.create(status=PretrainingRun.Status.READY, held_out={"n": 0})
    assert 'data-testid="pretraining-held-out"' not in ada.get(DASHBOARD).content.decode()


def test_dashboard_says_when_a_pretraining_continued_after_its_worker_stopped(ada):
    from annotations.models import PretrainingRun

    run = PretrainingRun.objects.create(
        status=PretrainingRun.Status.RUNNING, in_progress=True, steps_done=120, steps_total=600
    )
    assert "after a worker stopped" not in ada.get(DASHBOARD).content.decode()  # from the start: nothing said
    PretrainingRun.objects.filter(pk=run.pk).update(resumed_from=100, attempts=2)
    html = ada.get(DASHBOARD).content.decode()
    assert "120 / 600 steps\n    (continued from its checkpoint at step 100 after a worker stopped)" in html
