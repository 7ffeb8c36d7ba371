"""Start the whole dashboard with demo data; Ctrl-C stops every process.

Started here, in order: database migrations, the API emulator with seeded data, a
first full sync, a Celery worker, Celery beat and the web server. Settings come
from the environment like in production; this script only fills in demo defaults
(SQLite, the emulator's key and address, DEBUG on).
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = ROOT / "var"
PYTHON = sys.executable

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"
VIEWER_USER = "viewer"
VIEWER_PASSWORD = "viewer-password"


def demo_environment() -> dict[str, str]:
    """Return the environment for every demo process, with demo defaults filled in."""
    VAR_DIR.mkdir(exist_ok=True)
    secret_file = VAR_DIR / "demo-secret-key"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(50))

    env = dict(os.environ)
    emulator_port = env.get("EMULATOR_PORT", "8765")
    env.setdefault("SECRET_KEY", secret_file.read_text().strip())
    env.setdefault("DEBUG", "true")
    env.setdefault("ANTHROPIC_API_KEY", "sk-ant-emulator")
    env.setdefault("ANTHROPIC_BASE_URL", "http://127.0.0.1:%s" % emulator_port)
    env.setdefault("SYNC_INTERVAL_SECONDS", "30")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    return env


class DemoError(Exception):
    """A start-up step failed; the message names the step and what to change."""


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived."""


def port_from_env(env: dict[str, str], *, name: str, default: str) -> int:
    """Return the port that the variable `name` sets; raise DemoError for a value that is not one."""
    value = env.get(name, default)
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise DemoError("%s=%r is not a port number; set it to a free port from 1 to 65535." % (name, value))
    return port


def port_check_free(port: int, *, name: str) -> None:
    """Bind 127.0.0.1:port and release it; raise DemoError, naming `name`, when the port is taken."""
    with socket.socket() as probe:
        # Lets the bind succeed over a closed connection in TIME_WAIT, as the servers'
        # own binds do; an open listener still makes it fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoError(
                "Port %d on 127.0.0.1 is already in use (%s); set %s to a free port."
                % (port, exc.strerror, name)
            ) from exc


def wait_for_port(host: str, port: int, *, timeout: float, name: str, process: subprocess.Popen) -> None:
    """Wait until something accepts connections on host:port; raise DemoError if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError("The %s exited during start-up with code %s." % (name, process.returncode))
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise DemoError("The %s does not listen on %s:%s after %.0f s." % (name, host, port, timeout))


def manage(env: dict[str, str], step: str, *args: str) -> None:
    """Run a manage.py command; raise DemoError naming `step` when it fails."""
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise DemoError(
            "%s (manage.py %s) failed with exit code %d; see its output above."
            % (step, " ".join(args), result.returncode)
        )


def processes_stop(processes: list[subprocess.Popen]) -> None:
    """Send SIGTERM to each started process group, newest first, and SIGKILL any still running after 10 s."""
    if not processes:
        return
    print("\ndemo: stopping %d processes" % len(processes), flush=True)
    for process in reversed(processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    """Start the demo and supervise it; return 0 after Ctrl-C, 1 when a step or a process failed."""
    processes: list[subprocess.Popen] = []

    def stop_requested(*_args) -> None:
        raise StopRequested

    signal.signal(signal.SIGINT, stop_requested)
    signal.signal(signal.SIGTERM, stop_requested)

    try:
        _run(processes)
    except StopRequested:
        return 0
    except DemoError as exc:
        print("demo: error: %s" % exc, file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave orphans.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        processes_stop(processes)


def _run(processes: list[subprocess.Popen]) -> None:
    """Check the ports, run every start-up step, then wait until a process exits (DemoError)."""
    env = demo_environment()
    web_port = port_from_env(env, name="DEMO_PORT", default="8000")
    emulator_port = port_from_env(env, name="EMULATOR_PORT", default="8765")

    # Checked before anything starts, so a taken port leaves nothing to clean up.
    if web_port == emulator_port:
        raise DemoError("DEMO_PORT and EMULATOR_PORT are both %d; set them to different ports." % web_port)
    port_check_free(web_port, name="DEMO_PORT")
    port_check_free(emulator_port, name="EMULATOR_PORT")

    names: dict[int, str] = {}

    def start(name: str, *command: str) -> subprocess.Popen:
        print("demo: starting %s" % name, flush=True)
        process = subprocess.Popen(list(command), cwd=ROOT, env=env, start_new_session=True)
        processes.append(process)
        names[process.pid] = name
        return process

    manage(env, "The database migration", "migrate", "--no-input", "-v", "0")
    manage(env, "Creating the demo users", "demo_users", DEMO_USER, DEMO_PASSWORD, VIEWER_USER,
           VIEWER_PASSWORD)

    emulator = start(
        "emulator", PYTHON, "-m", "emulator", "--host", "127.0.0.1",
        "--port", str(emulator_port), "--seed", "1", "--odd-records", "2",
    )
    wait_for_port("127.0.0.1", emulator_port, timeout=60, name="emulator", process=emulator)
    manage(env, "The first sync", "sync_threads", "--full")

    start("Celery worker", PYTHON, "-m", "celery", "-A", "dashboard", "worker",
          "--loglevel=INFO", "--concurrency=4")
    start("Celery beat", PYTHON, "-m", "celery", "-A", "dashboard", "beat", "--loglevel=INFO")
    web = start("web server", PYTHON, "manage.py", "runserver", "127.0.0.1:%d" % web_port,
                "--noreload")
    wait_for_port("127.0.0.1", web_port, timeout=60, name="web server", process=web)

    print(
        "\n"
        "  Dashboard:  http://127.0.0.1:%d/\n"
        "  Log in as:  %s / %s   (may archive)\n"
        "         or:  %s / %s   (read only)\n"
        "  Emulator:   %s\n"
        "  Press Ctrl-C to stop everything.\n"
        % (web_port, DEMO_USER, DEMO_PASSWORD, VIEWER_USER, VIEWER_PASSWORD,
           env["ANTHROPIC_BASE_URL"]),
        flush=True,
    )

    while True:
        for process in processes:
            if process.poll() is not None:
                raise DemoError("The %s exited with code %s." % (names[process.pid], process.returncode))
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
