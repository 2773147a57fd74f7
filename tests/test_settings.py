"""Settings come from the environment; production refuses to start without its secrets."""

import json
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


def _load_settings(environment: dict[str, str], code: str | None = None) -> subprocess.CompletedProcess:
    code = code or (
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


def _settings_json(environment: dict[str, str], expression: str):
    """`expression` evaluated over the settings module `s` loaded from `environment`, as JSON."""
    result = _load_settings(
        {"KEYWEB_VAR_DIR": "/tmp/keyweb-settings-test", **environment},
        f"import json, keyweb.settings as s; print(json.dumps({expression}, default=str))",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"KEYWEB_SQLITE_PATH": "/tmp/keyweb-settings-test/a.sqlite3"},
        {"DATABASE_URL": "sqlite:///x.sqlite3"},
    ],
)
def test_sqlite_gets_wal_busy_timeout_and_immediate_transactions_however_it_is_named(environment):
    options = _settings_json(environment, "s.DATABASES['default']['OPTIONS']")
    assert options["timeout"] == 30 and options["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in options["init_command"]


def test_postgresql_gets_no_sqlite_options():
    options = _settings_json(
        {"DATABASE_URL": "postgres://u:p@db:5432/k"}, "s.DATABASES['default'].get('OPTIONS', {})"
    )
    assert "transaction_mode" not in options and "init_command" not in options


def test_production_is_https_only_with_hsts_for_a_year():
    values = _settings_json(
        PRODUCTION,
        "[s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "getattr(s, 'SECURE_PROXY_SSL_HEADER', None), s.SECURE_REDIRECT_EXEMPT]",
    )
    assert values == [True, 365 * 24 * 3600, True, True, None, ["^healthz$"]]


def test_production_https_settings_come_from_the_environment():
    environment = {
        **PRODUCTION,
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        "KEYWEB_NUM_PROXIES": "1",
    }
    values = _settings_json(
        environment,
        "[s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, s.NUM_PROXIES]",
    )
    assert values == [False, 0, ["HTTP_X_FORWARDED_PROTO", "https"], 1]


def test_development_does_not_redirect_to_https():
    from django.conf import global_settings  # what Django uses for a setting the module leaves out

    values = _settings_json(
        {},
        "[getattr(s, 'SECURE_SSL_REDIRECT', None), getattr(s, 'SECURE_HSTS_SECONDS', None), "
        "s.REST_FRAMEWORK['NUM_PROXIES']]",
    )
    assert values == [None, None, 0]
    assert global_settings.SECURE_SSL_REDIRECT is False and global_settings.SECURE_HSTS_SECONDS == 0


def test_a_negative_proxy_count_is_refused():
    result = _load_settings({"KEYWEB_NUM_PROXIES": "-1", "KEYWEB_VAR_DIR": "/tmp/keyweb-settings-test"})
    assert result.returncode != 0 and "KEYWEB_NUM_PROXIES" in result.stderr
