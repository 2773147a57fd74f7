"""Settings come from the environment; production refuses to start without its secrets."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "KEYWEB_ENV": "production",
    "DJANGO_SECRET_KEY": "a-long-random-secret",
    "DJANGO_ALLOWED_HOSTS": "k.example.org",
    "DATABASE_URL": "postgres://u:p@db:5432/keyweb",
    "REDIS_URL": "redis://redis:6379/0",
}


def _load_settings(environment: dict[str, str]) -> subprocess.CompletedProcess:
    code = (
        "import keyweb.settings as s; print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **environment},
    )


def test_production_settings_load_with_everything_given():
    result = _load_settings(PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "django.db.backends.postgresql", "redis://redis:6379/0"]


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"]
)
def test_production_refuses_to_start_without(missing):
    result = _load_settings({k: v for k, v in PRODUCTION.items() if k != missing})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_bad_values_are_named():
    result = _load_settings({"KEYWEB_MAX_UPLOAD_MB": "lots", "KEYWEB_VAR_DIR": "/tmp/keyweb-settings-test"})
    assert result.returncode != 0 and "KEYWEB_MAX_UPLOAD_MB='lots' is not a number" in result.stderr
