"""Every error under /api/ is JSON in one shape; the schema and its docs page are served offline."""

from __future__ import annotations

import pytest
from django.test import Client

from .helpers import error_fields, token_client


def test_unknown_api_path_is_a_json_404(annotator):
    response = token_client(annotator).get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found" and "/api/v1/nothing-here" in response.json()["detail"]


def test_pages_outside_the_api_keep_html_404s(annotator):
    client = Client()
    client.force_login(annotator)
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_wrong_method_is_a_json_405(annotator):
    response = token_client(annotator).put("/api/v1/tracks/1/key")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_wrong_content_type_is_a_415_on_the_body(annotator):
    response = token_client(annotator).post("/api/v1/annotations", data="track=1", content_type="text/plain")
    assert response.status_code == 415 and error_fields(response) == ["body"]


def test_json_that_is_not_an_object_is_named(annotator):
    response = token_client(annotator).post(
        "/api/v1/annotations", data="[1, 2]", content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["message"]


def test_a_500_under_api_is_json(annotator, settings, monkeypatch):
    from annotations.api.views import model_versions

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(model_versions, "labels_since_last_training", broken)
    response = token_client(annotator).get("/api/v1/models/training")
    assert response.status_code == 500
    assert response.json() == {
        "status": 500,
        "code": "server_error",
        "detail": "Something went wrong on the server; the error was logged.",
        "errors": [],
    }


def test_schema_is_openapi_3_and_lists_the_endpoints(db):
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/tracks/{id}/key", "/api/v1/predictions", "/api/v1/exports/{export_format}"} <= set(
        schema["paths"]
    )


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_use_bundled_assets(db, page):
    from django.contrib.staticfiles import finders

    html = Client().get(page).content.decode()
    assert "/static/drf_spectacular_sidecar/" in html and "cdn" not in html.lower()
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
