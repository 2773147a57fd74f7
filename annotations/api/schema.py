"""OpenAPI generation: every operation documents the shared error body for the errors it can answer."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The field at fault (dotted path), or null")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField(help_text="Machine-readable: invalid, not_found, permission_denied, ...")
    detail = serializers.CharField(help_text="One sentence for a person")
    errors = ErrorItemSerializer(many=True)


ERROR_DESCRIPTIONS = {
    "400": "Bad input; `errors` names each field and what is wrong with it",
    "401": "Not logged in: send `Authorization: Token <token>` or a session cookie",
    "403": "Logged in, but your role may not do this",
    "404": "No such object (or not visible to you)",
    "405": "Method not allowed",
    "406": "Not acceptable",
    "415": "Unsupported media type",
    "429": "Too many requests; retry after the time in `detail`",
}


class KeyWebAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        extra = dict(ERROR_DESCRIPTIONS)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            extra["409"] = "The request conflicts with the current state; `detail` says how"
        if self.method in ("POST", "PUT", "PATCH"):
            extra["413"] = "The upload is over the size limit"
        for code, description in extra.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                responses[code]["description"] = description
        return responses
