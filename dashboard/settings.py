"""Django settings for the thread dashboard.

Every value that differs between machines comes from the environment through
`dashboard.env`; README.md lists the variables. A missing or invalid one stops
start-up with a message that names it.
"""

import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dashboard.env import env_bool, env_number, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DASHBOARD_VAR_DIR", str(BASE_DIR / "var")))

# ---------------------------------------------------------------------------
# Core
# https://docs.djangoproject.com/en/5.2/ref/settings/
# ---------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set it to a long random string, for example the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )
if len(SECRET_KEY) < 20:
    raise ImproperlyConfigured("SECRET_KEY must be at least 20 characters long.")

ALLOWED_HOSTS = [
    host.strip()
    for host in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "threads",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a logged-in user unless its view is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

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
            ],
        },
    },
]

# ---------------------------------------------------------------------------
# Database
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases
# ---------------------------------------------------------------------------

DATABASE_URL = env_url(
    "DATABASE_URL",
    schemes={"sqlite", "postgres", "postgresql"},
    default="sqlite:///" + str(BASE_DIR / "db.sqlite3"),
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs the web server, a worker and beat on one SQLite file: WAL lets
    # readers and one writer work at once, and IMMEDIATE transactions with a busy
    # timeout make writers queue instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "threads:session-list"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# ---------------------------------------------------------------------------
# Internationalisation and time
# ---------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
USE_THOUSAND_SEPARATOR = False

# ---------------------------------------------------------------------------
# Static files, vendored and served by whitenoise (no CDN)
# https://whitenoise.readthedocs.io/
# ---------------------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True

# ---------------------------------------------------------------------------
# Anthropic API
# ---------------------------------------------------------------------------

ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
# Unset means the real API; the demo and the tests point it at the emulator.
ANTHROPIC_BASE_URL = env_url("ANTHROPIC_BASE_URL", schemes={"http", "https"})
ANTHROPIC_WORKSPACE_ID = env_str("ANTHROPIC_WORKSPACE_ID")
ANTHROPIC_CONNECT_TIMEOUT_SECONDS = env_number(
    "ANTHROPIC_CONNECT_TIMEOUT_SECONDS", default=5.0, minimum=0.1
)
ANTHROPIC_READ_TIMEOUT_SECONDS = env_number(
    "ANTHROPIC_READ_TIMEOUT_SECONDS", default=30.0, minimum=0.1
)
ANTHROPIC_MAX_RETRIES = env_number("ANTHROPIC_MAX_RETRIES", default=2, minimum=0, kind=int)
# The API's limit is per organisation (about 600 requests per minute for these
# endpoints) and shared by every process of the dashboard; stay a little under it.
ANTHROPIC_RATE_LIMIT_PER_SECOND = env_number(
    "ANTHROPIC_RATE_LIMIT_PER_SECOND", default=9.0, minimum=0.01
)
ANTHROPIC_RATE_LIMIT_BURST = env_number("ANTHROPIC_RATE_LIMIT_BURST", default=10, minimum=1, kind=int)

# ---------------------------------------------------------------------------
# Sync and archive behaviour
# ---------------------------------------------------------------------------

SYNC_INTERVAL_SECONDS = env_number("SYNC_INTERVAL_SECONDS", default=60, minimum=5, kind=int)
SYNC_FULL_INTERVAL_SECONDS = env_number(
    "SYNC_FULL_INTERVAL_SECONDS", default=3600, minimum=60, kind=int
)
SYNC_CONCURRENCY = env_number("SYNC_CONCURRENCY", default=8, minimum=1, kind=int)
SYNC_BATCH_SIZE = env_number("SYNC_BATCH_SIZE", default=500, minimum=1, kind=int)
ARCHIVE_GRACE_SECONDS = env_number("ARCHIVE_GRACE_SECONDS", default=30, minimum=0, kind=int)
ARCHIVE_MAX_ATTEMPTS = env_number("ARCHIVE_MAX_ATTEMPTS", default=8, minimum=1, kind=int)
ARCHIVE_STUCK_AFTER_SECONDS = env_number(
    "ARCHIVE_STUCK_AFTER_SECONDS", default=300, minimum=10, kind=int
)
# Items one archive task claims together, and how many of their API calls it makes at
# once in threads. Database writes stay on the task's own thread, one batch at a time.
ARCHIVE_BATCH_SIZE = env_number("ARCHIVE_BATCH_SIZE", default=25, minimum=1, kind=int)
ARCHIVE_BATCH_CONCURRENCY = env_number("ARCHIVE_BATCH_CONCURRENCY", default=8, minimum=1, kind=int)

# ---------------------------------------------------------------------------
# Celery
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ---------------------------------------------------------------------------

REDIS_URL = env_url("REDIS_URL", schemes={"redis", "rediss"})
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Redis redelivers a message that a worker took but never acknowledged once this
    # many seconds pass (the transport's default is one hour).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_number(
            "CELERY_VISIBILITY_TIMEOUT_SECONDS", default=180, minimum=10, kind=int
        ),
    }
    # kombu's Redis transport with a fix that keeps a worker alive when its Redis server
    # goes away (see dashboard/broker.py).
    # NOTE: rediss:// keeps kombu's own transport, because kombu turns TLS on from the
    # transport name "rediss". Workers on rediss:// can still exit after a Redis restart.
    if REDIS_URL.startswith("redis://"):
        CELERY_BROKER_TRANSPORT = "dashboard.broker:Transport"
else:
    # A broker that needs no server: kombu's filesystem transport, one folder of files.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_FOLDER = VAR_DIR / "celery-broker"
    # kombu lists this folder on every poll and fails if it is missing; every process
    # (web, worker, beat, commands) may be the first to start.
    CELERY_BROKER_FOLDER.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER),
        "data_folder_out": str(CELERY_BROKER_FOLDER),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        "store_processed": False,
        # Exchange bindings of remote control (ping, inspect); kombu's default is
        # "control" in the working directory.
        "control_folder": str(VAR_DIR / "celery-control"),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# ---------------------------------------------------------------------------
# REST framework
# ---------------------------------------------------------------------------

# Requests per user to the REST API, e.g. "600/min"; the unit is s, min, hour or day.
API_THROTTLE_RATE_PATTERN = r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)"
API_THROTTLE_READ_RATE = env_str("API_THROTTLE_READ_RATE", "600/min")
API_THROTTLE_WRITE_RATE = env_str("API_THROTTLE_WRITE_RATE", "60/min")
for _name in ("API_THROTTLE_READ_RATE", "API_THROTTLE_WRITE_RATE"):
    _rate = globals()[_name]
    if not re.fullmatch(API_THROTTLE_RATE_PATTERN, _rate):
        raise ImproperlyConfigured(
            "%s must look like 600/min (a count per s, min, hour or day), got %r." % (_name, _rate)
        )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Per user: reads (GET, HEAD, OPTIONS) and writes are counted apart. The counters
    # live in the default cache, so each process of the web server counts on its own.
    "DEFAULT_THROTTLE_CLASSES": [
        "threads.api.throttling.ReadRateThrottle",
        "threads.api.throttling.WriteRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_read": API_THROTTLE_READ_RATE,
        "api_write": API_THROTTLE_WRITE_RATE,
    },
    "EXCEPTION_HANDLER": "threads.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI schema at /api/schema/ and its docs page at /api/docs/, both for logged-in
# users only; Swagger UI and Redoc are served from drf-spectacular-sidecar's static files.
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Thread dashboard API",
    "DESCRIPTION": "Read session and thread snapshots and usage, and run archive jobs.",
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# ---------------------------------------------------------------------------
# Logging: one line per event, with the `extra=` fields as key=value pairs
# ---------------------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
    raise ImproperlyConfigured("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got %r." % LOG_LEVEL)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "dashboard.logging.RedactSecretsFilter"},
        "permission_denied": {"()": "dashboard.logging.PermissionDeniedFilter"},
    },
    "formatters": {"key_value": {"()": "dashboard.logging.KeyValueFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "key_value",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # While DEBUG is on, Django's default logging gives "django" a console handler of
        # its own, which printed each record twice. The root handler is enough.
        "django": {"handlers": [], "propagate": True},
        "django.request": {"filters": ["permission_denied"]},
        # The SDK and its HTTP client log request URLs and headers at DEBUG.
        "anthropic": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
    },
}

# ---------------------------------------------------------------------------
# Periodic tasks (Celery beat)
# ---------------------------------------------------------------------------

CELERY_BEAT_SCHEDULE = {
    "sync-incremental": {
        "task": "threads.sync_incremental",
        "schedule": float(SYNC_INTERVAL_SECONDS),
    },
    "sync-full": {
        "task": "threads.sync_full",
        "schedule": float(SYNC_FULL_INTERVAL_SECONDS),
    },
    "archive-reconcile": {
        "task": "threads.archive_reconcile",
        "schedule": 60.0,
    },
    # Usage rollups of days that writers marked dirty; the page stays exact meanwhile.
    "usage-rollup-refresh": {
        "task": "threads.usage_rollup_refresh",
        "schedule": 60.0,
    },
}
