"""Schemathesis fuzzes every operation of the OpenAPI schema as each role — annotator, reviewer and admin —
a fixed number of examples per operation and role: no response may be a 5xx, and every response must match
the schema (status code documented, content type, body). KEYWEB_FUZZ_EXAMPLES raises the count for a longer
local run; the default keeps the whole file under five minutes on two cores."""

from __future__ import annotations

import collections
import logging
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .helpers import annotate, label_track, make_track, predict

EXAMPLES_PER_OPERATION = int(os.environ.get("KEYWEB_FUZZ_EXAMPLES", "6"))
ROLES = ("annotator", "reviewer", "admin")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
statuses: collections.Counter = collections.Counter()  # (role, status) → responses


@pytest.fixture(autouse=True)
def _api_data(admin_user, annotator, active_model):
    """A database with a little of everything, and requests that share the test's transaction."""
    for number in range(3):
        track = label_track(make_track(), "C major") if number else make_track()
        predict(track, active_model, "A minor", 0.7)
    annotate(make_track(), annotator, "F# minor")
    # The WSGI handler would close the test transaction's connection after each request (Django's test
    # Client turns this off the same way).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    request_log = logging.getLogger("django.request")
    level, request_log.level = request_log.level, logging.ERROR  # thousands of expected 4xx warnings
    yield
    request_log.setLevel(level)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(params=ROLES)
def fuzz_user(request, roles, admin_user):
    """The caller, one per role: the admin from the shared fixtures, an annotator and a reviewer made here
    (named after their role, so the report can count by role)."""
    from django.contrib.auth.models import User

    if request.param == "admin":
        admin_user.username = "admin"
        admin_user.save(update_fields=["username"])
        return admin_user
    user = User.objects.create_user(username=request.param, password=f"{request.param}-password-1")
    user.groups.add(roles[request.param])
    return user


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for role in ROLES:
        by_status = {code: n for (who, code), n in sorted(statuses.items()) if who == role}
        print(f"\nfuzz as {role}: {sum(by_status.values())} requests; by status: {by_status}")


def _load_schema():
    from keyweb.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


schema = _load_schema()


@pytest.mark.slow
@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_never_fails_and_matches_its_schema(case, fuzz_user):
    # Some operations revoke or rotate the caller's token; every case starts with a valid one.
    _, key = AuthToken.objects.create(user=fuzz_user)
    response = case.call(headers={"Authorization": f"Token {key}"})
    statuses[(fuzz_user.username, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)
