"""Every response carries the Content-Security-Policy: the app's own scripts, styles, media, images, fonts
and fetches only, no inline script; the templates keep to it (data goes in JSON blocks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in policy.split(";")) if part}


def test_the_policy_allows_only_this_server():
    directives = _directives(settings.CONTENT_SECURITY_POLICY)
    for name in ("default-src", "script-src", "style-src", "media-src", "img-src", "font-src", "connect-src"):
        assert "'self'" in directives[name], name
        assert not [s for s in directives[name] if s.startswith(("http", "*", "'unsafe-"))], (
            name,
            directives[name],
        )
    assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/login/", None),
        ("/", "anna"),
        ("/label/", "anna"),
        ("/dashboard/", "ada"),
        ("/api/v1/tracks", "anna"),
        ("/api/v1/nothing-here", None),
        ("/healthz", None),
        ("/static/keyweb/keyweb.css", None),
    ],
)
def test_every_response_carries_the_policy(annotator, admin_user, path, who):
    client = Client()
    if who:
        client.force_login(annotator if who == "anna" else admin_user)
    response = client.get(path)
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY, path


@pytest.mark.parametrize("path", ["/api/redoc/", "/api/docs/", "/admin/login/"])
def test_third_party_pages_may_inline_styles_but_never_scripts(db, path):
    response = Client().get(path)
    directives = _directives(response["Content-Security-Policy"])
    assert directives["style-src"] == ["'self'", "'unsafe-inline'"]
    assert directives["script-src"] == ["'self'"]


def test_templates_hold_no_inline_script_or_handler():
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and "application/json" not in tag:
                offenders.append(f"{template.name}: {tag}")
        offenders += [f"{template.name}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text)]
        offenders += [f"{template.name}: javascript: URL" for _ in re.findall(r"javascript:", text)]
    assert offenders == []
