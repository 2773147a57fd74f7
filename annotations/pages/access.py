"""Who may open a page: login, annotator, reviewer and staff checks, answered in JSON (401/403/405) when
the page's script asked for JSON and with the login page or an error page otherwise."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..permissions import ADMIN, ANNOTATOR, REVIEWER, user_may

SESSION_ENDED = "log in first: your session has ended"


# Roles (groups) decide, as on the API (annotations/permissions.py); is_staff only opens Django's admin.
def user_can_label(user) -> bool:
    return user_may(user, ANNOTATOR)


def user_can_review(user) -> bool:
    return user_may(user, REVIEWER)


def user_is_staff(user) -> bool:
    """Kept for templates that ask; means the admin role, not Django's is_staff flag."""
    return user_may(user, ADMIN)


def wants_json(request: HttpRequest) -> bool:
    return request.path.endswith(".json") or "application/json" in request.headers.get("Accept", "")


def json_error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def only(*methods: str) -> Callable:
    """Like require_http_methods, but the 405 says which methods the address takes (in JSON when asked)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                message = f"{request.method} is not supported at this address; use {' or '.join(methods)}"
                if wants_json(request):
                    response = json_error(message, status=405)
                else:
                    response = HttpResponse(
                        f"{message}.", status=405, content_type="text/plain; charset=utf-8"
                    )
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _requires(allowed: Callable[[object], bool] | None, refusal: str) -> Callable:
    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            json = wants_json(request)
            if not request.user.is_authenticated:
                if json:
                    return json_error(SESSION_ENDED, status=401)
                return redirect_to_login(request.get_full_path())
            if allowed is not None and not allowed(request.user):
                if json:
                    return json_error(refusal[0].lower() + refusal[1:].rstrip("."), status=403)
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


login_required = _requires(None, "")
annotator_required = _requires(
    user_can_label, "Your account may not label tracks; ask an admin for the annotator role."
)
reviewer_required = _requires(user_can_review, "Only reviewers and admins can review disputed tracks.")
staff_required = _requires(
    user_is_staff, "The dashboard is for admins only; ask an admin for the admin role."
)
admin_required = staff_required


def access(request: HttpRequest) -> dict:
    """Template context processor: what the signed-in user's roles allow (the nav shows only that)."""
    user = getattr(request, "user", None)
    return {
        "access": {
            "can_label": user_may(user, ANNOTATOR),
            "can_review": user_may(user, REVIEWER),
            "is_admin": user_may(user, ADMIN),
        }
    }
