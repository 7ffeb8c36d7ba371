"""Fixtures shared by the whole suite.

Real components only: the emulator runs as a subprocess over HTTP, PostgreSQL and
Redis are the machine's own when DATABASE_URL and REDIS_URL point at them, and
worker tests start a real Celery worker process.
"""

import os

import pytest

from threads.client import reset_api_clients
from threads.rate_limit import reset_rate_limiter

pytest_plugins = ["tests.support.emulator", "tests.support.services"]


def pytest_collection_modifyitems(config, items):
    """Skip tests whose services are not configured, saying what to set."""
    has_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    has_redis = os.environ.get("REDIS_URL", "").startswith(("redis://", "rediss://"))
    skip_postgres = pytest.mark.skip(
        reason="needs PostgreSQL: set DATABASE_URL=postgresql://postgres@127.0.0.1:5432/dashboard"
    )
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://127.0.0.1:6379/1")
    has_chromium = os.path.exists("/usr/bin/chromium")
    skip_browser = pytest.mark.skip(reason="needs Debian's chromium at /usr/bin/chromium: apt-get install chromium")

    for item in items:
        needs_postgres = "postgres" in item.keywords or "worker" in item.keywords
        needs_redis = "redis" in item.keywords or "worker" in item.keywords
        if needs_postgres and not has_postgres:
            item.add_marker(skip_postgres)
        elif needs_redis and not has_redis:
            item.add_marker(skip_redis)
        elif "browser" in item.keywords and not has_chromium:
            item.add_marker(skip_browser)


@pytest.fixture(autouse=True)
def _fresh_api_clients():
    """Rebuild SDK clients and the limiter from each test's settings."""
    reset_api_clients()
    reset_rate_limiter()
    yield
    reset_api_clients()
    reset_rate_limiter()


@pytest.fixture
def api_settings(settings, emulator):
    """Point the dashboard's API client at the shared emulator, reset to its seed data."""
    emulator.reset()
    settings.ANTHROPIC_BASE_URL = emulator.base_url
    settings.ANTHROPIC_API_KEY = emulator.api_key
    reset_api_clients()
    return settings

