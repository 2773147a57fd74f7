"""Writes behind the API that annotations.services does not cover: accounts and tokens, track deletion."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from annotations.permissions import ROLES

logger = logging.getLogger(__name__)
User = get_user_model()


@transaction.atomic
def user_role_set(*, user: AbstractBaseUser, role: str) -> AbstractBaseUser:
    """Give `user` exactly one KeyWeb role (groups made by `manage.py setup_keyweb`)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(pk=group.pk))
    user.groups.add(group)
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
            Token.objects.filter(user=user).delete()  # a deactivated account keeps no way in
    return user


@transaction.atomic
def token_issue(*, user: AbstractBaseUser) -> Token:
    """A fresh API token for `user`; any previous one stops working."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def token_revoke(*, user: AbstractBaseUser) -> bool:
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)
