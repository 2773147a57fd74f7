"""20 annotators at once: nobody receives a track another holds, and no annotation is lost."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections

from annotations.models import Annotation, Track
from annotations.services.labels import LabelValue
from annotations.services.queue import annotation_submit, queue_next

from .queue_helpers import peaked, track_with_prediction

N_ANNOTATORS = 20
N_TRACKS = 60


@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_never_share_a_track(settings):
    if connection.vendor != "postgresql":
        pytest.skip("row locking under concurrency is a PostgreSQL property; CI runs this on PostgreSQL")
    settings.KEYWEB = {**settings.KEYWEB, "TEST_FRACTION": 0.0}
    for i in range(N_TRACKS):
        track_with_prediction(f"t{i:03d}", peaked(i % 24, 0.2 + (i % 7) * 0.1))
    users = [
        User.objects.create_user(username=f"annotator{i}", password="pw-123456") for i in range(N_ANNOTATORS)
    ]
    served: dict[int, list[int]] = {user.pk: [] for user in users}
    errors: list[BaseException] = []
    start = threading.Barrier(N_ANNOTATORS)

    def annotate(user: User) -> None:
        try:
            start.wait()
            while (track := queue_next(user=user)) is not None:
                served[user.pk].append(track.pk)
                annotation_submit(user=user, track=track, label=LabelValue.parse("C major"), time_spent_s=1.0)
        except BaseException as error:  # surfaced below: a thread must not fail silently
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=annotate, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    all_served = [track for tracks in served.values() for track in tracks]
    assert Counter(all_served).most_common(1)[0][1] == 1  # no track went to two annotators
    assert len(all_served) == N_TRACKS
    assert Annotation.objects.count() == N_TRACKS  # every submission stored
    assert not Track.objects.filter(needs_review=True).exists()
    assert Track.objects.filter(consensus_label="key").count() == N_TRACKS
    assert sum(1 for tracks in served.values() if tracks) > 1  # the work really was shared
