"""In Chromium: every page fits a 390 px phone without sideways scrolling, and at 1280×720 the label
page shows the player, the model's suggestions with their percentages and the submit action at once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotations.models import Annotation, Track
from annotations.services.labels import track_consensus_refresh
from tests.e2e.conftest import log_in
from tests.e2e.seed import tracks_analyse, tracks_import

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 720}


@pytest.fixture
def library(tmp_path, roles, annotator, admin_user, settings) -> list[Track]:
    """Two analysed pool tracks with long names, and one disputed track for the review page."""
    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    tracks = tracks_import(tmp_path / "library", count=3, seconds=4)
    Track.objects.filter(pk__in=[t.pk for t in tracks]).update(
        split=Track.Split.POOL, title="A rather long title that goes on and on for a phone screen"
    )
    tracks_analyse(tracks)
    for name, key in (("ben", 0), ("cleo", 7)):
        user = User.objects.create_user(username=name, password=f"{name}-password-1")
        user.groups.add(roles["annotator"])
        Annotation.objects.create(track=tracks[2], annotator=user, label="key", key_index=key)
    assert track_consensus_refresh(track=tracks[2]).needs_review
    return tracks


def _overflow(page) -> dict:
    """How far the page and the top bar's links reach past the viewport's right edge (0 = they fit)."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const links = [...document.querySelectorAll('.topbar a, .topbar button')];
          return {
            page: document.documentElement.scrollWidth - width,
            header: Math.max(0, ...links.map((link) => link.getBoundingClientRect().right - width)),
          };
        }"""
    )


def _widest(page) -> list[str]:
    """The elements that reach past the right edge, to say what to fix."""
    return page.evaluate(
        """() => [...document.querySelectorAll('main *')]
          .filter((element) => element.getBoundingClientRect().right > document.documentElement.clientWidth)
          .slice(0, 5)
          .map((element) => `${element.tagName}.${element.className} ${Math.round(element.getBoundingClientRect().right)}`)"""
    )


def test_no_page_is_wider_than_a_phone(page, library):
    page.set_viewport_size(PHONE)
    page.goto("/login/")
    assert _overflow(page) == {"page": 0, "header": 0}
    log_in(page, "ada")
    disputed = library[2]
    for path in (
        "/",
        "/label/",
        "/tracks/",
        "/upload/",
        "/review/",
        f"/review/{disputed.pk}/",
        "/dashboard/",
    ):
        page.goto(path)
        page.wait_for_load_state("load")
        if path == "/label/":
            page.wait_for_function("window.keyweb.currentTrackId !== undefined")
        assert _overflow(page) == {"page": 0, "header": 0}, (path, _widest(page))
        # The header wraps: every link is on screen, and in the dark bar, not below it on white.
        bar = page.locator(".topbar").bounding_box()
        for link in page.locator(".topbar nav a").all():
            box = link.bounding_box()
            assert box["y"] + box["height"] <= bar["y"] + bar["height"] + 0.5, path
    assert page.console_errors == []


def _on_screen(page, selector: str) -> bool:
    return page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)].every((element) => {
          const box = element.getBoundingClientRect();
          return box.width > 0 && box.top >= 0 && box.bottom <= window.innerHeight
            && box.left >= 0 && box.right <= window.innerWidth;
        }) && document.querySelectorAll(selector).length > 0""",
        selector,
    )


def _boxes(page) -> dict:
    return page.evaluate(
        """() => Object.fromEntries(['.topbar', '.label-head', '.player', '.suggestions', '.picker',
          '[data-action=submit-picked]', '#suggestions'].map((s) => {
            const b = document.querySelector(s).getBoundingClientRect();
            return [s, [Math.round(b.top), Math.round(b.bottom), Math.round(b.left), Math.round(b.right)]];
          }))"""
    )


def test_the_label_page_fits_a_laptop_screen(page, library):
    page.set_viewport_size(LAPTOP)
    log_in(page, "anna")
    page.goto("/label/")
    page.wait_for_function(
        "window.keyweb.currentTrackId !== null && window.keyweb.currentTrackId !== undefined"
    )
    assert page.evaluate("window.scrollY") == 0
    assert page.locator("#suggestions .percent").count() == 3
    for selector in ("#play", "#waveform", "#suggestions .percent", '[data-action="submit-picked"]'):
        assert _on_screen(page, selector), (selector, _boxes(page))
    # The shortcut list is folded away; ? opens it.
    assert not page.locator("#shortcuts .shortcut-list").is_visible()
    page.keyboard.press("?")
    assert page.locator("#shortcuts .shortcut-list").is_visible()
    assert page.console_errors == []


def test_every_page_runs_under_the_content_security_policy(browser, live_server, library):
    """The other browser tests bypass the policy to evaluate expressions; here it is enforced, and a
    violation (an inline script, an eval, a foreign source) would show as a console error."""
    context = browser.new_context(base_url=live_server.url, viewport=LAPTOP)
    tab = context.new_page()
    errors = []
    tab.on("console", lambda message: message.type == "error" and errors.append(message.text))
    tab.on("pageerror", lambda error: errors.append(str(error)))
    log_in(tab, "ada")
    for path, ready in (
        ("/", "main"),
        ("/label/", "#suggestions li"),
        ("/tracks/", "table.tracks"),
        (f"/review/{library[2].pk}/", ".decide-quick"),
        ("/dashboard/", "#chart-confusion, #agreement-table table"),
        ("/upload/", "#id_files"),
    ):
        tab.goto(path)
        tab.locator(ready).first.wait_for()
    context.close()
    assert errors == []
