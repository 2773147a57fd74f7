"""Blind labeling: when an admin turns it on, annotators see "Track 1234" instead of titles, artists and
file names (they often name the key); reviewers and admins still see everything. One rule for the pages
and the API: the setting is read by selectors.names_hidden_for and written by services.labels."""

from __future__ import annotations

from ..models import Track
from ..selectors import names_hidden_for


def track_blind_name(track: Track) -> str:
    return f"Track {track.pk}"


def names_hidden_in(context: dict) -> bool:
    """names_hidden_for the request's user, decided once per request and kept in the serializer context."""
    if "names_hidden" not in context:
        request = context.get("request")
        context["names_hidden"] = bool(request) and names_hidden_for(request.user)
    return context["names_hidden"]


class BlindNamesMixin:
    """For track serializers: title becomes "Track <id>", artist and file name empty, for a request
    whose user may not see names. Decided once per request (kept in the serializer context)."""

    NAME_FIELDS = ("artist", "original_filename", "filename")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if names_hidden_in(self.context):
            if "title" in data:
                data["title"] = track_blind_name(instance)
            for field in self.NAME_FIELDS:
                if field in data:
                    data[field] = ""
        return data
