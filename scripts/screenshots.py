"""Screenshots of the label page, the review page, the tracks page and the dashboard, at desktop, laptop
(1280×720) and phone (390 px) widths, saved under docs/screenshots/.

Run as `.venv/bin/python scripts/screenshots.py`. It builds a throwaway library (its own temporary var
folder, SQLite database and bundled Redis), analyses synthetic tracks with the shipped model, trains two
versions in this process, serves the app on a free port and drives Debian's Chromium through the pages.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUTPUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"

# Throwaway var folder and a bundled Redis server (the same set-up the test suite uses), then settings.
import tests.environment  # noqa: E402,F401

os.environ["KEYWEB_ANNOTATIONS_REQUIRED"] = "2"  # two opinions per track, so a disagreement needs review
os.environ["KEYWEB_TRAINING_TIME_BUDGET_S"] = "6"
os.environ["DJANGO_SETTINGS_MODULE"] = "keyweb.settings"
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the ORM runs next to Playwright's event loop

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test.testcases import LiveServerThread  # noqa: E402

from annotations.models import Track  # noqa: E402
from annotations.services.labels import LabelValue, annotation_import  # noqa: E402
from annotations.services.model_versions import model_training_request  # noqa: E402
from annotations.services.queue import annotation_submit  # noqa: E402
from annotations.services.tracks import track_import  # noqa: E402
from annotations.worker.analysis import tracks_embed  # noqa: E402
from annotations.worker.prediction import tracks_predict  # noqa: E402
from annotations.worker.training import model_train  # noqa: E402
from ml.keys import ALL_KEYS  # noqa: E402
from tests.factories import write_synthetic  # noqa: E402

USERS = {"anna": "annotator", "ben": "annotator", "rita": "reviewer", "ada": "admin"}


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def library_build() -> dict:
    call_command("migrate", verbosity=0)
    call_command("setup_keyweb", stdout=open(os.devnull, "w"))
    users = {}
    for name, role in USERS.items():
        user = User.objects.create_user(
            username=name, password=f"{name}-password-1", is_staff=role == "admin"
        )
        user.groups.add(Group.objects.get(name=role))
        users[name] = user

    step("importing 40 synthetic tracks")
    folder = Path(os.environ["KEYWEB_VAR_DIR"]) / "screenshot-audio"
    tracks, true_keys = [], {}
    for number in range(40):
        key = ALL_KEYS[(number * 7) % 24]
        path = write_synthetic(
            folder / f"{number:02d}.wav", key=key.mir_eval, seed=100 + number, seconds=40, difficulty=0.4
        )
        track = track_import(path=path, original_name=f"Demo track {number + 1:02d}.wav").track
        tracks.append(track)
        true_keys[track.pk] = key
    ids = [t.pk for t in tracks]
    Track.objects.filter(pk__in=ids).update(split=Track.Split.POOL)
    Track.objects.filter(pk__in=ids[::6]).update(split=Track.Split.TEST)
    step("analysing them with the shipped model")
    tracks_embed(track_ids=ids)
    tracks_predict(track_ids=ids)

    def label(count_from: int, count_to: int) -> None:
        for track in Track.objects.filter(pk__in=ids[count_from:count_to]):
            annotation_import(track=track, label=LabelValue.parse(true_keys[track.pk].mir_eval))

    for labels_until in (24, 30):
        label(0, labels_until)
        version, _ = model_training_request(user=users["ada"], reason="screenshots")
        step(f"training {version.name} on the labels so far")
        model_train(version_id=version.pk)
    tracks_predict(track_ids=ids)  # what the worker's re-prediction after activation does

    step("two annotators label; they disagree on one track")
    open_tracks = list(Track.objects.filter(pk__in=ids[30:]).order_by("pk"))
    for track in open_tracks[:3]:
        annotation_submit(
            user=users["anna"],
            track=track,
            label=LabelValue.parse(true_keys[track.pk].mir_eval),
            time_spent_s=21,
        )
    for offset, track in enumerate(open_tracks[:2]):
        key = true_keys[track.pk] if offset == 0 else true_keys[track.pk].relative
        annotation_submit(
            user=users["ben"], track=track, label=LabelValue.parse(key.mir_eval), time_spent_s=34
        )
    disputed = Track.objects.filter(needs_review=True).first()
    assert disputed is not None, "the disagreement should have put a track up for review"
    return {"disputed": disputed}


def log_in(page, username: str) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-password-1")
    page.press("#id_password", "Enter")
    page.wait_for_url("**/")


def main() -> None:
    started = time.monotonic()
    data = library_build()
    server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    base_url = f"http://127.0.0.1:{server.port}"
    OUTPUT.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )

        def new_page(width: int = 1400, height: int = 1000):
            # bypass_csp: the app's script-src 'self' also forbids the expressions Playwright evaluates.
            context = browser.new_context(
                base_url=base_url, viewport={"width": width, "height": height}, bypass_csp=True
            )
            return context.new_page()

        def label_page_ready(page) -> None:
            page.goto("/label/")
            page.wait_for_function("window.keyweb.player && window.keyweb.player.visuals !== null")
            # The first track starts by itself; pause it so every shot shows the same moment.
            page.evaluate("document.getElementById('audio').pause()")

        step("label page")
        page = new_page()
        log_in(page, "anna")
        label_page_ready(page)
        for _ in range(6):  # a held-out track comes without suggestions: show it, then skip to a pool one
            if not page.evaluate("window.keyweb.track && window.keyweb.track.blind"):
                break
            page.screenshot(path=str(OUTPUT / "label-held-out.png"))
            previous = page.evaluate("window.keyweb.currentTrackId")
            page.keyboard.press("s")
            page.wait_for_function("previous => window.keyweb.currentTrackId !== previous", arg=previous)
            page.wait_for_function("window.keyweb.player.visuals !== null")
            page.evaluate("document.getElementById('audio').pause()")
        box = page.locator("#waveform").bounding_box()
        left = box["x"] + 34
        width = box["width"] - 34
        page.mouse.move(left + width * 0.30, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(left + width * 0.55, box["y"] + 40, steps=8)
        page.mouse.up()
        page.wait_for_timeout(1500)
        page.keyboard.press("Space")
        page.keyboard.press("k")
        # Nothing is preselected: pick the model's first suggestion, as a listener would, to hear the drone.
        page.evaluate("window.keyweb.picker.select((window.keyweb.track.suggestions[0] || {index: 0}).index)")
        page.keyboard.press("o")
        page.wait_for_timeout(300)
        page.screenshot(path=str(OUTPUT / "label.png"), full_page=True)
        page.keyboard.press("Escape")
        page.keyboard.press("?")
        page.screenshot(path=str(OUTPUT / "label-shortcuts.png"), full_page=True)

        step("label page on a 1280×720 laptop and a 390 px phone")
        page = new_page(1280, 720)
        log_in(page, "anna")
        label_page_ready(page)
        page.screenshot(path=str(OUTPUT / "label-laptop.png"))
        page = new_page(390, 844)
        log_in(page, "anna")
        label_page_ready(page)
        page.screenshot(path=str(OUTPUT / "label-phone.png"), full_page=True)

        step("tracks page")
        page = new_page()
        log_in(page, "ada")
        page.goto("/tracks/?state=labeled")
        page.screenshot(path=str(OUTPUT / "tracks.png"), full_page=True)
        page = new_page(390, 844)
        log_in(page, "ada")
        page.goto("/tracks/")
        page.screenshot(path=str(OUTPUT / "tracks-phone.png"))

        step("review page")
        page = new_page()
        log_in(page, "rita")
        page.goto(f"/review/{data['disputed'].pk}/")
        page.wait_for_function("window.keyweb.player && window.keyweb.player.visuals !== null")
        page.screenshot(path=str(OUTPUT / "review.png"), full_page=True)
        page = new_page(390, 844)
        log_in(page, "rita")
        page.goto(f"/review/{data['disputed'].pk}/")
        page.wait_for_function("window.keyweb.player && window.keyweb.player.visuals !== null")
        page.screenshot(path=str(OUTPUT / "review-phone.png"), full_page=True)

        step("dashboard")
        page = new_page()
        log_in(page, "ada")
        page.goto("/dashboard/")
        page.wait_for_selector("#chart-confusion svg")
        page.wait_for_selector("#agreement-table table")
        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
        page = new_page(390, 844)
        log_in(page, "ada")
        page.goto("/dashboard/")
        page.wait_for_selector("#chart-confusion svg")
        page.screenshot(path=str(OUTPUT / "dashboard-phone.png"))

        step("home page")
        page = new_page()
        log_in(page, "anna")
        page.screenshot(path=str(OUTPUT / "home.png"), full_page=True)
        browser.close()
    server.terminate()
    print(f"screenshots in {OUTPUT.relative_to(ROOT)}/ after {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
