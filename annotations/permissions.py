"""Roles (Django groups annotator, reviewer, admin) and what each may see; the API's permission classes."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.permissions import BasePermission

ROLES = ("annotator", "reviewer", "admin")


def user_roles(user: AbstractBaseUser) -> set[str]:
    """The KeyWeb roles of `user`; a superuser holds every role."""
    if not user or not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return set(ROLES)
    cached = getattr(user, "_keyweb_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._keyweb_roles = cached
    return cached


def user_role(user: AbstractBaseUser) -> str | None:
    """The strongest role of `user` (admin > reviewer > annotator), or None."""
    roles = user_roles(user)
    return next((role for role in reversed(ROLES) if role in roles), None)


def user_is_reviewer(user: AbstractBaseUser) -> bool:
    return bool(user_roles(user) & {"reviewer", "admin"})


def user_is_admin(user: AbstractBaseUser) -> bool:
    return "admin" in user_roles(user)


class _RolePermission(BasePermission):
    roles: frozenset[str] = frozenset()

    def has_permission(self, request, view) -> bool:
        if user_roles(request.user) & self.roles:
            return True
        self.message = f"This needs the role {' or '.join(sorted(self.roles))}; ask an admin to grant it."
        return False


class IsAnnotator(_RolePermission):
    """Any KeyWeb role: annotator, reviewer or admin."""

    roles = frozenset(ROLES)


class IsReviewer(_RolePermission):
    """Reviewer or admin."""

    roles = frozenset({"reviewer", "admin"})


class IsAdmin(_RolePermission):
    """Admin (the group) or a superuser."""

    roles = frozenset({"admin"})
