"""Rate limits for the login and token endpoints, counted in the shared (Redis) cache so they hold across
web processes. Attempts count twice: per client address and per username tried, so rotating addresses
cannot brute-force one account. The client address is the socket's peer unless KEYWEB_NUM_PROXIES says
how many reverse proxies in front of KeyWeb append to X-Forwarded-For (REST_FRAMEWORK NUM_PROXIES; 0, the
default, trusts no forwarded header). If the cache is down the request is let through and the outage
logged: a broken limiter must not lock everyone out."""

from __future__ import annotations

import functools
import hashlib
import logging

from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import APIException
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


def submitted_username(request) -> str:
    """The username a login attempt names (JSON or form body of the API, form of the login page)."""
    data = request.data if hasattr(request, "data") else request.POST
    value = data.get("username") if hasattr(data, "get") else None
    return value.strip().casefold() if isinstance(value, str) else ""


class AuthRateThrottle(SimpleRateThrottle):
    """Scope `auth` (REST_FRAMEWORK DEFAULT_THROTTLE_RATES), per client address."""

    scope = "auth"

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except APIException:
            raise  # a body that does not parse is the client's error, answered by the view's handler
        except Exception as error:  # the cache backend's connection errors have no common base class
            logger.error("rate limiting skipped: the cache is unavailable (%s)", error)
            return True


class AuthUsernameRateThrottle(AuthRateThrottle):
    """The same `auth` rate, per username tried (whatever the address); requests naming none pass."""

    def get_cache_key(self, request, view) -> str | None:
        username = submitted_username(request)
        if not username:
            return None
        digest = hashlib.sha256(username.encode()).hexdigest()  # any text, a fixed-size cache key
        return self.cache_format % {"scope": f"{self.scope}-user", "ident": digest}


AUTH_THROTTLES = (AuthRateThrottle, AuthUsernameRateThrottle)


def login_throttled(view):
    """Wrap the browser login page: POSTs (attempts) count against the `auth` rate, like the token API."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            for throttle in [throttle_class() for throttle_class in AUTH_THROTTLES]:
                if throttle.allow_request(request, None):
                    continue
                wait = int(throttle.wait() or 60) + 1
                response = HttpResponse(
                    f"Too many login attempts; try again in {wait} seconds.",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    return wrapped
