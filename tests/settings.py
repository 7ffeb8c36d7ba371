"""Settings for the test run: the project's settings with safe test defaults.

The variables CI sets (DATABASE_URL, REDIS_URL) pass through untouched; fixtures
point the API base URL at an emulator they start on a free port.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdef")
os.environ.setdefault("DASHBOARD_VAR_DIR", "/tmp/thread-dashboard-tests")

from dashboard.settings import *  # noqa: E402,F403

# Not taken from ANTHROPIC_*: the real-API contract tests read those to decide whether
# to run. Fixtures point the client at an emulator, and worker processes receive its
# address in TEST_ANTHROPIC_*; until then calls go to a closed port, never the real API.
ANTHROPIC_API_KEY = os.environ.get("TEST_ANTHROPIC_API_KEY", "sk-ant-emulator")
ANTHROPIC_BASE_URL = os.environ.get("TEST_ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A test must not wait a minute on an unreachable API.
ANTHROPIC_READ_TIMEOUT_SECONDS = 5.0
ANTHROPIC_CONNECT_TIMEOUT_SECONDS = 2.0
ANTHROPIC_RATE_LIMIT_PER_SECOND = 1000.0
ANTHROPIC_RATE_LIMIT_BURST = 1000
ARCHIVE_GRACE_SECONDS = 0
