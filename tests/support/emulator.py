"""Run the API emulator as a subprocess for tests, and pytest fixtures that do so.

No Django imports: any test can use this. ``EmulatorProcess`` starts
``python -m emulator --host 127.0.0.1 --port 0`` with the interpreter running the tests,
reads the URL from its first stdout line, and drives the ``/_emulator/`` control
endpoints with ``urllib``.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_API_KEY = "sk-ant-emulator"
STARTUP_TIMEOUT_SECONDS = 20.0
CONTROL_TIMEOUT_SECONDS = 30.0


class EmulatorError(RuntimeError):
    """The emulator failed to start, or a control request failed."""


class EmulatorProcess:
    """One emulator subprocess on 127.0.0.1 with a free port.

    ``options`` are extra command-line arguments such as ``("--sessions", "40")``.
    Call ``start()`` (or use it as a context manager) and ``stop()`` when done.
    """

    def __init__(self, *options: str, api_key: str = DEFAULT_API_KEY, startup_timeout: float = STARTUP_TIMEOUT_SECONDS):
        self.options = [str(option) for option in options]
        self.api_key = api_key
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self.process: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()

    def __enter__(self) -> "EmulatorProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> "EmulatorProcess":
        """Start the process and wait for its URL.

        Raises EmulatorError, including the process's stderr, when no URL line arrives
        within ``startup_timeout`` seconds or the process exits first.
        """
        command = [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0", "--api-key", self.api_key, *self.options]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=self._stderr)

        first_line: list[bytes] = []
        reader = threading.Thread(target=lambda: first_line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)

        line = first_line[0].decode("utf-8", "replace").strip() if first_line else ""
        prefix = "emulator listening on "
        if not line.startswith(prefix):
            self.stop()
            reason = "printed %r" % line if first_line else "printed nothing within %.0f s" % self.startup_timeout
            raise EmulatorError("The emulator (%s) %s. Its stderr:\n%s" % (" ".join(command), reason, self.stderr()))
        self.base_url = line[len(prefix) :]
        return self

    def stop(self) -> None:
        """Terminate the process, then kill it if it has not exited after 5 s."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stdout:
            process.stdout.close()
        self.process = None

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    # Control endpoints

    def control(self, method: str, path: str, body: dict | None = None) -> object:
        """Send a request to ``/_emulator/<path>`` and return the decoded JSON.

        Raises EmulatorError with the status and body when the response is not 2xx.
        """
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + "/_emulator/" + path.lstrip("/"),
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_SECONDS) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise EmulatorError("%s /_emulator/%s failed with %d: %s" % (method, path, exc.code, exc.read().decode("utf-8", "replace"))) from exc

    def log(self) -> dict:
        return self.control("GET", "log")

    def reset_log(self) -> dict:
        return self.control("POST", "log/reset", {})

    def configure(self, **settings) -> dict:
        return self.control("POST", "config", settings)

    def force(self, status: int | str, count: int = 1) -> dict:
        return self.control("POST", "force", {"status": status, "count": count})

    def set_thread(self, thread_id: str, **changes) -> dict:
        return self.control("POST", "threads/%s" % thread_id, changes)

    def touch_session(self, session_id: str, **changes) -> dict:
        return self.control("POST", "sessions/%s/touch" % session_id, changes)

    def add_thread(self, session_id: str, **options) -> dict:
        return self.control("POST", "sessions/%s/threads" % session_id, options)

    def state_threads(self) -> list[dict]:
        return self.control("GET", "state/threads")

    def state_sessions(self) -> list[dict]:
        return self.control("GET", "state/sessions")

    def reset(self) -> dict:
        return self.control("POST", "reset", {})


@pytest.fixture(scope="session")
def emulator():
    """One emulator with 40 sessions for the whole test run; call ``reset()`` before relying on its state."""
    process = EmulatorProcess("--sessions", "40").start()
    yield process
    process.stop()


@pytest.fixture
def emulator_factory():
    """Start emulators with given options, e.g. ``emulator_factory("--no-cascade")``; all stop after the test."""
    started: list[EmulatorProcess] = []

    def start(*options: str, api_key: str = DEFAULT_API_KEY) -> EmulatorProcess:
        process = EmulatorProcess(*options, api_key=api_key).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
