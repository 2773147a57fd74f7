"""Roles (the Django groups annotator, reviewer, admin) decide everything, on pages and the API alike:
the table PERMISSIONS says who may call each URL and method (docs/api.md shows it; a test walks every URL
pattern × role against it). `is_staff` only opens Django's admin site and goes with the admin role."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.permissions import BasePermission

ROLES = ("annotator", "reviewer", "admin")

# Who may call a URL: anyone (no login), any signed-in account, or the weakest role that may (each role
# includes the ones before it: annotator < reviewer < admin; a superuser holds every role).
ANYONE, SIGNED_IN, ANNOTATOR, REVIEWER, ADMIN = "anyone", "signed in", "annotator", "reviewer", "admin"
LEVELS = (ANYONE, SIGNED_IN, ANNOTATOR, REVIEWER, ADMIN)

# URL name → {method: who}. Object-level rules come on top (annotators see their own annotations and
# prediction jobs only).
PERMISSIONS: dict[str, dict[str, str]] = {
    "login": {"GET": ANYONE, "POST": ANYONE},
    "logout": {"POST": ANYONE},
    "healthz": {"GET": ANYONE},
    "api-schema": {"GET": ANYONE},
    "api-docs": {"GET": ANYONE},
    "api-redoc": {"GET": ANYONE},
    "api:token": {"POST": ANYONE, "DELETE": SIGNED_IN},
    "api:me": {"GET": SIGNED_IN},
    "api:user-list": {"GET": ADMIN, "POST": ADMIN},
    "api:user-detail": {"GET": ADMIN, "PATCH": ADMIN},
    "api:user-token": {"POST": ADMIN, "DELETE": ADMIN},
    "api:track-list": {"GET": ANNOTATOR, "POST": ADMIN},
    "api:track-detail": {"GET": ANNOTATOR, "DELETE": ADMIN},
    "api:track-key": {"GET": ANNOTATOR},
    "api:track-review": {"POST": REVIEWER},
    "api:annotation-list": {"GET": ANNOTATOR, "POST": ANNOTATOR},
    "api:annotation-detail": {"GET": ANNOTATOR},
    "api:queue-next": {"POST": ANNOTATOR},
    "api:queue-progress": {"GET": ANNOTATOR},
    "api:queue-submit": {"POST": ANNOTATOR},
    "api:queue-skip": {"POST": ANNOTATOR},
    "api:queue-skipped": {"GET": ANNOTATOR},
    "api:queue-skipped-put-back": {"DELETE": ANNOTATOR},
    "api:queue-undo": {"POST": ANNOTATOR},
    "api:review-list": {"GET": REVIEWER},
    "api:model-list": {"GET": ANNOTATOR},
    "api:model-training": {"GET": ANNOTATOR, "POST": ADMIN},
    "api:model-pretraining": {"GET": ANNOTATOR, "POST": ADMIN},
    "api:model-detail": {"GET": ANNOTATOR},
    "api:model-activate": {"POST": ADMIN},
    "api:prediction-list": {"POST": ANNOTATOR},
    "api:prediction-detail": {"GET": ANNOTATOR, "DELETE": ANNOTATOR},
    "api:export": {"GET": ADMIN},
    "api:import": {"POST": ADMIN},
    "api:labeling-settings": {"GET": ADMIN, "PATCH": ADMIN},
    "api:annotator-list": {"GET": REVIEWER},
    "annotations:home": {"GET": SIGNED_IN},
    "annotations:track_list": {"GET": ANNOTATOR},
    "annotations:upload": {"GET": ADMIN, "POST": ADMIN},
    "annotations:track_audio": {"GET": ANNOTATOR},
    "annotations:track_visuals": {"GET": ANNOTATOR},
    "annotations:label": {"GET": ANNOTATOR},
    "annotations:review_list": {"GET": REVIEWER},
    "annotations:review_track": {"GET": REVIEWER},
    "annotations:dashboard": {"GET": ADMIN},
    "annotations:dashboard_training_request": {"POST": ADMIN},
    "annotations:dashboard_training_status": {"GET": ADMIN},
    "annotations:dashboard_version_activate": {"POST": ADMIN},
    "annotations:dashboard_strategy": {"POST": ADMIN},
    "annotations:dashboard_pretraining_request": {"POST": ADMIN},
    "annotations:export_labels_csv": {"GET": ADMIN},
}


def user_may(user: AbstractBaseUser, level: str) -> bool:
    """Whether `user` passes a PERMISSIONS level."""
    if level == ANYONE:
        return True
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if level == SIGNED_IN:
        return True
    roles = user_roles(user)
    return bool(roles & set(ROLES[ROLES.index(level) :]))


def permission_table_markdown() -> str:
    """The table as docs/api.md shows it (tests/annotations/test_roles.py keeps the two identical)."""
    lines = ["| URL name | method | who |", "|---|---|---|"]
    for name, methods in PERMISSIONS.items():
        for method, level in methods.items():
            lines.append(f"| `{name}` | {method} | {level} |")
    return "\n".join(lines)


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
