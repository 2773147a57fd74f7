"""Tokens, roles and rate limits: who may call what, and that the limits hold."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from knox.models import AuthToken
from rest_framework.test import APIClient

from .helpers import error_fields, token_client


def test_password_gets_a_token_that_authenticates(annotator):
    response = APIClient().post(
        "/api/v1/auth/token", {"username": "anna", "password": "anna-password-1"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["username"] == "anna" and body["user"]["role"] == "annotator"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert client.get("/api/v1/auth/me").json()["username"] == "anna"


def test_wrong_password_is_a_400_naming_the_field(annotator):
    response = APIClient().post("/api/v1/auth/token", {"username": "anna", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert error_fields(response) == ["password"]
    assert not AuthToken.objects.filter(user=annotator).exists()


def test_revoking_your_token_locks_it_out(annotator):
    client = token_client(annotator)
    assert client.delete("/api/v1/auth/token").status_code == 204
    assert not AuthToken.objects.filter(user=annotator).exists()
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_no_credentials_is_401_with_a_json_body(db):
    response = APIClient().get("/api/v1/tracks")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Token")


def test_a_user_without_a_role_is_refused(db):
    nobody = User.objects.create_user(username="nobody", password="nobody-password-1")
    response = token_client(nobody).get("/api/v1/tracks")
    assert response.status_code == 403
    assert "role" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("post", "/api/v1/models/training"),
        ("get", "/api/v1/exports/csv"),
        ("post", "/api/v1/imports"),
        ("post", "/api/v1/tracks"),
        ("get", "/api/v1/reviews"),
    ],
)
def test_annotators_cannot_administer(annotator, method, path):
    response = getattr(token_client(annotator), method)(path)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"


def test_admin_manages_users_and_their_tokens(admin_user, annotator):
    admin = token_client(admin_user)
    created = admin.post(
        "/api/v1/users", {"username": "rev", "password": "rev-password-1", "role": "reviewer"}, format="json"
    )
    assert created.status_code == 201 and created.json()["role"] == "reviewer"
    user_id = created.json()["id"]

    issued = admin.post(f"/api/v1/users/{user_id}/token")
    assert issued.status_code == 201
    rev = APIClient()
    rev.credentials(HTTP_AUTHORIZATION=f"Token {issued.json()['token']}")
    assert rev.get("/api/v1/reviews").status_code == 200

    assert admin.patch(f"/api/v1/users/{user_id}", {"role": "annotator"}, format="json").json()["role"] == (
        "annotator"
    )
    assert rev.get("/api/v1/reviews").status_code == 403

    assert admin.delete(f"/api/v1/users/{user_id}/token").status_code == 204
    assert rev.get("/api/v1/auth/me").status_code == 401

    listing = admin.get("/api/v1/users").json()
    assert {u["username"]: u["role"] for u in listing["results"]} == {
        "anna": "annotator",
        "ada": "admin",
        "rev": "annotator",
    }


def test_disabling_a_user_revokes_the_token(admin_user, annotator):
    client = token_client(annotator)
    response = token_client(admin_user).patch(
        f"/api/v1/users/{annotator.pk}", {"is_active": False}, format="json"
    )
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert client.get("/api/v1/auth/me").status_code == 401


def test_duplicate_username_and_unknown_role_are_named(admin_user, annotator):
    response = token_client(admin_user).post(
        "/api/v1/users", {"username": "ANNA", "password": "short", "role": "boss"}, format="json"
    )
    assert response.status_code == 400
    assert set(error_fields(response)) == {"username", "password", "role"}


def test_token_endpoint_is_rate_limited(annotator, settings):
    client = APIClient()
    codes = [
        client.post(
            "/api/v1/auth/token", {"username": "anna", "password": "wrong"}, format="json"
        ).status_code
        for _ in range(12)
    ]
    assert codes[:10] == [400] * 10
    assert codes[10:] == [429, 429]
    response = client.post(
        "/api/v1/auth/token", {"username": "anna", "password": "anna-password-1"}, format="json"
    )
    assert response.status_code == 429
    assert "try again in" in response.json()["detail"]


def test_login_page_is_rate_limited_too(annotator):
    from django.test import Client

    browser = Client()
    codes = [
        browser.post("/login/", {"username": "anna", "password": "wrong"}).status_code for _ in range(11)
    ]
    assert codes[:10] == [200] * 10  # the form shown again with an error
    assert codes[10] == 429


def test_session_auth_keeps_csrf(annotator):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="anna", password="anna-password-1")
    assert client.get("/api/v1/auth/me").status_code == 200
    response = client.post("/api/v1/queue/next")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_a_new_forwarded_address_each_time_does_not_reset_the_limit(annotator):
    """KEYWEB_NUM_PROXIES defaults to 0: X-Forwarded-For is the client's say-so and is not trusted."""
    client = APIClient()
    codes = [
        client.post(
            "/api/v1/auth/token",
            {"username": f"guess{number}", "password": "wrong"},  # a new name too: only the address counts
            format="json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{number}",
        ).status_code
        for number in range(12)
    ]
    assert codes[10:] == [429, 429]


def test_many_addresses_cannot_brute_force_one_account(annotator):
    client = APIClient()
    codes = [
        client.post(
            "/api/v1/auth/token",
            {"username": "ANNA", "password": "wrong"},
            format="json",
            REMOTE_ADDR=f"198.51.100.{number}",
        ).status_code
        for number in range(12)
    ]
    assert codes[:10] == [400] * 10 and codes[10:] == [429, 429]
    other_user = client.post(
        "/api/v1/auth/token", {"username": "bob", "password": "x"}, format="json", REMOTE_ADDR="198.51.100.99"
    )
    assert other_user.status_code == 400  # a fresh address trying another account is not held back


def test_login_page_ignores_forwarded_addresses_and_counts_per_username(annotator):
    from django.test import Client

    browser = Client()
    rotating_addresses = [
        browser.post(
            "/login/", {"username": f"guess{n}", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        ).status_code
        for n in range(11)
    ]
    assert rotating_addresses[:10] == [200] * 10 and rotating_addresses[10] == 429
    one_account = [
        browser.post(
            "/login/", {"username": "anna", "password": "wrong"}, REMOTE_ADDR=f"198.51.100.{n}"
        ).status_code
        for n in range(11)
    ]
    assert one_account[:10] == [200] * 10 and one_account[10] == 429


def test_behind_one_proxy_the_forwarded_address_is_the_client(annotator, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client = APIClient()
    for number in range(10):
        client.post(
            "/api/v1/auth/token",
            {"username": f"user{number}", "password": "wrong"},
            format="json",
            HTTP_X_FORWARDED_FOR="203.0.113.7",
        )
    blocked = client.post(
        "/api/v1/auth/token",
        {"username": "x", "password": "y"},
        format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )
    other = client.post(
        "/api/v1/auth/token",
        {"username": "x", "password": "y"},
        format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.8",
    )
    assert (blocked.status_code, other.status_code) == (429, 400)
