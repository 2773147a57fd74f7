"""One JSON error shape for the whole API, and JSON 404/500 pages for /api/ paths.

Every error body is {"status": 413, "code": "payload_too_large", "detail": "...", "errors": [{"field":
"files", "message": "..."}]}: `detail` is one sentence for a person, `errors` names each field at fault.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from ml.keys import KeyParseError

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The upload is larger than the server accepts."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def field_error(field: str, message: str) -> exceptions.ValidationError:
    """A 400 that names the field at fault."""
    return exceptions.ValidationError({field: [message]})


def _flatten(detail, prefix: str | None = None) -> list[dict]:
    """DRF's nested error detail → [{"field": "a.0.b", "message": "..."}]; non-field errors get field null."""
    if isinstance(detail, dict):
        errors = []
        for name, value in detail.items():
            if name in ("non_field_errors", "__all__"):
                errors += _flatten(value, prefix)
            else:
                errors += _flatten(value, f"{prefix}.{name}" if prefix else str(name))
        return errors
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [{"field": prefix, "message": str(item)} for item in detail]
        errors = []
        for index, item in enumerate(detail):
            errors += _flatten(item, f"{prefix}.{index}" if prefix else str(index))
        return errors
    return [{"field": prefix, "message": str(detail)}]


def _code(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return "invalid" if isinstance(exc, exceptions.ValidationError) else exc.default_code


def error_body(status_code: int, code: str, detail: str, errors: list[dict] | None = None) -> dict:
    return {"status": status_code, "code": code, "detail": detail, "errors": errors or []}


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's handler, reshaped to `error_body`; bad input that escaped the views still gets a 400, and an
    internal error is logged with its traceback and answered with a JSON 500 rather than an HTML page."""
    if isinstance(exc, KeyParseError):
        exc = exceptions.ValidationError({"key": [str(exc)]})
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Nothing exists at this address.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        )
    elif isinstance(exc, SuspiciousOperation):  # too many fields or files, a malformed multipart body
        exc = exceptions.ParseError(str(exc) or "The request is malformed.")

    response = exception_handler(exc, context)
    if response is None:
        view = context.get("view")
        logger.exception("unhandled error in %s", view.__class__.__name__ if view else "API", exc_info=exc)
        set_rollback()
        return Response(
            error_body(500, "server_error", "Something went wrong on the server; the error was logged."),
            status=500,
        )
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = errors[0] if errors else {"field": None, "message": "invalid input"}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        response.data = error_body(response.status_code, "invalid", detail, errors)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        errors = []
        if isinstance(exc, exceptions.ParseError | exceptions.UnsupportedMediaType):
            errors = [{"field": "body", "message": str(detail)}]
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            detail = f"Too many attempts; try again in {int(exc.wait) + 1} seconds."
        response.data = error_body(response.status_code, _code(exc), str(detail), errors)
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _api_not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        error_body(404, "not_found", f"There is no API endpoint at {request.path}; see /api/docs/."),
        status=404,
    )


def api_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """The last /api/ URL pattern: a JSON 404 in every mode (Django uses handler404 only when DEBUG is off,
    and answers an HTML page otherwise). Any method; no login needed to learn that nothing is here."""
    return _api_not_found(request)


def json_or_html_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_not_found(request)
    return defaults.page_not_found(request, exception)


def json_or_html_500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            error_body(500, "server_error", "Something went wrong on the server; the error was logged."),
            status=500,
        )
    return defaults.server_error(request)


def json_or_html_400(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body(400, "bad_request", f"Bad request: {exception}"), status=400)
    return defaults.bad_request(request, exception)


def json_or_html_403(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body(403, "permission_denied", str(exception) or "Forbidden."), status=403)
    return defaults.permission_denied(request, exception)
