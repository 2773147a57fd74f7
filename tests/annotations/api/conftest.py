"""API test fixtures: clients logged in by token for each role, tracks with labels and predictions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone

from annotations.models import ModelVersion

from .helpers import token_client


@pytest.fixture(autouse=True)
def _api_test_settings(settings, tmp_path):
    """Rate-limit counters live in Redis and would leak between tests; media and var go to fresh folders."""
    cache.clear()
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    # Password hashing at production strength costs a third of a second per login; tests log in a lot.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield
    cache.clear()


def _user(roles, name: str, role: str) -> User:
    user = User.objects.create_user(username=name, password=f"{name}-password-1")
    user.groups.add(roles[role])
    return user


@pytest.fixture
def other_annotator(roles) -> User:
    return _user(roles, "bob", "annotator")


@pytest.fixture
def reviewer(roles) -> User:
    return _user(roles, "rita", "reviewer")


@pytest.fixture
def client_for():
    return token_client


@pytest.fixture
def active_model(db) -> ModelVersion:
    ModelVersion.objects.update(is_active=False)  # setup_keyweb may have activated the shipped head
    return ModelVersion.objects.create(
        name="v1",
        backbone="pitch_class",
        status=ModelVersion.Status.READY,
        is_active=True,
        n_training_labels=40,
        trained_at=timezone.now(),
        metrics={
            "weighted": 0.71,
            "correct": 0.6,
            "n": 10,
            "ece": 0.05,
            "confusion": [[0] * 24 for _ in range(24)],
        },
    )


@pytest.fixture
def trained_head(db, tmp_path) -> ModelVersion:
    """A real (untrained, linear) pitch-class head on disk, active: enough for the prediction worker."""
    from ml.backbones.pitchclass import EMBEDDING_DIM
    from ml.heads import HeadConfig, KeyHead, save_head

    config = HeadConfig(backbone="pitch_class", input_dim=EMBEDDING_DIM, hidden_layers=0)
    path = save_head(tmp_path / "head.pt", head=KeyHead(config=config), config=config, metrics={}, extra={})
    ModelVersion.objects.update(is_active=False)
    return ModelVersion.objects.create(
        name="tiny",
        backbone="pitch_class",
        status=ModelVersion.Status.READY,
        is_active=True,
        weights_path=str(path),
    )
