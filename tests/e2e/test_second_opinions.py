"""Second opinions in a real browser: a second annotator is served the same track without the first
label, labels it differently, and the reviewer finds it on the Review page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotations.models import Annotation, Track
from annotations.services.labels import second_opinion_share_set
from tests.e2e.conftest import log_in
from tests.e2e.seed import tracks_analyse, tracks_import

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _label_with_the_keyboard(page, tonic: str) -> int:
    page.goto("/label/")
    page.wait_for_function("window.keyweb && window.keyweb.currentTrackId")
    track_id = page.evaluate("window.keyweb.currentTrackId")
    page.keyboard.press(tonic)
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.keyweb.currentTrackId !== {track_id}")
    return track_id


def test_a_second_opinion_reaches_a_second_annotator_and_a_disagreement_reaches_review(
    browser, live_server, tmp_path, roles, annotator
):
    second_opinion_share_set(share=1.0)
    tracks = tracks_import(tmp_path / "second", count=1, seconds=4)
    Track.objects.filter(pk=tracks[0].pk).update(split=Track.Split.POOL)
    tracks_analyse(tracks)
    for name, role in (("bea", "annotator"), ("rita", "reviewer")):
        User.objects.create_user(username=name, password=f"{name}-password-1").groups.add(roles[role])

    def tab():
        context = browser.new_context(base_url=live_server.url, bypass_csp=True)
        context.set_default_timeout(30_000)
        return context, context.new_page()

    first_context, first = tab()
    log_in(first, "anna")
    labeled = _label_with_the_keyboard(first, "c")
    first_context.close()
    assert labeled == tracks[0].pk
    assert Track.objects.get(pk=labeled).consensus_label == ""  # waits for the second opinion

    second_context, second = tab()
    log_in(second, "bea")
    second.goto("/label/")
    second.wait_for_function("window.keyweb && window.keyweb.currentTrackId")
    assert second.evaluate("window.keyweb.currentTrackId") == labeled  # the same track, to someone else
    assert "anna" not in second.text_content("main")  # blind to the first label
    second.keyboard.press("g")
    second.keyboard.press("Enter")
    second.wait_for_function(f"window.keyweb.currentTrackId !== {labeled}")
    second_context.close()
    assert Annotation.objects.filter(track_id=labeled).count() == 2
    assert Track.objects.get(pk=labeled).needs_review

    review_context, review = tab()
    log_in(review, "rita")
    review.goto("/review/")
    assert review.locator(f'a[href="/review/{labeled}/"]').count() == 1
    review_context.close()


def test_an_admin_sets_the_second_opinion_share_on_the_dashboard(page, roles, admin_user):
    from annotations.selectors import second_opinion_share

    log_in(page, "ada")
    page.goto("/dashboard/")
    page.wait_for_function("!document.getElementById('second-opinion-share').disabled")
    assert page.input_value("#second-opinion-share") == "0"  # the tests' default; 10 % in a real install
    page.fill("#second-opinion-share", "25")
    page.press("#second-opinion-share", "Enter")
    page.dispatch_event("#second-opinion-share", "change")
    page.wait_for_function("document.getElementById('second-opinion-status').textContent.startsWith('Saved')")
    assert second_opinion_share() == 0.25
    assert page.console_errors == []
