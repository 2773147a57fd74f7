"""Rate limits for the login and token endpoints, counted in the shared (Redis) cache so they hold across
web processes. If the cache is down the request is let through and the outage logged: a broken limiter
must not lock everyone out."""

from __future__ import annotations

import functools
import logging

from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class AuthRateThrottle(SimpleRateThrottle):
    """Scope `auth` (REST_FRAMEWORK DEFAULT_THROTTLE_RATES), per client address."""

    scope = "auth"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as error:  # the cache backend's connection errors have no common base class
            logger.error("rate limiting skipped: the cache is unavailable (%s)", error)
            return True


def login_throttled(view):
    """Wrap the browser login page: POSTs (attempts) count against the `auth` rate."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            throttle = AuthRateThrottle()
            if not throttle.allow_request(request, None):
                wait = throttle.wait()
                response = HttpResponse(
                    f"Too many login attempts; try again in {int(wait or 60) + 1} seconds.",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(int(wait or 60) + 1)
                return response
        return view(request, *args, **kwargs)

    return wrapped
