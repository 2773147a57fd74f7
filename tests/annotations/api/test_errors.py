"""Every error under /api/ is JSON in one shape; the schema and its docs page are served offline."""

from __future__ import annotations

import pytest
from django.test import Client

from .helpers import error_fields, make_track, token_client


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


@pytest.mark.parametrize("page", ["/api/docs/", "/api/docs/?script=", "/api/redoc/"])
def test_docs_pages_reference_no_other_host(db, page):
    """Redoc's template linked Google Fonts: the page needed the internet and broke the CSP."""
    import re

    response = Client().get(page)
    assert response.status_code == 200
    text = response.content.decode()
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text) + re.findall(
        r"url\(([^)]+)\)", text
    )
    assert references or page.endswith("script=")
    assert not [r for r in references if re.match(r"\s*['\"]?(?:[a-z]+:)?//", r)], references
    assert not re.search(r"https?://(?!localhost|127\.0\.0\.1)[\w.-]+\.[a-z]{2,}", text), "an external URL"


def test_swagger_ui_has_no_inline_script(db):
    html = Client().get("/api/docs/").content.decode()
    assert "<script>" not in html.replace(" ", "") and '<script src="/api/docs/?script=">' in html


# --- hostile input is a 4xx, never a 500 -------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 100_000])
def test_deeply_nested_json_is_a_400_without_login(db, depth):
    body = "[" * depth + "]" * depth
    response = Client().post("/api/v1/auth/token", data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert "deeper than 32" in response.json()["detail"] and error_fields(response) == ["body"]


def test_nesting_inside_strings_does_not_count(db):
    body = '{"username": "' + "[" * 100 + '", "password": "x\\"{{{{"}'
    response = Client().post("/api/v1/auth/token", data=body, content_type="application/json")
    assert response.status_code == 400 and error_fields(response) == ["password"]  # parsed, wrong password


@pytest.mark.parametrize("number", ["1" * 400, "1" * 400 + ".5", "1e400", "NaN", "-Infinity"])
def test_huge_or_unreal_numbers_are_a_400(annotator, number):
    track = make_track()
    body = f'{{"track": {track.pk}, "key": "C major", "tuning_cents": {number}}}'
    response = token_client(annotator).post("/api/v1/annotations", data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert error_fields(response) == ["body"]


def test_json_over_the_body_limit_is_a_413(annotator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"notes": "' + "x" * 2000 + '"}'
    response = token_client(annotator).post("/api/v1/annotations", data=body, content_type="application/json")
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/tracks?labeled=%25s",
        "/api/v1/tracks?needs_review=%25",
        "/api/v1/tracks?key=%25",
        "/api/v1/tracks?predicted_key=%25s",
        "/api/v1/annotations?key=%25",
        "/api/v1/annotations?key=%25(x)s",
    ],
)
def test_a_percent_sign_in_a_filter_is_a_400_naming_it(admin_user, url):
    response = token_client(admin_user).get(url)
    assert response.status_code == 400, response.content[:300]
    parameter = url.split("?")[1].split("=")[0]
    assert error_fields(response) == [parameter] and "%" in response.json()["detail"]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/tracks?page_size=null", "page_size"),
        ("/api/v1/tracks?page_size=0", "page_size"),
        ("/api/v1/tracks?page_size=501", "page_size"),
        ("/api/v1/tracks?page_size=", "page_size"),
        ("/api/v1/annotations?label=", "label"),
        ("/api/v1/tracks?split=", "split"),
        ("/api/v1/tracks?labeled=", "labeled"),
        ("/api/v1/annotations?track=0", "track"),
        ("/api/v1/annotations?track=1.5", "track"),
    ],
)
def test_values_outside_the_schema_are_refused(admin_user, url, field):
    response = token_client(admin_user).get(url)
    assert response.status_code == 400, response.content[:300]
    assert error_fields(response) == [field]


def test_values_inside_the_schema_are_accepted(admin_user):
    client = token_client(admin_user)
    for url in [
        "/api/v1/tracks?page_size=500",
        "/api/v1/annotations?track=1",
        "/api/v1/tracks?labeled=false",
    ]:
        assert client.get(url).status_code == 200, url


def test_schema_states_the_bounds_the_filters_enforce(db):
    schema = Client().get("/api/schema/?format=json").json()

    def parameter(path: str, name: str) -> dict:
        return next(p["schema"] for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name)

    assert parameter("/api/v1/tracks", "page_size") == {"type": "integer", "minimum": 1, "maximum": 500}
    assert parameter("/api/v1/annotations", "track") == {"type": "integer", "minimum": 1}
    assert parameter("/api/v1/tracks", "labeled")["type"] == "boolean"
    assert parameter("/api/v1/tracks", "needs_review")["type"] == "boolean"
    assert parameter("/api/v1/tracks", "confidence_min") == {"type": "number", "minimum": 0, "maximum": 1}


# --- JSON in every mode; refusals logged as one line ------------------------------------------------------


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_paths_are_json_404s_in_every_mode(db, settings, debug, method):
    settings.DEBUG = debug
    response = getattr(Client(), method)("/api/v1/nothing-here/deeper")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


def test_wrong_method_is_a_json_405_in_debug_mode_too(annotator, settings):
    settings.DEBUG = True
    response = token_client(annotator).put("/api/v1/tracks/1/key")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def _console_lines(records) -> list[str]:
    """The records as the configured console handler (with its filters) would write them."""
    import logging

    console = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    return [console.format(r) for r in records if console.filter(r)]


@pytest.mark.parametrize(
    "url",
    ["/dashboard/", "/api/v1/users", "/api/v1/nothing", "/api/v1/tracks/999999", "/api/v1/tracks?key=H"],
)
def test_expected_refusals_are_logged_as_one_line(annotator, caplog, url):
    browser = Client()
    browser.force_login(annotator)
    with caplog.at_level("INFO", logger="django.request"):
        assert 400 <= browser.get(url).status_code < 500
    lines = _console_lines([r for r in caplog.records if r.name == "django.request"])
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "Traceback" not in lines[0]


def test_server_errors_keep_their_traceback(annotator, caplog, monkeypatch):
    from annotations.api.views import model_versions

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(model_versions, "labels_since_last_training", broken)
    with caplog.at_level("INFO"):
        assert token_client(annotator).get("/api/v1/models/training").status_code == 500
    lines = _console_lines(caplog.records)
    assert any("Traceback" in line and "RuntimeError: boom" in line for line in lines), lines
