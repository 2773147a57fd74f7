"""API tokens are stored as digests only (django-rest-knox); tokens issued before hashing keep working and
are converted, on first use or by `manage.py api_tokens_hash`."""

from __future__ import annotations

import io

from django.core.management import call_command
from django.db import connection
from knox.models import AuthToken
from rest_framework.authtoken.models import Token as PlainToken
from rest_framework.test import APIClient

from annotations.services.accounts import token_create

from .helpers import token_client


def _login(username: str = "anna", password: str = "anna-password-1") -> str:
    response = APIClient().post(
        "/api/v1/auth/token", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _every_stored_text() -> str:
    """Every value in the token tables, as text: a key must not be among them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {AuthToken._meta.db_table}")
        hashed = cursor.fetchall()
        cursor.execute(f"SELECT * FROM {PlainToken._meta.db_table}")
        plain = cursor.fetchall()
    return repr(hashed + plain)


def test_the_database_holds_no_token_key(annotator):
    key = _login()
    assert _client(key).get("/api/v1/auth/me").json()["username"] == "anna"
    assert key not in _every_stored_text() and key[15:] not in _every_stored_text()
    assert len(AuthToken.objects.get(user=annotator).digest) == 128  # SHA-512, hex


def test_each_login_gets_its_own_token_and_revoking_one_keeps_the_other(annotator):
    first, second = _login(), _login()
    assert first != second
    assert _client(first).delete("/api/v1/auth/token").status_code == 204
    assert _client(first).get("/api/v1/auth/me").status_code == 401
    assert _client(second).get("/api/v1/auth/me").status_code == 200


def test_a_wrong_key_with_a_right_prefix_is_refused(annotator):
    key = _login()
    forged = key[:15] + ("0" if key[15] != "0" else "1") + key[16:]
    response = _client(forged).get("/api/v1/auth/me")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_admin_reset_replaces_every_token(admin_user, annotator):
    old = [_login(), _login()]
    issued = token_client(admin_user).post(f"/api/v1/users/{annotator.pk}/token")
    assert issued.status_code == 201
    assert [_client(k).get("/api/v1/auth/me").status_code for k in old] == [401, 401]
    assert _client(issued.json()["token"]).get("/api/v1/auth/me").status_code == 200
    listing = token_client(admin_user).get("/api/v1/users").json()["results"]
    assert {u["username"]: u["has_token"] for u in listing}["anna"] is True


def test_logins_keep_at_most_ten_tokens(annotator):
    keys = [token_create(user=annotator) for _ in range(11)]  # what each login calls
    assert AuthToken.objects.filter(user=annotator).count() == 10
    assert _client(keys[0]).get("/api/v1/auth/me").status_code == 401
    assert _client(keys[-1]).get("/api/v1/auth/me").status_code == 200


def test_a_plain_token_from_before_hashing_keeps_working_and_is_converted_on_first_use(annotator):
    plain = PlainToken.objects.create(user=annotator)
    key = plain.key
    assert _client(key).get("/api/v1/auth/me").json()["username"] == "anna"
    assert not PlainToken.objects.exists()  # the plain row is gone ...
    assert key not in _every_stored_text()  # ... and only its digest is stored
    assert _client(key).get("/api/v1/auth/me").status_code == 200  # same key, now through the digest


def test_api_tokens_hash_converts_every_plain_token(annotator, admin_user):
    keys = [PlainToken.objects.create(user=user).key for user in (annotator, admin_user)]
    out = io.StringIO()
    call_command("api_tokens_hash", stdout=out)
    assert "2 plain tokens converted" in out.getvalue()
    assert not PlainToken.objects.exists() and all(k not in _every_stored_text() for k in keys)
    assert [_client(k).get("/api/v1/auth/me").status_code for k in keys] == [200, 200]


def test_disabling_a_user_revokes_plain_and_hashed_tokens(admin_user, annotator):
    plain_key = PlainToken.objects.create(user=annotator).key
    hashed_key = _login()
    token_client(admin_user).patch(f"/api/v1/users/{annotator.pk}", {"is_active": False}, format="json")
    assert not PlainToken.objects.filter(user=annotator).exists()
    assert not AuthToken.objects.filter(user=annotator).exists()
    assert [_client(k).get("/api/v1/auth/me").status_code for k in (plain_key, hashed_key)] == [401, 401]


def test_an_expired_token_is_refused_and_deleted(annotator):
    from datetime import timedelta

    _, key = AuthToken.objects.create(user=annotator, expiry=timedelta(seconds=-1))
    assert _client(key).get("/api/v1/auth/me").status_code == 401
    assert not AuthToken.objects.filter(user=annotator).exists()
