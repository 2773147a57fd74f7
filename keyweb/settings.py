"""KeyWeb settings: everything configurable is read from the environment here, and only here."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false)")


def env_number(name: str, default: float, cast=float):
    value = env_str(name)
    if value is None:
        return default
    try:
        return cast(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from error


# "development" is the embedded demo mode (SQLite, bundled Redis, demo users); "production" refuses to
# start without the secrets it needs.
KEYWEB_ENV = env_str("KEYWEB_ENV", "development")
if KEYWEB_ENV not in ("development", "production", "test"):
    raise ImproperlyConfigured(f"KEYWEB_ENV must be development, production or test, not {KEYWEB_ENV!r}")
PRODUCTION = KEYWEB_ENV == "production"

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if SECRET_KEY is None:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when KEYWEB_ENV=production")
    SECRET_KEY = "keyweb-development-only-not-a-secret"  # noqa: S105 - never used in production

DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = [h.strip() for h in (env_str("DJANGO_ALLOWED_HOSTS") or "").split(",") if h.strip()]
if not ALLOWED_HOSTS:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when KEYWEB_ENV=production")
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = [o for o in (env_str("DJANGO_CSRF_TRUSTED_ORIGINS") or "").split(",") if o]

VAR_DIR = Path(env_str("KEYWEB_VAR_DIR", str(BASE_DIR / "var")))

# How many reverse proxies in front of KeyWeb append to X-Forwarded-For (and set X-Forwarded-Proto). 0, the
# default, trusts no forwarded header: the client address is the socket's peer, so no client can pick the
# address its rate limit is counted under. Behind N proxies it is the Nth address from the right.
NUM_PROXIES = int(env_number("KEYWEB_NUM_PROXIES", 0, int))
if NUM_PROXIES < 0:
    raise ImproperlyConfigured(f"KEYWEB_NUM_PROXIES={NUM_PROXIES} must be 0 or more")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # only the plain tokens issued before hashing, until converted
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_celery_beat",
    "annotations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "keyweb.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "keyweb.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "annotations.pages.access.access",
            ],
        },
    },
]
WSGI_APPLICATION = "keyweb.wsgi.application"

# --- database: SQLite by default, PostgreSQL (or anything dj-database-url reads) via DATABASE_URL ------
DATABASE_URL = env_str("DATABASE_URL")
# Web, worker and beat write at once: WAL, a busy timeout and immediate transactions avoid "database is
# locked". Applied to every SQLite database, however it is named (KEYWEB_SQLITE_PATH or DATABASE_URL).
SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    if PRODUCTION:
        raise ImproperlyConfigured("DATABASE_URL must be set when KEYWEB_ENV=production")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("KEYWEB_SQLITE_PATH", str(VAR_DIR / "keyweb.sqlite3")),
        }
    }
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **SQLITE_OPTIONS}
if KEYWEB_ENV == "test" and DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so a real Celery worker process can open the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotations:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("KEYWEB_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("KEYWEB_STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "templates" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("KEYWEB_MEDIA_ROOT", str(VAR_DIR / "media")))

# Uploads stream to disk; KEYWEB_MAX_UPLOAD_MB is enforced while the body arrives (annotations.uploads).
FILE_UPLOAD_HANDLERS = [
    "annotations.uploads.SizeLimitedUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
DATA_UPLOAD_MAX_NUMBER_FILES = 500

# --- KeyWeb behaviour -------------------------------------------------------------------------------
KEYWEB = {
    "MAX_UPLOAD_BYTES": int(env_number("KEYWEB_MAX_UPLOAD_MB", 200) * 1024 * 1024),
    "MAX_DURATION_S": env_number("KEYWEB_MAX_DURATION_S", 20 * 60),
    # Shorter audio holds no key to hear (a 1-sample WAV decodes fine): refused at import.
    "MIN_DURATION_S": env_number("KEYWEB_MIN_DURATION_S", 1.0),
    # Label imports (API and import_labels): each .jams/.key member of an archive, and all of them together,
    # uncompressed. A zip bomb is refused from its directory before anything is decompressed.
    "IMPORT_MAX_MEMBER_BYTES": int(env_number("KEYWEB_IMPORT_MAX_MEMBER_MB", 4) * 1024 * 1024),
    "IMPORT_MAX_TOTAL_BYTES": int(env_number("KEYWEB_IMPORT_MAX_TOTAL_MB", 200) * 1024 * 1024),
    "MODEL_DIR": Path(env_str("KEYWEB_MODEL_DIR", str(VAR_DIR / "models"))),
    "EMBEDDING_DIR": Path(env_str("KEYWEB_EMBEDDING_DIR", str(MEDIA_ROOT / "embeddings"))),
    "MYNA_CHECKPOINT": env_str("MYNA_CHECKPOINT"),
    "BACKBONE": env_str("KEYWEB_BACKBONE"),  # None: pitch_class, or myna_vertical when MYNA_CHECKPOINT is set
    "QUEUE_STRATEGY": env_str("KEYWEB_QUEUE_STRATEGY", "entropy"),
    "ANNOTATIONS_REQUIRED": int(env_number("KEYWEB_ANNOTATIONS_REQUIRED", 1, int)),
    "LEASE_SECONDS": int(env_number("KEYWEB_LEASE_SECONDS", 600, int)),
    "TEST_FRACTION": env_number("KEYWEB_TEST_FRACTION", 0.2),
    "RETRAIN_MIN_NEW_LABELS": int(env_number("KEYWEB_RETRAIN_MIN_NEW_LABELS", 20, int)),
    "RETRAIN_CHECK_SECONDS": int(env_number("KEYWEB_RETRAIN_CHECK_SECONDS", 300, int)),
    "ACTIVATION_TOLERANCE": env_number("KEYWEB_ACTIVATION_TOLERANCE", 0.01),
    "TRAINING_TIME_BUDGET_S": env_number("KEYWEB_TRAINING_TIME_BUDGET_S", 600),
    "DEMO_MODE": env_bool("KEYWEB_DEMO", default=False),
    # Faults (docs/operations.md): how long one publish may wait for the broker; when a claim whose worker
    # stopped renewing it (every STALE_AFTER_S / 8) is taken as abandoned; how often a track may be
    # interrupted by a dying worker, and a training or prediction job be re-run, before it is failed.
    "PUBLISH_TIMEOUT_S": env_number("KEYWEB_PUBLISH_TIMEOUT_S", 1.0),
    "STALE_AFTER_S": env_number("KEYWEB_STALE_AFTER_S", 120),
    "MAX_INTERRUPTIONS": int(env_number("KEYWEB_MAX_INTERRUPTIONS", 3, int)),
    # Activation (services.model_versions): at least this many held-out tracks scored by both versions,
    # and the candidate's paired-bootstrap lower bound may be at most ACTIVATION_TOLERANCE below.
    "ACTIVATION_MIN_TRACKS": int(env_number("KEYWEB_ACTIVATION_MIN_TRACKS", 20, int)),
    # Share of tracks a second annotator labels too, blind to the first (agreement, Review).
    "SECOND_OPINION_SHARE": env_number("KEYWEB_SECOND_OPINION_SHARE", 0.10),
    # Self-supervised pretraining of the learned backbone (manage.py pretrain_backbone, the dashboard):
    # optimiser steps per run, how much of each track it reads, and how often it saves its checkpoint
    # (a worker that dies loses at most this many seconds of it).
    "PRETRAINING_STEPS": int(env_number("KEYWEB_PRETRAINING_STEPS", 600, int)),
    "PRETRAINING_MAX_SECONDS_PER_TRACK": env_number("KEYWEB_PRETRAINING_MAX_SECONDS_PER_TRACK", 90),
    "PRETRAINING_CHECKPOINT_S": env_number("KEYWEB_PRETRAINING_CHECKPOINT_S", 60),
}

# --- Celery ----------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6390/0")
if PRODUCTION and not env_str("REDIS_URL"):
    raise ImproperlyConfigured("REDIS_URL must be set when KEYWEB_ENV=production")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "annotations.tasks.embed_tracks_task": {"queue": "gpu"},
    "annotations.tasks.train_model_task": {"queue": "gpu"},
    "annotations.tasks.predict_file_task": {"queue": "gpu"},  # runs the backbone on a loose file
    "annotations.tasks.pretrain_backbone_task": {"queue": "gpu"},
}
CELERY_TASK_ACKS_LATE = False  # only idempotent tasks opt in, per task
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- cache: Redis, so rate limits hold across web processes -----------------------------------------
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "keyweb",
    }
}

# --- REST framework --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotations.api.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON with bounded size, nesting depth and number length (annotations/api/parsers.py); forms as usual.
    "DEFAULT_PARSER_CLASSES": [
        "annotations.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "annotations.api.pagination.KeyWebPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "annotations.api.schema.KeyWebAutoSchema",
    "EXCEPTION_HANDLER": "annotations.api.errors.api_exception_handler",
    # Only the login and token endpoints are throttled (scope "auth"), per client address and per username.
    "DEFAULT_THROTTLE_RATES": {"auth": env_str("KEYWEB_AUTH_RATE", "10/minute")},
    # The client address for rate limits: see NUM_PROXIES above (0 trusts no X-Forwarded-For).
    "NUM_PROXIES": NUM_PROXIES,
}
# API tokens are stored as SHA-512 digests (django-rest-knox), sent as `Authorization: Token <key>`; they
# last until revoked unless KEYWEB_TOKEN_TTL_DAYS is set.
_TOKEN_TTL_DAYS = env_number("KEYWEB_TOKEN_TTL_DAYS", 0)
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_TTL": timedelta(days=_TOKEN_TTL_DAYS) if _TOKEN_TTL_DAYS > 0 else None,
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "KeyWeb API",
    "DESCRIPTION": "Label the musical key of audio tracks, with a model in the loop. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc from the drf-spectacular-sidecar package: the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TrackStatusEnum": "annotations.models.Track.Status",
        "ModelVersionStatusEnum": "annotations.models.ModelVersion.Status",
        "PredictionJobStatusEnum": "annotations.models.PredictionJob.Status",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # 4xx are logged as one line without a traceback; 5xx keep theirs (keyweb/logfilters.py).
    "filters": {"refusals_one_line": {"()": "keyweb.logfilters.RefusalsOneLine"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["refusals_one_line"]}
    },
    "root": {"handlers": ["console"], "level": env_str("KEYWEB_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- HTTP security headers -------------------------------------------------------------------------
# Content-Security-Policy on every response (keyweb/security.py): the app's own scripts, styles, media,
# images, fonts and fetches only; no inline script anywhere (pages pass data in <script
# type="application/json"> blocks). style-src-attr allows style="" attributes only (not <style> elements,
# which could hold selectors): label.js still writes one (the suggestion bars).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Pages built by packages that inject <style> elements at run time: Redoc (styled-components), Swagger UI
# and Django's admin. Scripts stay 'self' there too.
CONTENT_SECURITY_POLICY_INLINE_STYLE_PATHS = ("/api/redoc/", "/api/docs/", "/admin/")

if PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    # HTTPS only: plain-HTTP requests are redirected (except the health check a load balancer makes), and
    # browsers are told to use HTTPS for a year. Set DJANGO_SECURE_SSL_REDIRECT=false only when something in
    # front already redirects; DJANGO_SECURE_HSTS_SECONDS=0 turns HSTS off.
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = int(env_number("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600, int))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if NUM_PROXIES > 0:
    # Only a proxy we were told about may say the client used HTTPS (it must overwrite the header).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
