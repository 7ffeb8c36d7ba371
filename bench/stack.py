"""Pieces of a live stack for the benchmarks and drills: databases, Redis, machine facts.

The emulator and Celery workers come from `tests/support/`, the same code the worker
tests use, so a benchmark or drill starts them exactly as the suite does.
"""

import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
# A fixed key for benchmark processes only; nothing they start is reachable from outside.
BENCH_SECRET_KEY = "bench-only-secret-key-0123456789abcdef"
EMULATOR_API_KEY = "sk-ant-emulator"
BENCH_VAR_DIR = "/tmp/thread-dashboard-bench"


class StackError(RuntimeError):
    """A service of the stack failed to start or a setting is invalid."""


def database_url_for(*, name: str, base_url: str | None = None) -> str:
    """Return DATABASE_URL (or `base_url`) pointing at database `name`.

    Raises StackError unless the URL is PostgreSQL and `name` starts with `bench_`,
    because the benchmarks create and drop the database.
    """
    url = base_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise StackError("DATABASE_URL must be a postgresql:// URL, got scheme %r." % parsed.scheme)
    if not name.startswith("bench_"):
        raise StackError("Benchmark database names start with bench_, got %r." % name)
    return urlunparse(parsed._replace(path="/" + name))


def database_recreate(url: str) -> None:
    """Drop the database named in `url` if it exists, and create it empty."""
    name = urlparse(url).path.lstrip("/")
    with _maintenance_connection(url) as connection:
        connection.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        connection.execute('CREATE DATABASE "%s"' % name)


def database_drop(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    with _maintenance_connection(url) as connection:
        connection.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def _maintenance_connection(url: str):
    import psycopg

    maintenance = urlunparse(urlparse(url)._replace(path="/postgres"))
    return psycopg.connect(maintenance, autocommit=True, connect_timeout=10)


def django_env(*, database_url: str, redis_url: str, **settings: object) -> dict[str, str]:
    """Return an environment for a Django process of the benchmark: its settings, nothing secret."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        SECRET_KEY=BENCH_SECRET_KEY,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        ALLOWED_HOSTS="testserver,127.0.0.1,localhost",
        DASHBOARD_VAR_DIR=BENCH_VAR_DIR,
        ANTHROPIC_API_KEY=EMULATOR_API_KEY,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update({name: str(value) for name, value in settings.items()})
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A throwaway `redis-server` on 127.0.0.1 with no persistence, which a drill may restart."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 10.0) -> "RedisServer":
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ping():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise StackError("redis-server on port %d did not answer PING within %.0f s." % (self.port, timeout))

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; everything it held is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def machine_facts() -> dict[str, str]:
    """Return the CPU model, core count and memory of this machine, from /proc."""
    cpu_model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if match:
            cpu_model = match.group(1).strip()

    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        if match:
            memory = "%.1f GiB" % (int(match.group(1)) / 2**20)

    return {
        "cpu": cpu_model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": sys.version.split()[0],
        "postgresql": _postgres_version(),
    }


def _postgres_version() -> str:
    try:
        url = database_url_for(name="bench_probe")
        with _maintenance_connection(url) as connection:
            return connection.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - a fact for the report, never a reason to stop
        return "unknown (%s)" % type(exc).__name__
