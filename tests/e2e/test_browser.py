"""End to end in Chromium: an annotator labels by keyboard, listens, uses the reference tones, skips and
undoes; an admin retrains through a real Celery worker and sees the metrics; a bad upload explains itself."""

from __future__ import annotations

import statistics

import pytest

from annotations.models import Annotation, ModelVersion, Skip, Track
from tests.e2e.conftest import log_in
from tests.e2e.seed import tracks_analyse, tracks_import

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _current_track(page) -> int | None:
    return page.evaluate("window.keyweb.currentTrackId")


def _wait_for_new_track(page, previous: int) -> int:
    page.wait_for_function("previous => window.keyweb.currentTrackId !== previous", arg=previous)
    return _current_track(page)


@pytest.fixture
def library(tmp_path, roles, annotator) -> list[Track]:
    tracks = tracks_import(tmp_path / "library", count=6)
    # Pool tracks, so each comes with the model's suggestions (held-out ones come without: test_labeling.py).
    Track.objects.filter(pk__in=[t.pk for t in tracks]).update(split=Track.Split.POOL)
    tracks_analyse(tracks)
    assert Track.objects.filter(status=Track.Status.READY, predictions__isnull=False).count() == 6
    return tracks


def test_annotator_labels_three_tracks_by_keyboard(page, library):
    log_in(page, "anna")
    # The stylesheet and scripts are served by the app itself.
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.topbar')).backgroundColor")
        == "rgb(22, 35, 58)"
    )
    assert page.text_content('[data-testid="queue-size"]').strip() == "6"

    page.goto("/label/")
    page.wait_for_function("window.keyweb && window.keyweb.player && window.keyweb.player.visuals !== null")
    first = _current_track(page)
    assert first in {t.pk for t in library}
    # The suggestions are shown, never preselected: the circle starts with no key picked.
    assert page.evaluate("window.keyweb.picker.selected") is None
    assert page.locator("#suggestions li").count() == 3
    assert "Keyboard shortcuts" in page.text_content("#shortcuts")

    # The first track starts by itself ("Play new tracks automatically" is ticked); Space pauses it.
    page.wait_for_function("!document.getElementById('audio').paused")
    page.keyboard.press("Space")
    assert page.evaluate("document.getElementById('audio').paused")
    page.keyboard.press("Home")
    assert page.evaluate("document.getElementById('audio').currentTime") < 0.5

    # Play: the media element's clock advances.
    page.keyboard.press("Space")
    page.wait_for_function("document.getElementById('audio').currentTime > 0.5", timeout=10_000)
    page.keyboard.press("Space")
    assert page.evaluate("document.getElementById('audio').paused")

    # Seek by clicking the waveform: three quarters of the way in.
    box = page.locator("#waveform").bounding_box()
    page.mouse.click(box["x"] + 34 + (box["width"] - 34) * 0.75, box["y"] + box["height"] / 2)
    duration = page.evaluate("window.keyweb.player.duration")
    assert page.evaluate("document.getElementById('audio').currentTime") > duration * 0.6
    page.keyboard.press("Space")  # the click started playback; pause again

    # The reference tones: a drone on, off, then a cadence, all synthesized with Web Audio.
    # Nothing is preselected (the model's key would anchor the listener): pick C to hear its references.
    page.keyboard.press("c")
    assert page.evaluate("window.keyweb.picker.selected") == 0
    started = page.evaluate("window.keyweb.oscillatorsStarted")
    page.keyboard.press("o")
    page.wait_for_function("window.keyweb.referencePlaying === true")
    assert page.evaluate("window.keyweb.oscillatorsStarted") >= started + 3
    assert page.get_attribute("#drone-toggle", "aria-pressed") == "true"
    page.keyboard.press("o")
    page.wait_for_function("window.keyweb.referencePlaying === false")
    page.keyboard.press("i")
    page.wait_for_function("window.keyweb.referencePlaying === true")
    assert page.evaluate("window.keyweb.oscillatorsStarted") >= started + 3 + 16
    page.keyboard.press("Escape")

    # Track 1: confirm the model's first suggestion with one keystroke.
    suggested = page.evaluate("window.keyweb.track.suggestions[0].index")
    page.keyboard.press("1")
    second = _wait_for_new_track(page, first)
    assert "Saved" in page.text_content("#status")

    # Track 2: pick E on the circle, switch to the relative key, submit with Enter.
    page.keyboard.press("e")
    page.keyboard.press("r")
    picked = page.evaluate("window.keyweb.picker.selected")
    assert picked in (13, 7)  # E major → its relative C# minor, or E minor → G major
    page.keyboard.press("Enter")
    third = _wait_for_new_track(page, second)

    # Track 3: a tuning offset typed in its field, then "no key".
    page.keyboard.press("t")
    page.keyboard.type("-12")
    page.keyboard.press("Escape")
    page.keyboard.press("x")
    fourth = _wait_for_new_track(page, third)

    labels = {a.track_id: a for a in Annotation.objects.filter(annotator__username="anna")}
    assert labels[first].key_index == suggested
    assert labels[second].key_index == picked
    assert labels[third].label == "no_key" and labels[third].tuning_cents == -12.0
    assert all(a.time_spent_s is not None and a.time_spent_s >= 0 for a in labels.values())
    assert page.text_content("#progress-total").strip() == "3"

    # Skip the fourth track, then undo: the third comes back with its label withdrawn.
    page.keyboard.press("s")
    _wait_for_new_track(page, fourth)
    assert Skip.objects.filter(track_id=fourth, annotator__username="anna").exists()
    page.keyboard.press("u")
    page.wait_for_function("previous => window.keyweb.currentTrackId === previous", arg=third)
    assert "Withdrew your label" in page.text_content("#status")
    assert not Annotation.objects.filter(track_id=third).exists()
    assert page.input_value("#tuning") == "-12"

    timings = page.evaluate("window.keyweb.timings")
    assert len(timings) == 3
    print(
        f"\nsubmit→next round trips (ms): {[round(t) for t in timings]}, p50 {statistics.median(timings):.0f} ms"
    )
    assert page.console_errors == []


@pytest.fixture
def short_training(monkeypatch):
    """The worker subprocess reads its settings from the environment: a small search budget."""
    monkeypatch.setenv("KEYWEB_TRAINING_TIME_BUDGET_S", "8")


def test_admin_retrains_and_sees_the_new_metrics(
    page, tmp_path, roles, admin_user, short_training, celery_worker_process
):
    # 24 pool tracks: at 20 or more the trainer searches heads within the time budget (below that it
    # trains one fixed config to the end, ~2 minutes on a small CPU). Every fifth track is held out
    # so the new version has test metrics to show.
    tracks = tracks_import(tmp_path / "labeled", count=30, labeled=True, seconds=8)
    Track.objects.filter(pk__in=[t.pk for t in tracks]).update(split=Track.Split.POOL)
    Track.objects.filter(pk__in=[t.pk for t in tracks[::5]]).update(split=Track.Split.TEST)
    log_in(page, "ada")
    page.goto("/dashboard/")
    assert page.locator('[data-testid="tracks-by-status"]').is_visible()
    page.click("#retrain")
    page.wait_for_function("window.keyweb.trainingStatus && window.keyweb.trainingStatus.version !== null")
    version_id = page.evaluate("window.keyweb.trainingStatus.version.id")
    row = page.locator(f'tr[data-version-id="{version_id}"]')
    try:
        row.locator("xpath=self::*[@data-status='ready' or @data-status='failed']").wait_for(timeout=240_000)
    except Exception:
        version = ModelVersion.objects.get(pk=version_id)
        log = celery_worker_process.log_path.read_text()[-3000:]
        raise AssertionError(
            f"training did not finish: {version.status} {version.progress} {version.error}\n{log}"
        ) from None
    version = ModelVersion.objects.get(pk=version_id)
    assert version.status == ModelVersion.Status.READY, f"training failed: {version.error}"
    weighted = row.locator(".weighted").text_content().strip()
    assert weighted == f"{version.metrics['weighted']:.3f}"
    # Under it, where the score could land on another draw of as many held-out tracks.
    low, high = version.metrics["weighted_ci95"]
    assert row.locator('[data-testid="weighted-ci"]').text_content() == f"{low:.2f}–{high:.2f}"
    assert version.n_training_labels == 24 and version.metrics["n"] == 6
    assert "ready" in page.text_content("#training-text")
    assert page.locator("#chart-learning circle").count() >= 1
    assert page.locator("#chart-confusion rect").count() == 24 * 24
    assert page.console_errors == []


def test_a_bad_upload_shows_its_error(page, tmp_path, roles, admin_user):
    bad = tmp_path / "shopping.wav"
    bad.write_text("eggs, milk, bread\n" * 50)
    log_in(page, "ada")
    page.goto("/upload/")
    page.set_input_files("#id_files", str(bad))
    page.click("button[type=submit].primary")
    alert = page.locator(".results [role=alert]")
    alert.wait_for()
    assert "not an audio file" in alert.text_content()
    assert "shopping.wav" in page.text_content(".results")
    assert Track.objects.count() == 0
