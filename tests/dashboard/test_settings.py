"""Start-up validation of settings: each bad value stops start-up naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VALID_ENV = {
    "SECRET_KEY": "a-secret-key-long-enough-for-the-check",
    "DJANGO_SETTINGS_MODULE": "dashboard.settings",
}


def load_settings(**overrides: str | None) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with the given environment."""
    env = {key: value for key, value in os.environ.items() if key not in {
        "DATABASE_URL", "REDIS_URL", "ANTHROPIC_BASE_URL", "DEBUG", "SECRET_KEY",
    }}
    env.update(VALID_ENV)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('ok')"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_settings_load_with_defaults():
    result = load_settings()

    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected_message"),
    [
        ("SECRET_KEY", None, "SECRET_KEY is not set"),
        ("SECRET_KEY", "short", "SECRET_KEY must be at least 20 characters"),
        ("DEBUG", "maybe", "DEBUG must be one of"),
        ("DATABASE_URL", "mysql://root@127.0.0.1/db", "DATABASE_URL must be a URL starting with"),
        ("REDIS_URL", "127.0.0.1:6379", "REDIS_URL must be a URL starting with"),
        ("ANTHROPIC_BASE_URL", "ftp://127.0.0.1", "ANTHROPIC_BASE_URL must be a URL starting with"),
        ("ANTHROPIC_RATE_LIMIT_PER_SECOND", "fast", "ANTHROPIC_RATE_LIMIT_PER_SECOND must be a number"),
        ("ANTHROPIC_MAX_RETRIES", "-1", "ANTHROPIC_MAX_RETRIES must be at least 0"),
        ("SYNC_INTERVAL_SECONDS", "1.5", "SYNC_INTERVAL_SECONDS must be a whole number"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR"),
    ],
)
def test_settings_invalid_value_names_variable(variable, value, expected_message):
    result = load_settings(**{variable: value})

    assert result.returncode != 0
    assert expected_message in result.stderr


def test_settings_database_url_error_hides_password():
    result = load_settings(DATABASE_URL="mysql://user:hunter2-secret@127.0.0.1/db")

    assert "hunter2-secret" not in result.stderr


def test_settings_without_redis_use_filesystem_broker():
    result = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings; "
         "print(settings.CELERY_BROKER_URL)"],
        cwd=PROJECT_ROOT, env={**os.environ, **VALID_ENV, "REDIS_URL": ""},
        capture_output=True, text=True, timeout=60,
    )

    assert result.stdout.strip() == "filesystem://", result.stderr


def test_settings_filesystem_broker_folders_under_var_dir(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings; "
         "print('\\n'.join(value for key, value in settings.CELERY_BROKER_TRANSPORT_OPTIONS.items() "
         "if key.endswith('_folder') or key.startswith('data_folder')))"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **VALID_ENV, "REDIS_URL": "", "DASHBOARD_VAR_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )
    folders = result.stdout.split()

    assert len(folders) == 4, result.stderr
    assert all(folder.startswith(str(tmp_path)) for folder in folders), folders


def test_settings_with_redis_shorten_visibility_timeout():
    result = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings; "
         "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'])"],
        cwd=PROJECT_ROOT, env={**os.environ, **VALID_ENV, "REDIS_URL": "redis://127.0.0.1:6379/9"},
        capture_output=True, text=True, timeout=60,
    )

    assert int(result.stdout.strip()) <= 600, result.stderr


@pytest.mark.parametrize(
    ("redis_url", "expected_transport"),
    [
        ("redis://127.0.0.1:6379/9", "dashboard.broker:Transport"),
        # kombu turns TLS on from the transport name "rediss", so kombu's transport stays.
        ("rediss://127.0.0.1:6379/9", "None"),
    ],
)
def test_settings_broker_transport_for_redis_scheme(redis_url, expected_transport):
    result = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings; "
         "print(getattr(settings, 'CELERY_BROKER_TRANSPORT', None))"],
        cwd=PROJECT_ROOT, env={**os.environ, **VALID_ENV, "REDIS_URL": redis_url},
        capture_output=True, text=True, timeout=60,
    )

    assert result.stdout.strip() == expected_transport, result.stderr
