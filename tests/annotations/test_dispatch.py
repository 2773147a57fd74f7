"""annotations.dispatch: every task name it publishes is a registered task, routed as the settings say,
and messages go out only after the transaction that made their data commits."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import transaction

from annotations import dispatch
from keyweb.celery import app


def test_every_published_name_is_a_registered_task():
    app.loader.import_default_modules()
    missing = [name for name in dispatch.TASK_NAMES if name not in app.tasks]
    assert missing == []


def test_every_routed_name_is_a_registered_task():
    app.loader.import_default_modules()
    assert [name for name in settings.CELERY_TASK_ROUTES if name not in app.tasks] == []


def test_dispatch_names_every_task_constant_it_defines():
    constants = {value for name, value in vars(dispatch).items() if name.isupper() and isinstance(value, str)}
    assert constants == set(dispatch.TASK_NAMES)


@pytest.mark.django_db(transaction=True)
def test_messages_leave_only_after_commit_and_in_batches(monkeypatch):
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **kwargs: sent.append((name, args)))
    with transaction.atomic():
        dispatch.analysis_start(track_ids=list(range(40)))
        assert sent == []  # nothing published while the rows may still roll back
    assert [name for name, _ in sent] == [dispatch.ANALYSIS] * 3
    assert [len(args[0]) for _, args in sent] == [16, 16, 8]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_publishes_nothing(monkeypatch):
    sent: list[str] = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **kwargs: sent.append(name))
    with pytest.raises(RuntimeError), transaction.atomic():
        dispatch.training_start(model_version_id=1)
        raise RuntimeError("roll back")
    assert sent == []
