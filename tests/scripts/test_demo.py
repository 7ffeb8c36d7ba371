"""scripts/demo.py run as `make demo` runs it: port checks and clean-up after a failed start-up.

Each test runs the script in a subprocess with a SQLite database under tmp_path, so
it never touches the test database.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _demo_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL="sqlite:///%s" % (tmp_path / "demo.sqlite3"),
        DEMO_PORT=str(_free_port()),
        EMULATOR_PORT=str(_free_port()),
    )
    env.update(overrides)
    return env


def _demo_run(env: dict[str, str], *, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEMO)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def busy_port():
    """A port with a listener on 127.0.0.1, as another program would hold it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("variable", ["DEMO_PORT", "EMULATOR_PORT"])
def test_demo_busy_port_exits_before_starting(tmp_path, busy_port, variable):
    env = _demo_env(tmp_path, **{variable: str(busy_port)})

    result = _demo_run(env, timeout=30)

    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "set %s to a free port" % variable in result.stderr
    assert "demo: starting" not in result.stdout
    assert "Dashboard:" not in result.stdout
    assert not (tmp_path / "demo.sqlite3").exists()


def test_demo_same_ports_rejected(tmp_path):
    port = str(_free_port())

    result = _demo_run(_demo_env(tmp_path, DEMO_PORT=port, EMULATOR_PORT=port), timeout=30)

    assert result.returncode == 1
    assert "DEMO_PORT and EMULATOR_PORT are both" in result.stderr


def test_demo_failed_sync_stops_emulator(tmp_path):
    emulator_port = _free_port()
    # Nothing listens at the sync's target port, so the sync fails while the emulator
    # is up. The script must then stop the emulator, which releases its port.
    env = _demo_env(
        tmp_path,
        EMULATOR_PORT=str(emulator_port),
        ANTHROPIC_BASE_URL="http://127.0.0.1:%d" % _free_port(),
        ANTHROPIC_MAX_RETRIES="0",
        ANTHROPIC_CONNECT_TIMEOUT_SECONDS="1",
    )

    result = _demo_run(env, timeout=180)

    assert result.returncode == 1
    assert "demo: error: The first sync (manage.py sync_threads --full) failed" in result.stderr
    assert "Traceback" not in result.stderr.split("demo: error:")[-1]
    assert "demo: stopping 1 processes" in result.stdout
    assert _port_is_free(emulator_port)
