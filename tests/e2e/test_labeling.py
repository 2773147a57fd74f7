"""In Chromium: a reviewer settles disputed tracks with one click and by keyboard; a held-out track is
labeled without the model's suggestions and the page says why."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotations.models import Annotation, Skip, Track
from annotations.services.labels import track_consensus_refresh
from tests.e2e.conftest import log_in
from tests.e2e.seed import tracks_analyse, tracks_import

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def reviewer(roles) -> User:
    user = User.objects.create_user(username="rita", password="rita-password-1")
    user.groups.add(roles["reviewer"])
    return user


@pytest.fixture
def disputed(tmp_path, roles, settings) -> list[Track]:
    """Two tracks, each labeled C major by ben and G major by cleo: both wait for review."""
    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    tracks = tracks_import(tmp_path / "disputed", count=2, seconds=4)
    for name, key in (("ben", 0), ("cleo", 7)):
        user = User.objects.create_user(username=name, password=f"{name}-password-1")
        user.groups.add(roles["annotator"])
        for track in tracks:
            Annotation.objects.create(track=track, annotator=user, label="key", key_index=key)
    tracks = [track_consensus_refresh(track=track) for track in tracks]
    assert all(track.needs_review for track in tracks)
    return tracks


def test_a_reviewer_settles_disputed_tracks_by_one_click_and_by_keyboard(page, disputed, reviewer):
    first, second = disputed
    log_in(page, "rita")
    page.goto(f"/review/{first.pk}/")
    page.wait_for_function("window.keyweb && window.keyweb.player")
    # One click on an annotator's label decides; the page moves on to the next disputed track.
    page.click('.decide-quick[data-label="G major"]')
    page.wait_for_url(f"**/review/{second.pk}/")
    first.refresh_from_db()
    assert (first.consensus_label, first.consensus_key, first.needs_review) == ("key", 7, False)
    assert "Decided G major" in page.text_content("ul.messages")

    # The keyboard: A picks A major, R its relative (F# minor), Enter decides.
    page.keyboard.press("a")
    page.keyboard.press("r")
    assert page.input_value("#id_label") == "F# minor"
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/")
    second.refresh_from_db()
    assert (second.consensus_key, second.needs_review) == (18, False)
    assert "No disputed tracks" in page.text_content("main")
    assert page.console_errors == []


def test_a_review_without_a_choice_says_so_and_decides_nothing(page, disputed, reviewer):
    log_in(page, "rita")
    page.goto(f"/review/{disputed[0].pk}/")
    page.click("#decide")
    page.locator("#status.error").wait_for()
    assert "Choose the key" in page.text_content("#status")
    disputed[0].refresh_from_db()
    assert disputed[0].needs_review


def test_a_held_out_track_is_labeled_without_suggestions(page, tmp_path, roles, annotator):
    tracks = tracks_import(tmp_path / "held-out", count=1, seconds=4)
    Track.objects.filter(pk=tracks[0].pk).update(split=Track.Split.TEST)
    tracks_analyse(tracks)
    assert Track.objects.get(pk=tracks[0].pk).predictions.exists()  # predicted, yet not shown
    log_in(page, "anna")
    page.goto("/label/")
    page.wait_for_function("window.keyweb && window.keyweb.currentTrackId !== undefined")
    page.wait_for_function("window.keyweb.currentTrackId !== null")
    assert page.locator("#suggestions li").count() == 0
    assert "Held-out track" in page.text_content("#model-name")
    assert page.evaluate("window.keyweb.picker.selected") is None
    page.keyboard.press("1")
    assert "no suggestions" in page.text_content("#status")
    assert not Annotation.objects.exists()
    assert page.console_errors == []


@pytest.fixture
def pool(tmp_path, roles, annotator) -> list[Track]:
    tracks = tracks_import(tmp_path / "pool", count=4, seconds=4)
    Track.objects.filter(pk__in=[t.pk for t in tracks]).update(split=Track.Split.POOL)
    tracks_analyse(tracks)
    return tracks


def _label_page(page) -> int:
    page.goto("/label/")
    page.wait_for_function("window.keyweb && window.keyweb.currentTrackId")
    return page.evaluate("window.keyweb.currentTrackId")


def test_playback_speed_changes_without_changing_pitch_and_the_first_track_autoplays(page, pool):
    log_in(page, "anna")
    first = _label_page(page)
    # "Play new tracks automatically" is ticked: the first track plays without a keystroke.
    page.wait_for_function("!document.getElementById('audio').paused")
    audio = "document.getElementById('audio')"
    page.keyboard.press("<")
    assert page.evaluate(f"[{audio}.playbackRate, {audio}.preservesPitch]") == [0.75, True]
    page.keyboard.press("<")
    assert page.evaluate(f"{audio}.playbackRate") == 0.5
    assert page.get_attribute('[data-speed="0.5"]', "aria-pressed") == "true"
    page.keyboard.press("1")  # the next track keeps the chosen speed
    page.wait_for_function("first => window.keyweb.currentTrackId !== first", arg=first)
    assert page.evaluate(f"[{audio}.playbackRate, {audio}.preservesPitch]") == [0.5, True]
    page.click('[data-speed="1"]')
    assert page.evaluate(f"{audio}.playbackRate") == 1
    page.keyboard.press(">")
    assert page.evaluate(f"{audio}.playbackRate") == 1  # 1× is the fastest
    assert page.console_errors == []


def test_a_stale_tab_moves_on_by_itself_with_a_notice(page, pool):
    log_in(page, "anna")
    first = _label_page(page)
    other = page.context.new_page()
    other.console_errors = []
    assert _label_page(other) == first  # one lease per person: both tabs show the same track
    other.keyboard.press("1")
    other.wait_for_function("first => window.keyweb.currentTrackId !== first", arg=first)
    moved_to = other.evaluate("window.keyweb.currentTrackId")

    # Coming back to the first tab: it notices and shows the track this person holds now.
    page.bring_to_front()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_function("to => window.keyweb.currentTrackId === to", arg=moved_to)
    assert "another tab" in page.text_content("#status")

    # A submit from a tab that is behind: nothing saved twice, and the tab moves on.
    other.keyboard.press("x")
    other.wait_for_function("to => window.keyweb.currentTrackId !== to", arg=moved_to)
    page.keyboard.press("1")
    page.wait_for_function("to => window.keyweb.currentTrackId !== to", arg=moved_to)
    assert "already labeled" in page.text_content("#status")
    assert Annotation.objects.filter(track_id=moved_to).count() == 1
    # Chromium logs the refused submit itself ("... status of 409 (Conflict)"); nothing else may fail.
    unexpected = [e for e in page.console_errors + other.console_errors if "409 (Conflict)" not in e]
    assert unexpected == []


def test_skipped_tracks_are_counted_and_can_be_put_back(page, pool):
    log_in(page, "anna")
    first = _label_page(page)
    assert page.text_content("#skipped-count") == "0"
    page.keyboard.press("s")
    page.wait_for_function("first => window.keyweb.currentTrackId !== first", arg=first)
    page.wait_for_function("document.getElementById('skipped-count').textContent === '1'")
    waiting = int(page.text_content("#progress-queue"))
    page.click("#skipped-box summary")
    page.click(f'#skipped-list li[data-track-id="{first}"] .put-back')
    page.wait_for_function("document.getElementById('skipped-count').textContent === '0'")
    page.wait_for_function(
        "n => Number(document.getElementById('progress-queue').textContent) === n + 1", arg=waiting
    )
    assert "Put back" in page.text_content("#status")
    assert not Skip.objects.filter(track_id=first).exists()
    assert page.console_errors == []


def test_blind_mode_hides_names_from_an_annotator_and_not_from_an_admin(
    page, tmp_path, roles, annotator, admin_user
):
    tracks = tracks_import(tmp_path / "named", count=1, seconds=4)
    Track.objects.filter(pk=tracks[0].pk).update(
        title="Sunrise in A major", artist="DJ Key", split=Track.Split.POOL, status=Track.Status.READY
    )
    log_in(page, "ada")
    page.goto("/dashboard/")
    box = page.locator("#blind-names")
    box.wait_for()
    page.wait_for_function("!document.getElementById('blind-names').disabled")
    box.check()
    page.wait_for_function("document.getElementById('blind-status').textContent.startsWith('On')")
    page.goto("/tracks/")
    assert "Sunrise in A major" in page.text_content("table.tracks")  # admins still see names

    base_url = page.url.split("/tracks/")[0]
    annotator_tab = page.context.browser.new_context(base_url=base_url, bypass_csp=True).new_page()
    log_in(annotator_tab, "anna")
    annotator_tab.goto("/label/")
    annotator_tab.wait_for_function("window.keyweb && window.keyweb.currentTrackId")
    assert annotator_tab.text_content("#track-title") == f"Track {tracks[0].pk}"
    body = annotator_tab.text_content("body")
    assert (
        "Sunrise" not in body
        and "DJ Key" not in body
        and "A major" not in annotator_tab.text_content("#workspace .player")
    )
    annotator_tab.goto("/tracks/")
    assert "Sunrise" not in annotator_tab.text_content("main")
    annotator_tab.context.close()
    assert page.console_errors == []
