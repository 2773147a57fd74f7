"""Predicting a loose file: 202 at once, the worker fills in the key, the file goes unless kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from annotations.models import PredictionJob, Track
from annotations.worker.prediction_jobs import prediction_job_run
from ml.keys import Key
from tests.conftest import wait_for

from .helpers import error_fields, synthetic, token_client


def post_file(client, path: Path, **extra):
    with open(path, "rb") as handle:
        return client.post("/api/v1/predictions", {"file": handle, **extra}, format="multipart")


def test_upload_answers_202_with_a_job_and_the_worker_predicts(
    annotator, trained_head, tmp_path, django_capture_on_commit_callbacks
):
    client = token_client(annotator)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = post_file(client, synthetic(tmp_path, "loose.wav", "E minor", seed=11))
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued" and response.json()["result"] is None
    assert response["Location"] == f"/api/v1/predictions/{job_id}"
    assert len(queued) == 1  # predict_file_task, sent once the job row is committed
    stored = Path(PredictionJob.objects.get(pk=job_id).file_path)
    assert stored.is_file() and stored.parent == Path(settings.MEDIA_ROOT) / "prediction-jobs"
    assert Track.objects.count() == 0  # not added to the library

    job = prediction_job_run(job_id=job_id)
    assert job.status == "done" and job.model_version == trained_head
    assert not stored.exists() and job.file_path == ""
    assert prediction_job_run(job_id=job_id) is None  # a duplicate delivery does nothing

    body = client.get(f"/api/v1/predictions/{job_id}?notation=camelot&top=5").json()
    result = body["result"]
    assert body["status"] == "done" and result["source"] == "model" and result["notation"] == "camelot"
    assert Key.parse(result["key"]).camelot == result["key"] and len(result["top"]) == 5
    assert result["top"][0]["key"] == result["key"]
    assert sum(p for p in job.probabilities) == pytest.approx(1.0, abs=1e-3)
    assert -50 <= result["tuning_cents"] <= 50


def test_kept_files_stay_until_the_job_is_deleted(annotator, trained_head, tmp_path):
    client = token_client(annotator)
    job_id = post_file(client, synthetic(tmp_path, "keep.flac", "D major", seed=12), keep_file="true").json()[
        "id"
    ]
    job = prediction_job_run(job_id=job_id)
    assert job.status == "done" and Path(job.file_path).is_file()
    assert client.delete(f"/api/v1/predictions/{job_id}").status_code == 204
    assert not Path(job.file_path).exists() and not PredictionJob.objects.exists()


def test_jobs_are_private_to_their_submitter(annotator, other_annotator, admin_user, trained_head, tmp_path):
    job_id = post_file(token_client(annotator), synthetic(tmp_path, "mine.wav", "C major", seed=13)).json()[
        "id"
    ]
    response = token_client(other_annotator).get(f"/api/v1/predictions/{job_id}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert token_client(admin_user).get(f"/api/v1/predictions/{job_id}").status_code == 200


def test_no_active_model_fails_the_job_with_a_reason(annotator, tmp_path):
    from annotations.models import ModelVersion

    ModelVersion.objects.update(is_active=False)
    job_id = post_file(token_client(annotator), synthetic(tmp_path, "x.wav", "C major", seed=14)).json()["id"]
    job = prediction_job_run(job_id=job_id)
    assert job.status == "failed" and "no active model" in job.error
    assert job.file_path == ""


@pytest.mark.parametrize("bad", ["text", "empty", "corrupt"])
def test_non_audio_is_refused_at_once(annotator, bad_files, bad):
    response = post_file(token_client(annotator), bad_files[bad])
    assert response.status_code == 400 and error_fields(response) == ["file"]
    assert not PredictionJob.objects.exists()
    assert not list((Path(settings.MEDIA_ROOT) / "prediction-jobs").glob("*"))


def test_unsupported_extension_and_missing_file_are_named(annotator, tmp_path):
    client = token_client(annotator)
    text = tmp_path / "song.txt"
    text.write_text("la la la")
    assert error_fields(post_file(client, text)) == ["file"]
    assert error_fields(client.post("/api/v1/predictions", {}, format="multipart")) == ["file"]


def test_oversized_file_is_413(annotator, tmp_path, monkeypatch):
    monkeypatch.setitem(settings.KEYWEB, "MAX_UPLOAD_BYTES", 10_000)
    response = post_file(token_client(annotator), synthetic(tmp_path, "big.wav", "C major", seed=15))
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_unknown_job_is_404(annotator, db):
    response = token_client(annotator).get("/api/v1/predictions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert token_client(annotator).get("/api/v1/predictions/not-a-uuid").status_code == 404


@pytest.mark.slow
def test_a_real_worker_answers_the_job(celery_worker_process, annotator, trained_head, tmp_path):
    client = token_client(annotator)
    job_id = post_file(client, synthetic(tmp_path, "real.wav", "A minor", seed=16)).json()["id"]
    body = wait_for(
        lambda: (
            (r := client.get(f"/api/v1/predictions/{job_id}?notation=openkey").json())["status"]
            in ("done", "failed")
            and r
        ),
        timeout=90,
        message="the worker to finish the prediction job",
    )
    assert body["status"] == "done", body
    assert body["result"]["key"].endswith(("d", "m")) and body["result"]["notation"] == "openkey"
