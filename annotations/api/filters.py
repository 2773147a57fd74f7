"""Query-string filters. Every value that does not parse is a 400 naming the parameter (django-filter
turns form errors into a ValidationError, which annotations.api.errors shapes), and the OpenAPI schema
states the same types and bounds the filters enforce (annotations.api.schema.BoundedFilterExtension).

A message that quotes the client's value passes it as a parameter, never inside the message text: DRF
formats `message % params`, so a `%` in the value would otherwise be a TypeError and a 500."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q

from ml.keys import KeyParseError

from ..models import Annotation, Track
from ..services.labels import LabelValue


class LabelFormField(forms.CharField):
    """A key in any notation or a no-key label; `keys_only` refuses the no-key labels."""

    def __init__(self, *args, keys_only: bool = False, **kwargs):
        self.keys_only = keys_only
        super().__init__(*args, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        try:
            parsed = LabelValue.parse(value)
        except KeyParseError as error:
            raise forms.ValidationError("%(reason)s", params={"reason": str(error)}) from error
        if self.keys_only and parsed.key is None:
            raise forms.ValidationError(
                "%(value)r is not a key (the model only predicts the 24 keys)", params={"value": value}
            )
        return parsed


class LabelFilter(django_filters.Filter):
    field_class = LabelFormField


class StrictBooleanField(forms.Field):
    TRUE = ("true", "1", "yes")
    FALSE = ("false", "0", "no")

    def clean(self, value):
        if value is None:  # the parameter is absent
            return None
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise forms.ValidationError("%(value)r is not a boolean; use true or false", params={"value": value})


class StrictBooleanFilter(django_filters.Filter):
    """A boolean that refuses what it doesn't understand (django-filter's own ignores it silently), an empty
    value included: `labeled=` is a mistake, not a request for everything."""

    field_class = StrictBooleanField


class StrictChoiceField(django_filters.fields.ChoiceField):
    def clean(self, value):
        if value == "":
            raise forms.ValidationError("empty; choose one of the listed values or leave the parameter out")
        return super().clean(value)


class StrictChoiceFilter(django_filters.ChoiceFilter):
    """One of the choices (the schema's enum); an empty value is refused rather than ignored."""

    field_class = StrictChoiceField


class IdFilter(django_filters.NumberFilter):
    """A row id: a whole number, 1 or more (what the schema says)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        super().__init__(*args, **kwargs)


class ProbabilityFilter(django_filters.NumberFilter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 1)
        super().__init__(*args, **kwargs)


class TrackFilter(django_filters.FilterSet):
    key = LabelFilter(method="filter_key", help_text="Consensus key in any notation, or a no-key label")
    predicted_key = LabelFilter(
        method="filter_predicted_key",
        keys_only=True,
        help_text="The active model's predicted key, in any notation",
    )
    confidence_min = ProbabilityFilter(
        field_name="active_confidence", lookup_expr="gte", help_text="Active model's confidence ≥ this (0–1)"
    )
    confidence_max = ProbabilityFilter(
        field_name="active_confidence", lookup_expr="lte", help_text="Active model's confidence ≤ this (0–1)"
    )
    labeled = StrictBooleanFilter(method="filter_labeled", help_text="Has a consensus label (true/false)")
    needs_review = StrictBooleanFilter(field_name="needs_review", help_text="Annotators disagree")
    split = StrictChoiceFilter(choices=Track.Split.choices)
    status = StrictChoiceFilter(choices=Track.Status.choices)
    search = django_filters.CharFilter(
        method="filter_search", max_length=200, help_text="Text in the title, artist or file name"
    )
    ordering = django_filters.OrderingFilter(
        fields=(
            ("id", "id"),
            ("created_at", "created_at"),
            ("title", "title"),
            ("artist", "artist"),
            ("active_confidence", "confidence"),
            ("priority", "priority"),
        )
    )

    class Meta:
        model = Track
        fields = []

    def filter_key(self, queryset, name, value: LabelValue | None):
        if value is None:
            return queryset
        if value.key is None:
            return queryset.filter(consensus_label=value.label)
        return queryset.filter(consensus_label=Annotation.Label.KEY, consensus_key=value.key.index)

    def filter_predicted_key(self, queryset, name, value: LabelValue | None):
        return queryset if value is None else queryset.filter(active_key_index=value.key.index)

    def filter_labeled(self, queryset, name, value: bool | None):
        if value is None:
            return queryset
        return queryset.exclude(consensus_label="") if value else queryset.filter(consensus_label="")

    def filter_search(self, queryset, name, value: str):
        if not value:
            return queryset
        return queryset.filter(
            Q(title__icontains=value) | Q(artist__icontains=value) | Q(original_filename__icontains=value)
        )


class AnnotationFilter(django_filters.FilterSet):
    track = IdFilter(field_name="track_id")
    annotator = django_filters.CharFilter(field_name="annotator__username", max_length=150)
    source = StrictChoiceFilter(choices=Annotation.Source.choices)
    label = StrictChoiceFilter(choices=Annotation.Label.choices)
    key = LabelFilter(method="filter_key", keys_only=True, help_text="Key in any notation")

    class Meta:
        model = Annotation
        fields = []

    def filter_key(self, queryset, name, value: LabelValue | None):
        return queryset if value is None else queryset.filter(key_index=value.key.index)
