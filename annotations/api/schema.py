"""OpenAPI generation: every operation documents the shared error body for the errors it can answer, and
query parameters carry the types and bounds the filters enforce."""

from __future__ import annotations

from django import forms
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from .filters import StrictBooleanField


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


class BoundedFilterExtension(DjangoFilterExtension):
    """django-filter parameters as our filters check them: booleans as booleans, whole numbers as integers,
    `min_value`/`max_value` as minimum/maximum (drf-spectacular's own extension leaves all three out, so
    the schema promised values the API refuses)."""

    priority = 1

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        parameters = super().resolve_filter_field(
            auto_schema, model, filterset_class, field_name, filter_field
        )
        field_class = filter_field.field_class
        for parameter in parameters:
            schema = parameter["schema"]
            if issubclass(field_class, StrictBooleanField):
                schema["type"] = "boolean"
            elif issubclass(field_class, forms.IntegerField) and not issubclass(
                field_class, forms.FloatField | forms.DecimalField
            ):
                schema["type"] = "integer"
            if filter_field.extra.get("min_value") is not None:
                schema["minimum"] = filter_field.extra["min_value"]
            if filter_field.extra.get("max_value") is not None:
                schema["maximum"] = filter_field.extra["max_value"]
        return parameters
