"""Audio that decodes but holds no key (a 1-sample WAV) is refused at import, and decoder errors reach the
user in plain words naming their file, never the server's temporary folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from django.conf import settings

from annotations.models import PredictionJob, Track
from annotations.services.tracks import decoder_message, track_import

from .helpers import error_fields, token_client


def _tiny_wav(folder: Path, frames: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tiny-{frames}.wav"
    soundfile.write(path, np.full(frames, 0.5, dtype=np.float32), 22050)
    return path


def test_default_minimum_duration_is_one_second():
    assert settings.KEYWEB["MIN_DURATION_S"] == 1.0


@pytest.mark.parametrize("frames", [1, 8])
def test_a_few_samples_are_not_a_track(admin_user, tmp_path, frames):
    path = _tiny_wav(tmp_path, frames)
    with open(path, "rb") as handle:
        response = token_client(admin_user).post("/api/v1/tracks", {"files": [handle]}, format="multipart")
    assert response.status_code == 400, response.content
    [message] = [item["message"] for item in response.json()["errors"]]
    assert "too short" in message and "at least 1 s" in message and "KEYWEB_MIN_DURATION_S" in message
    assert not Track.objects.exists()


def test_the_minimum_is_a_setting(db, tmp_path, settings):
    settings.KEYWEB = {**settings.KEYWEB, "MIN_DURATION_S": 0.0001}
    assert track_import(path=_tiny_wav(tmp_path, 8), queue_analysis=False).ok


@pytest.mark.parametrize("frames", [1, 8])
def test_a_few_samples_are_not_a_prediction_job(annotator, tmp_path, frames):
    with open(_tiny_wav(tmp_path, frames), "rb") as handle:
        response = token_client(annotator).post("/api/v1/predictions", {"file": handle}, format="multipart")
    assert response.status_code == 400 and error_fields(response) == ["file"]
    assert "too short" in response.json()["detail"]
    assert not PredictionJob.objects.exists()


def _no_server_path(text: str) -> None:
    assert not re.search(r"/[\w.-]+/", text), text  # no folder of any kind, temporary or media
    assert "Error opening '" in text and ".." not in text


def test_upload_decoder_errors_name_the_users_file_not_a_server_path(admin_user, bad_files):
    with open(bad_files["text"], "rb") as text, open(bad_files["corrupt"], "rb") as corrupt:
        response = token_client(admin_user).post(
            "/api/v1/tracks", {"files": [text, corrupt]}, format="multipart"
        )
    assert response.status_code == 400
    messages = [item["message"] for item in response.json()["errors"]]
    assert len(messages) == 2
    for message in messages:
        _no_server_path(message)


def test_prediction_decoder_errors_name_the_users_file_not_a_server_path(annotator, bad_files):
    with open(bad_files["corrupt"], "rb") as handle:
        response = token_client(annotator).post("/api/v1/predictions", {"file": handle}, format="multipart")
    assert response.status_code == 400
    _no_server_path(response.json()["detail"])


def test_decoder_message_replaces_every_server_path():
    path = Path("/var/tmp/keyweb-abc123/upload.wav")
    error = ValueError(
        f"{path}: not an audio file KeyWeb can read (the decoder said: Error opening '{path}': "
        "Format not recognised.). Export it as WAV, FLAC, MP3 or Ogg; see /srv/keyweb/var/log/x.txt"
    )
    message = decoder_message(error, path=path, shown_name="song.wav")
    assert "'song.wav'" in message and "/var/tmp" not in message and "/srv" not in message
    assert message.startswith("not an audio file") and ".." not in message
