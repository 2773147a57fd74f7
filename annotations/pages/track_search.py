"""The tracks page's search form: text in title, artist or file name, and filters on the label, the
active model's key and confidence, labeling state and split. A form, so blank fields mean "any"."""

from __future__ import annotations

from django import forms
from django.db.models import Q, QuerySet

from ml.keys import ALL_KEYS, NO_KEY_LABELS

from ..models import Annotation, Track
from ..selectors import tracks_with_active_prediction

ANY = [("", "any")]
LABEL_NAMES = dict(Annotation.Label.choices)
STATES = [("labeled", "labeled"), ("unlabeled", "unlabeled"), ("disputed", "disputed (needs review)")]


class TrackSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search", strip=True)
    label = forms.ChoiceField(
        required=False,
        label="Label",
        choices=ANY
        + [(key.mir_eval, key.mir_eval) for key in ALL_KEYS]
        + [(label, LABEL_NAMES[label]) for label in NO_KEY_LABELS],
    )
    predicted = forms.ChoiceField(
        required=False,
        label="Predicted key",
        choices=ANY + [(key.mir_eval, key.mir_eval) for key in ALL_KEYS],
    )
    confidence_min = forms.IntegerField(required=False, min_value=0, max_value=100, label="Confidence from %")
    confidence_max = forms.IntegerField(required=False, min_value=0, max_value=100, label="to %")
    state = forms.ChoiceField(required=False, label="State", choices=ANY + STATES)
    split = forms.ChoiceField(required=False, label="Split", choices=ANY + list(Track.Split.choices))

    def clean(self):
        values = super().clean()
        low, high = values.get("confidence_min"), values.get("confidence_max")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("the confidence range is empty: 'from' is above 'to'")
        return values


def tracks_search(
    *,
    text: str = "",
    label: str = "",
    predicted: str = "",
    confidence_min: int | None = None,
    confidence_max: int | None = None,
    state: str = "",
    split: str = "",
    names_hidden: bool = False,
) -> QuerySet[Track]:
    """Tracks matching the search, newest first, with the active model's key and confidence attached.
    With `names_hidden` (blind labeling) the text matches only a track number, so a search cannot find
    a key in a name. A read the lead may move into annotations.selectors."""
    tracks = tracks_with_active_prediction().order_by("-id")
    if text and names_hidden:
        number = text.removeprefix("Track ").strip()
        tracks = tracks.filter(pk=int(number)) if number.isdigit() else tracks.none()
    elif text:
        tracks = tracks.filter(
            Q(title__icontains=text) | Q(artist__icontains=text) | Q(original_filename__icontains=text)
        )
    keys = {key.mir_eval: key for key in ALL_KEYS}
    if label in keys:
        tracks = tracks.filter(consensus_label=Annotation.Label.KEY, consensus_key=keys[label].index)
    elif label:
        tracks = tracks.filter(consensus_label=label)
    if predicted:
        tracks = tracks.filter(active_key_index=keys[predicted].index)
    if confidence_min is not None:
        tracks = tracks.filter(active_confidence__gte=confidence_min / 100)
    if confidence_max is not None:
        tracks = tracks.filter(active_confidence__lte=confidence_max / 100)
    if state == "labeled":
        tracks = tracks.exclude(consensus_label="")
    elif state == "unlabeled":
        tracks = tracks.filter(consensus_label="")
    elif state == "disputed":
        tracks = tracks.filter(needs_review=True)
    if split:
        tracks = tracks.filter(split=split)
    return tracks


def tracks_for_form(form: TrackSearchForm, *, names_hidden: bool = False) -> QuerySet[Track]:
    values = form.cleaned_data
    return tracks_search(
        text=values["q"],
        label=values["label"],
        predicted=values["predicted"],
        confidence_min=values["confidence_min"],
        confidence_max=values["confidence_max"],
        state=values["state"],
        split=values["split"],
        names_hidden=names_hidden,
    )
