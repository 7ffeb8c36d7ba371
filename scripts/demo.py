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


def wait_for_port(host: str, port: int, *, timeout: float, process: subprocess.Popen) -> None:
    """Wait until something accepts connections on host:port; raise if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("A demo process exited early with code %s." % process.returncode)
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("Nothing listens on %s:%s after %.0f s." % (host, port, timeout))


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main() -> None:
    env = demo_environment()
    web_port = int(env.get("DEMO_PORT", "8000"))
    emulator_port = int(env.get("EMULATOR_PORT", "8765"))
    processes: list[subprocess.Popen] = []

    def start(name: str, *command: str) -> subprocess.Popen:
        print("demo: starting %s" % name, flush=True)
        process = subprocess.Popen(list(command), cwd=ROOT, env=env, start_new_session=True)
        processes.append(process)
        return process

    def stop_all(*_args) -> None:
        print("\ndemo: stopping %d processes" % len(processes), flush=True)
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        sys.exit(0)

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)

    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "demo_users", DEMO_USER, DEMO_PASSWORD, VIEWER_USER, VIEWER_PASSWORD)

    emulator = start(
        "emulator", PYTHON, "-m", "emulator", "--host", "127.0.0.1",
        "--port", str(emulator_port), "--seed", "1", "--odd-records", "2",
    )
    wait_for_port("127.0.0.1", emulator_port, timeout=60, process=emulator)
    manage(env, "sync_threads", "--full")

    start("Celery worker", PYTHON, "-m", "celery", "-A", "dashboard", "worker",
          "--loglevel=INFO", "--concurrency=4")
    start("Celery beat", PYTHON, "-m", "celery", "-A", "dashboard", "beat", "--loglevel=INFO")
    web = start("web server", PYTHON, "manage.py", "runserver", "127.0.0.1:%d" % web_port,
                "--noreload")
    wait_for_port("127.0.0.1", web_port, timeout=60, process=web)

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
                print("demo: a process exited with code %s; stopping" % process.returncode)
                stop_all()
        time.sleep(1)


if __name__ == "__main__":
    main()
