"""Accounts, roles and API tokens (is_staff goes with the admin role; tokens are stored hashed)."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS
from rest_framework.authtoken.models import Token as PlainToken

from ..permissions import ROLES

logger = logging.getLogger(__name__)
User = get_user_model()


@transaction.atomic
def user_role_set(*, user: AbstractBaseUser, role: str) -> AbstractBaseUser:
    """Give `user` exactly one KeyWeb role (groups made by `manage.py setup_keyweb`)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if user.is_superuser and role != "admin":
        raise ValueError("a superuser holds every role; remove its superuser status in Django's admin first")
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(pk=group.pk))
    user.groups.add(group)
    # is_staff opens Django's admin site only, and goes with the admin role.
    if user.is_staff != (role == "admin"):
        user.is_staff = role == "admin"
        user.save(update_fields=["is_staff"])
    user.__dict__.pop("_keyweb_roles", None)
    return user


@transaction.atomic
def user_create(*, username: str, password: str, role: str) -> AbstractBaseUser:
    user = User.objects.create_user(username=username, password=password)
    return user_role_set(user=user, role=role)


@transaction.atomic
def user_update(*, user: AbstractBaseUser, role: str | None = None, is_active: bool | None = None):
    if role is not None:
        user_role_set(user=user, role=role)
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        user.save(update_fields=["is_active"])
        if not is_active:
            token_revoke(user=user)  # a deactivated account keeps no way in
    return user


# --- API tokens: only a SHA-512 digest is stored (django-rest-knox); the key is shown once, when issued ----

MAX_TOKENS_PER_USER = 10  # each password login adds one; the oldest beyond this stop working


def token_create(*, user: AbstractBaseUser) -> str:
    """A new API token for `user`, beside the ones they have (each client logs in on its own); returns the
    key, which is not stored and cannot be shown again."""
    with transaction.atomic():
        _, key = AuthToken.objects.create(user=user)  # expiry: REST_KNOX TOKEN_TTL (none by default)
        stale = AuthToken.objects.filter(user=user).order_by("-created")[MAX_TOKENS_PER_USER:]
        AuthToken.objects.filter(digest__in=list(stale.values_list("digest", flat=True))).delete()
    return key


@transaction.atomic
def token_issue(*, user: AbstractBaseUser) -> str:
    """A fresh API token for `user` (an admin's reset); every previous one stops working."""
    token_revoke(user=user)
    return token_create(user=user)


@transaction.atomic
def token_revoke(*, user: AbstractBaseUser, token: AuthToken | None = None) -> bool:
    """Revoke `token`, or every token of `user` (plain pre-hashing ones included)."""
    if token is not None:
        deleted, _ = AuthToken.objects.filter(digest=token.digest, user=user).delete()
        return bool(deleted)
    hashed, _ = AuthToken.objects.filter(user=user).delete()
    plain, _ = PlainToken.objects.filter(user=user).delete()
    return bool(hashed or plain)


@transaction.atomic
def token_plain_convert(*, key: str) -> AuthToken | None:
    """The hashed token for a key issued before tokens were hashed (DRF's authtoken stored it in plain
    text): its digest replaces the plain row, so the client keeps its key and the database keeps no secret.
    None when no plain token has this key."""
    plain = PlainToken.objects.select_for_update().select_related("user").filter(key=key).first()
    if plain is None:
        return None
    token = _hashed_copy(plain)
    plain.delete()
    return token


@transaction.atomic
def tokens_plain_convert_all() -> int:
    """Convert every plain token still stored (`manage.py api_tokens_hash`); returns how many."""
    converted = 0
    for plain in PlainToken.objects.select_for_update().select_related("user"):
        _hashed_copy(plain)
        plain.delete()
        converted += 1
    return converted


def _hashed_copy(plain: PlainToken) -> AuthToken:
    token = AuthToken(
        digest=hash_token(plain.key),
        token_key=plain.key[: CONSTANTS.TOKEN_KEY_LENGTH],
        user=plain.user,
        expiry=None,
    )
    token.save(force_insert=True)
    return token
