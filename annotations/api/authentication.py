"""`Authorization: Token <key>` against hashed tokens (django-rest-knox stores a SHA-512 digest and compares
digests in constant time). A key issued before tokens were hashed still works: on its first use its plain
row is replaced by a digest (services.accounts.token_plain_convert), so clients keep their keys."""

from __future__ import annotations

from django.utils import timezone
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from ..services.accounts import token_plain_convert


class HashedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        try:
            return super().authenticate_credentials(token)
        except exceptions.AuthenticationFailed:
            key = token.decode("utf-8", errors="replace")
            converted = token_plain_convert(key=key) if len(key) == 40 else None  # DRF's keys: 40 hex digits
            if converted is None:
                raise
            return self.validate_user(converted)

    def _cleanup_token(self, auth_token) -> bool:
        """An expired token is deleted and refused. (knox also sweeps all of the user's other tokens here,
        one more query on every request; expired tokens are refused all the same.)"""
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False
