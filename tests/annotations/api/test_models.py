"""Model versions: metrics, confusion and learning curve for everyone; activation and training for admins."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotations.models import ModelVersion

from .helpers import label_track, make_track, token_client


@pytest.fixture
def versions(active_model):
    confusion = [[0] * 24 for _ in range(24)]
    confusion[0][0], confusion[0][7] = 5, 2
    newer = ModelVersion.objects.create(
        name="v2",
        backbone="pitch_class",
        status=ModelVersion.Status.READY,
        n_training_labels=80,
        trained_at=timezone.now(),
        metrics={
            "weighted": 0.8,
            "weighted_ci95": [0.6, 0.94],
            "correct": 0.7,
            "n": 7,
            "ece": 0.04,
            "confusion": confusion,
            "extra": 1,
        },
    )
    failed = ModelVersion.objects.create(
        name="v3", backbone="pitch_class", status=ModelVersion.Status.FAILED, error="no labels"
    )
    return {"v1": active_model, "v2": newer, "v3": failed}


def test_list_has_summary_metrics_newest_first(annotator, versions):
    rows = token_client(annotator).get("/api/v1/models").json()["results"]
    assert [r["name"] for r in rows][:3] == ["v3", "v2", "v1"]  # then the shipped default, if installed
    assert rows[1]["metrics"] == {
        "weighted": 0.8,
        "weighted_ci95": [0.6, 0.94],
        "correct": 0.7,
        "n": 7,
        "ece": 0.04,
    }
    assert rows[0]["error"] == "no labels" and rows[2]["is_active"] is True


def test_detail_has_confusion_and_learning_curve(annotator, versions):
    body = token_client(annotator).get(f"/api/v1/models/{versions['v2'].pk}").json()
    assert body["confusion"]["labels"][7] == "G major"
    assert body["confusion"]["matrix"][0][7] == 2
    assert [(p["name"], p["n_training_labels"], p["weighted"]) for p in body["learning_curve"]] == [
        ("v1", 40, 0.71),
        ("v2", 80, 0.8),
    ]
    assert token_client(annotator).get(f"/api/v1/models/{versions['v3'].pk}").json()["confusion"] is None


def test_only_admins_activate_and_only_ready_versions(
    annotator, admin_user, versions, django_capture_on_commit_callbacks
):
    v2 = versions["v2"]
    assert token_client(annotator).post(f"/api/v1/models/{v2.pk}/activate").status_code == 403
    admin = token_client(admin_user)
    with django_capture_on_commit_callbacks(execute=False):
        response = admin.post(f"/api/v1/models/{v2.pk}/activate")
    assert response.status_code == 200 and response.json()["is_active"] is True
    assert list(ModelVersion.objects.filter(is_active=True)) == [v2]
    refused = admin.post(f"/api/v1/models/{versions['v3'].pk}/activate")
    assert refused.status_code == 409 and "not ready" in refused.json()["detail"]
    assert admin.post("/api/v1/models/424242/activate").status_code == 404


def test_training_request_is_admin_only_and_never_doubles(
    annotator, admin_user, db, django_capture_on_commit_callbacks
):
    assert token_client(annotator).post("/api/v1/models/training", {}, format="json").status_code == 403
    admin = token_client(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = admin.post("/api/v1/models/training", {"reason": "new labels"}, format="json")
        second = admin.post("/api/v1/models/training", {}, format="json")
    assert first.status_code == 202 and first.json()["created"] is True
    assert second.status_code == 200 and second.json()["created"] is False
    assert second.json()["version"]["id"] == first.json()["version"]["id"]
    assert len(callbacks) == 1  # one training task queued

    status = token_client(annotator).get("/api/v1/models/training").json()
    assert status["in_progress"] is True and status["version"]["status"] == "queued"


def test_training_status_counts_new_labels(annotator, db):
    label_track(make_track(), "C major")
    body = token_client(annotator).get("/api/v1/models/training").json()
    assert body == {
        "in_progress": False,
        "version": None,
        "labels_since_last_training": 1,
        "retrain_min_new_labels": body["retrain_min_new_labels"],
    }


def test_pretraining_request_is_admin_only_never_doubles_and_reports_what_it_measured(
    annotator, admin_user, db, django_capture_on_commit_callbacks
):
    from annotations.models import PretrainingRun

    url = "/api/v1/models/pretraining"
    assert token_client(annotator).get(url).json() == {"in_progress": False, "run": None}
    assert token_client(annotator).post(url, {}, format="json").status_code == 403
    admin = token_client(admin_user)
    refused = admin.post(url, {"steps": 0}, format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "steps"
    assert admin.post(url, {"steps": "many"}, format="json").status_code == 400
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = admin.post(url, {"steps": 40}, format="json")
        second = admin.post(url, {}, format="json")
    assert first.status_code == 202 and first.json()["created"] is True
    assert first.json()["run"]["steps_total"] == 40 and first.json()["run"]["status"] == "queued"
    assert second.status_code == 200 and second.json()["created"] is False
    assert second.json()["run"]["id"] == first.json()["run"]["id"]
    assert len(callbacks) == 1  # one pretraining task queued
    status = token_client(annotator).get(url).json()
    assert status["in_progress"] is True and status["run"]["id"] == first.json()["run"]["id"]

    # Finished: the held-out comparison the worker recorded is what a client reads.
    held_out = {
        "n": 12,
        "before": {"weighted": 0.6, "weighted_ci95": [0.4, 0.8]},
        "after": {"weighted": 0.7, "weighted_ci95": [0.5, 0.9]},
        "gain": {"mean": 0.1, "ci95": [0.01, 0.2]},
    }
    PretrainingRun.objects.filter(pk=first.json()["run"]["id"]).update(
        status=PretrainingRun.Status.READY,
        in_progress=None,
        progress=1.0,
        steps_done=40,
        held_out=held_out,
        attempts=2,
        resumed_from=30,  # its first worker died after the checkpoint at step 30
    )
    status = token_client(annotator).get(url).json()
    assert status["in_progress"] is False and status["run"]["status"] == "ready"
    assert status["run"]["held_out"] == held_out
    assert status["run"]["attempts"] == 2 and status["run"]["resumed_from"] == 30
