"""Real-browser fixtures: Debian's Chromium driven by Playwright against pytest-django's live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The same users and roles as the Django-side tests (passwords are f"{username}-password-1").
from tests.annotations.conftest import admin_user, annotator, roles  # noqa: F401

# Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make between browser
# steps are ordinary synchronous code, which Django would otherwise refuse next to a loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            "the browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    # The app's Content-Security-Policy (script-src 'self') also forbids the string expressions that
    # Playwright evaluates in the page; the tests bypass it, and test_layout.py checks every page under it.
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 1000}, bypass_csp=True
    )
    context.set_default_timeout(30_000)  # a loaded CI machine (or a shared 2-core box) is slow
    tab = context.new_page()
    tab.console_errors = []
    tab.on("console", lambda message: message.type == "error" and tab.console_errors.append(message.text))
    tab.on("pageerror", lambda error: tab.console_errors.append(str(error)))
    yield tab
    context.close()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Login attempts are rate-limited per address and per username in the shared cache; the browser tests
    log in far more often than a person would, so each test starts with fresh counters."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def log_in(page, username: str) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-password-1")
    page.press("#id_password", "Enter")
    # Wait until we have left the login page: "**/" alone would match /login/ itself, so a refused login
    # (a typo, a rate limit) would only show up later as a puzzling timeout.
    page.wait_for_url(lambda url: "/login/" not in url)
