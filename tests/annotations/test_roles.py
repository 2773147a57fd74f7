"""One role model: every URL pattern (pages and API) × every kind of account, checked against the one
permission table (annotations/permissions.py), which docs/api.md shows verbatim."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotations.models import Annotation, ModelVersion, PredictionJob
from annotations.permissions import ADMIN, ANNOTATOR, PERMISSIONS, permission_table_markdown, user_may
from annotations.services.accounts import user_role_set
from tests.factories import make_track

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = ("anonymous", "no role", "annotator", "annotator with is_staff", "reviewer", "admin", "superuser")


def _url_names(patterns=None, namespace: str | None = None):
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue  # Django's admin site: checked on its own below
            yield from _url_names(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield (f"{namespace}:{pattern.name}" if namespace else pattern.name), pattern


@pytest.fixture
def accounts(roles) -> dict[str, User | None]:
    def make(name: str, role: str | None = None, **flags) -> User:
        user = User.objects.create_user(username=name.replace(" ", "-"), password="x-password-1", **flags)
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return {
        "anonymous": None,
        "no role": make("norole"),
        "annotator": make("anna", "annotator"),
        "annotator with is_staff": make("stan", "annotator", is_staff=True),
        "reviewer": make("rita", "reviewer"),
        "admin": make("ada", "admin", is_staff=True),
        "superuser": make("root", is_staff=True, is_superuser=True),
    }


@pytest.fixture
def objects(accounts, db):
    track = make_track()
    annotation = Annotation.objects.create(
        track=track, annotator=accounts["annotator"], label="key", key_index=0
    )
    version = ModelVersion.objects.create(name="v9", backbone="pitch_class", status="ready")
    job = PredictionJob.objects.create(id=uuid.uuid4(), original_filename="x.wav", user=accounts["annotator"])
    return {"track": track, "annotation": annotation, "version": version, "job": job}


def _kwargs(name: str, pattern: URLPattern, objects: dict, accounts: dict) -> dict:
    wanted = set(pattern.pattern.converters)
    values = {
        "api:user-detail": {"pk": accounts["annotator"].pk},
        "api:user-token": {"pk": accounts["annotator"].pk},
        "api:annotation-detail": {"pk": objects["annotation"].pk},
        "api:model-detail": {"pk": objects["version"].pk},
        "api:model-activate": {"pk": objects["version"].pk},
        "annotations:dashboard_version_activate": {"pk": objects["version"].pk},
    }.get(name, {})
    defaults = {
        "pk": objects["track"].pk,
        "track_id": objects["track"].pk,
        "job_id": objects["job"].pk,
        "export_format": "csv",
    }
    return {key: values.get(key, defaults[key]) for key in wanted}


def _denied(response) -> bool:
    if response.status_code in (401, 403):
        return True
    # A page refuses an anonymous visitor by sending them to log in and come back (?next=…).
    return response.status_code == 302 and "/login/?next=" in response.get("Location", "")


def test_the_table_names_every_url_pattern_and_nothing_else():
    names = {name for name, _ in _url_names()}
    assert names - set(PERMISSIONS) == set(), "URL patterns missing from annotations.permissions.PERMISSIONS"
    assert set(PERMISSIONS) - names == set(), "PERMISSIONS names URLs that do not exist"


def test_docs_show_the_permission_table_verbatim():
    assert permission_table_markdown() in (ROOT / "docs" / "api.md").read_text()


@pytest.mark.django_db(transaction=True)
def test_every_url_and_method_allows_exactly_the_roles_the_table_says(accounts, objects):
    wrong_allows, wrong_denials, checks = [], [], 0
    patterns = dict(_url_names())
    for name, methods in PERMISSIONS.items():
        path = reverse(name, kwargs=_kwargs(name, patterns[name], objects, accounts))
        for method, level in methods.items():
            for account in ACCOUNTS:
                user = accounts[account]
                client = Client()
                if user is not None:
                    client.force_login(user)
                response = client.generic(method, path, data="{}", content_type="application/json")
                assert response.status_code < 500, (name, method, account, response.status_code)
                expected_allowed = user_may(user, level) if user is not None else level == "anyone"
                checks += 1
                if _denied(response) and expected_allowed:
                    wrong_denials.append(f"{method} {name} as {account}: {response.status_code}")
                elif not _denied(response) and not expected_allowed:
                    wrong_allows.append(f"{method} {name} as {account}: {response.status_code}")
    assert checks > 300
    print(f"{checks} role × URL × method checks")
    assert (wrong_allows, wrong_denials) == ([], [])


def test_is_staff_alone_opens_nothing(accounts, objects):
    client = Client()
    client.force_login(accounts["annotator with is_staff"])
    assert client.get("/admin/").status_code == 302  # to the admin login: not an admin
    assert client.get(reverse("annotations:dashboard")).status_code == 403
    client.force_login(accounts["admin"])
    assert client.get("/admin/").status_code == 200


def test_the_admin_role_brings_is_staff_and_taking_it_away_removes_it(accounts):
    user = accounts["annotator"]
    user_role_set(user=user, role=ADMIN)
    user.refresh_from_db()
    assert user.is_staff and user_may(user, ADMIN)
    user_role_set(user=user, role=ANNOTATOR)
    user.refresh_from_db()
    assert not user.is_staff and not user_may(user, ADMIN)


def test_an_admin_created_through_the_api_opens_the_dashboard(accounts):
    from tests.annotations.api.helpers import token_client

    response = token_client(accounts["admin"]).post(
        "/api/v1/users",
        {"username": "newadmin", "password": "a-long-password-1", "role": "admin"},
        format="json",
    )
    assert response.status_code == 201, response.content
    client = Client()
    client.force_login(User.objects.get(username="newadmin"))
    assert client.get(reverse("annotations:dashboard")).status_code == 200


def test_a_superuser_cannot_be_narrowed_to_annotator_silently(accounts):
    from tests.annotations.api.helpers import token_client

    superuser = accounts["superuser"]
    response = token_client(accounts["admin"]).patch(
        f"/api/v1/users/{superuser.pk}", {"role": "annotator"}, format="json"
    )
    assert response.status_code == 400 and "superuser" in response.json()["detail"]


def test_an_account_without_a_role_is_told_whom_to_ask_and_sees_no_tracks(accounts, objects):
    client = Client()
    client.force_login(accounts["no role"])
    home = client.get("/").content.decode()
    assert "has no role yet" in home and "ada" in home
    assert objects["track"].title not in home
    for path in (
        reverse("annotations:track_list"),
        reverse("annotations:track_audio", args=[objects["track"].pk]),
        reverse("annotations:track_visuals", args=[objects["track"].pk]),
        "/api/v1/tracks",
    ):
        assert _denied(client.get(path)), path
