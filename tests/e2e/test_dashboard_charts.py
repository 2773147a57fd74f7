"""In Chromium: the dashboard's confusion matrix shows each cell's count and a colour scale, and two
versions trained on the same number of labels stay apart on the learning curve."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotations.models import ModelVersion
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _version(name: str, *, labels: int, weighted: float, confusion, active: bool = False) -> ModelVersion:
    return ModelVersion.objects.create(
        name=name,
        backbone="pitch_class",
        status=ModelVersion.Status.READY,
        is_active=active,
        n_training_labels=labels,
        trained_at=timezone.now(),
        metrics={"weighted": weighted, "n": 9, "ece": 0.05, "confusion": confusion},
    )


def test_confusion_counts_colour_scale_and_a_readable_learning_curve(page, roles, admin_user):
    confusion = [[0] * 24 for _ in range(24)]
    confusion[0][0] = 5  # C major right five times
    confusion[0][7] = 2  # ... taken for G major twice (a fifth)
    confusion[21][0] = 1  # A minor taken for its relative C major once
    confusion[21][21] = 1
    ModelVersion.objects.update(is_active=False)
    _version("v1", labels=40, weighted=0.61, confusion=confusion)
    _version("v2", labels=40, weighted=0.66, confusion=confusion, active=True)
    log_in(page, "ada")
    page.goto("/dashboard/")
    chart = page.locator("#chart-confusion")
    chart.locator("svg").wait_for()
    assert chart.locator("rect").count() == 24 * 24
    counts = chart.locator("text.cell-count").all_text_contents()
    assert sorted(counts) == ["1", "1", "2", "5"]  # the hand count: one number per non-empty cell
    assert chart.locator('rect[data-count="5"]').count() == 1
    assert chart.locator("path.heat-scale").count() == 1
    scale = chart.locator("svg").text_content()
    assert "5 tracks" in scale and "9 tracks" in scale  # the scale's top, and the total

    dots = page.locator("#chart-learning circle")
    assert dots.count() == 2
    centres = {dots.nth(i).get_attribute("cx") for i in range(2)}
    assert len(centres) == 2  # same number of labels, still two separate points
    assert page.console_errors == []


def test_the_dashboard_shows_agreement_between_annotators(page, roles, admin_user, annotator, settings):
    from django.contrib.auth.models import User

    from tests.annotations.api.helpers import annotate, make_track

    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    bob = User.objects.create_user(username="bob", password="bob-password-1")
    bob.groups.add(roles["annotator"])
    same, different = make_track(), make_track()
    annotate(same, annotator, "C major")
    annotate(same, bob, "C major")
    annotate(different, annotator, "C major")
    annotate(different, bob, "G major")  # a fifth apart, disputed: no consensus
    log_in(page, "ada")
    page.goto("/dashboard/")
    row = page.locator('#agreement-table tr[data-username="anna"]')
    row.wait_for()
    cells = row.locator("td").all_text_contents()
    # 2 labels; consensus only on `same` (1 track, agreed); with bob: 1 of 2 the same, weighted
    # (1 + (0.5 + 0) / 2) / 2 = 0.625.
    assert cells == ["2", "1", "100%", "100%", "bob: 50% · 63% · 2"]
    assert page.console_errors == []


def test_versions_are_compared_on_the_same_held_out_tracks(page, roles, admin_user):
    ModelVersion.objects.update(is_active=False)
    ModelVersion.objects.create(
        name="shipped",
        backbone="pitch_class",
        status="ready",
        is_default=True,
        metrics={"weighted": 0.8, "n": 240},
    )
    trained = ModelVersion.objects.create(
        name="v2",
        backbone="pitch_class",
        status="ready",
        is_active=True,
        metrics={
            "weighted": 0.71,
            "n": 11,
            "active_weighted_same_test": 0.64,
            "activation": {"n": 11, "activate": True, "compared_with": "shipped"},
        },
    )
    log_in(page, "ada")
    page.goto("/dashboard/")
    cell = page.locator(f'[data-comparison-for="{trained.pk}"]')
    page.wait_for_function(
        f"document.querySelector('[data-comparison-for=\"{trained.pk}\"]').textContent !== ''"
    )
    assert cell.text_content() == "vs shipped on the same 11 held-out tracks: 0.710 vs 0.640"
    assert "not comparable" in page.text_content("tr.default-row")
    assert page.console_errors == []
