"""Fixtures that start real services for a test: a Celery worker process, Redis access.

A worker runs as its own process (`celery -A dashboard worker`) against the test
database and the broker in REDIS_URL, so what it does is what production does:
acknowledgement, redelivery and crashes are real. Tests that use it need committed
data, so they run with `transactional_db`.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Keys this project keeps in Redis: Celery's queues and bookkeeping, and the limiter.
REDIS_KEY_PATTERNS = ["celery*", "_kombu*", "unacked*", "dashboard:*"]


def redis_clear_project_keys(url: str) -> None:
    """Delete this project's keys from the Redis database in `url`, nothing else."""
    import redis

    connection = redis.Redis.from_url(url)
    for pattern in REDIS_KEY_PATTERNS:
        keys = list(connection.scan_iter(match=pattern, count=1000))
        if keys:
            connection.delete(*keys)
    connection.close()


def database_url_for_test_database() -> str:
    """Return DATABASE_URL with its database name swapped for the test database's."""
    from django.db import connection

    parsed = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(parsed._replace(path="/" + connection.settings_dict["NAME"]))


class WorkerProcess:
    """A Celery worker subprocess, with its log in a file."""

    def __init__(self, *, env: dict[str, str], log_path: Path, concurrency: int, name: str):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        command = [
            sys.executable, "-m", "celery", "-A", "dashboard", "worker",
            "--loglevel=INFO", "--pool=prefork", "--concurrency=%d" % concurrency,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", "%s@%%h" % name,
        ]
        self.process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("Celery worker did not start:\n" + self.log_text()[-4000:])

    def log_text(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def redis_url():
    """Return REDIS_URL after clearing this project's keys from its database."""
    url = os.environ["REDIS_URL"]
    redis_clear_project_keys(url)
    yield url
    redis_clear_project_keys(url)


@pytest.fixture
def celery_worker_factory(transactional_db, api_settings, redis_url, tmp_path):
    """Start real Celery workers on the test database, the emulator and Redis.

    Returns a function `start(concurrency=4, extra_env=None) -> WorkerProcess`; every
    worker started is stopped after the test, and its log is printed when the test fails.
    """
    workers: list[WorkerProcess] = []

    def start(*, concurrency: int = 4, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            DATABASE_URL=database_url_for_test_database(),
            REDIS_URL=redis_url,
            TEST_ANTHROPIC_BASE_URL=api_settings.ANTHROPIC_BASE_URL,
            TEST_ANTHROPIC_API_KEY=api_settings.ANTHROPIC_API_KEY,
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env or {})
        worker = WorkerProcess(
            env=env,
            log_path=tmp_path / ("worker-%d.log" % len(workers)),
            concurrency=concurrency,
            name="test-worker-%d-%d" % (os.getpid(), len(workers)),
        )
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start

    for worker in workers:
        worker.stop()
    for worker in workers:
        print("---- %s ----\n%s" % (worker.log_path.name, worker.log_text()[-6000:]))
