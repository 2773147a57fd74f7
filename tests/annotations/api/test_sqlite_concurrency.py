"""Many annotators asking for work at once on SQLite (the embedded mode): no request is answered 500
"database is locked" — the WAL, busy-timeout and immediate-transaction options hold."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections

from annotations.models import ModelVersion
from tests.annotations.queue_helpers import peaked, track_with_prediction

from .helpers import token_client

N_ANNOTATORS = 20


@pytest.mark.django_db(transaction=True)
def test_concurrent_queue_next_on_sqlite_answers_no_500(roles, settings):
    if connection.vendor != "sqlite":
        pytest.skip("about SQLite's locking; PostgreSQL has test_queue_concurrency.py")
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    settings.KEYWEB = {**settings.KEYWEB, "TEST_FRACTION": 0.0}
    ModelVersion.objects.update(is_active=False)  # setup_keyweb may have activated the shipped head
    for number in range(N_ANNOTATORS * 2):
        track_with_prediction(f"c{number:03d}", peaked(number % 24, 0.3 + (number % 5) * 0.1))
    clients = []
    for number in range(N_ANNOTATORS):
        user = User.objects.create_user(username=f"concurrent{number}", password="pw-123456")
        user.groups.add(roles["annotator"])
        clients.append(token_client(user))
    statuses: Counter = Counter()
    served: set[tuple[int, int]] = set()  # (annotator, track); asking twice returns the held lease
    start = threading.Barrier(N_ANNOTATORS)

    def ask(number: int, client) -> None:
        try:
            start.wait()
            for _ in range(2):
                response = client.post("/api/v1/queue/next")
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    served.add((number, response.json()["id"]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask, args=pair) for pair in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    print(f"\nsqlite queue/next x{N_ANNOTATORS * 2}: {dict(statuses)}")
    assert sum(statuses.values()) == N_ANNOTATORS * 2
    assert not [code for code in statuses if code >= 500], statuses
    assert statuses[200] == N_ANNOTATORS * 2
    assert Counter(track for _, track in served).most_common(1)[0][1] == 1  # no track went to two people
