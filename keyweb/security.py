"""Content-Security-Policy on every response (settings.CONTENT_SECURITY_POLICY): a small middleware rather
than a package, since one fixed policy (and a relaxed style rule for three third-party pages) is all we need."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def policy_for(path: str) -> str:
    """The policy for a path: the strict one, or with inline <style> allowed on the pages listed in
    CONTENT_SECURITY_POLICY_INLINE_STYLE_PATHS."""
    policy = settings.CONTENT_SECURITY_POLICY
    if path.startswith(tuple(settings.CONTENT_SECURITY_POLICY_INLINE_STYLE_PATHS)):
        policy = policy.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'", 1)
    return policy


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:  # a view that sets its own policy keeps it
            response["Content-Security-Policy"] = policy_for(request.path)
        return response
