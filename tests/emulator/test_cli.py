"""The command line, process behaviour, determinism and generated-data options."""

import json
import signal
import subprocess
import sys
import time

import anthropic
import pytest

from tests.emulator.helpers import MODELS, raw_request, sdk_client, strict
from tests.support.emulator import PROJECT_ROOT, EmulatorError, EmulatorProcess

ANCHOR = "2026-03-15T10:00:00Z"


def help_text() -> str:
    result = subprocess.run([sys.executable, "-m", "emulator", "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    return result.stdout


def test_help_states_units():
    text = " ".join(help_text().split())

    assert "in milliseconds" in text
    assert "requests per second" in text
    assert "in seconds" in text
    assert "fraction 0..1" in text
    assert "ISO 8601" in text


def test_help_lists_every_option():
    text = help_text()

    for option in (
        "--host", "--port", "--seed", "--api-key", "--sessions", "--children", "--anchor", "--latency-ms", "--rate-limit",
        "--fault-500", "--fault-529", "--fault-drop", "--fault-slow", "--slow-seconds", "--workspace-id", "--odd-records",
        "--primary-archive-status", "--archived-session-thread-archive-status", "--no-cascade", "--interrupt-delay-ms",
    ):
        assert option in text, option


def test_invalid_option_value_exits_nonzero():
    result = subprocess.run([sys.executable, "-m", "emulator", "--fault-500", "2"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)

    assert result.returncode == 2
    assert "fraction" in result.stderr


def test_first_stdout_line_is_url(emulator_factory):
    emulator = emulator_factory("--sessions", "2")

    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert int(emulator.base_url.rsplit(":", 1)[1]) > 0


def listening_addresses(port: int) -> set[str]:
    """Read the kernel's table of listening IPv4 sockets (no network traffic) for ``port``."""
    addresses = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, state = fields[1], fields[3]
            address_hex, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                octets = [str(int(address_hex[index : index + 2], 16)) for index in range(6, -1, -2)]
                addresses.add(".".join(octets))
    return addresses


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp, which only Linux has")
def test_binds_only_given_host(emulator_factory):
    emulator = emulator_factory("--sessions", "2")
    port = int(emulator.base_url.rsplit(":", 1)[1])

    assert listening_addresses(port) == {"127.0.0.1"}


def test_sigterm_stops_cleanly():
    process = EmulatorProcess("--sessions", "2").start()
    popen = process.process

    popen.send_signal(signal.SIGTERM)
    code = popen.wait(timeout=10)

    assert code == 0
    assert "Stopped" in process.stderr()
    process.stop()


def test_sigint_stops_cleanly():
    process = EmulatorProcess("--sessions", "2").start()
    popen = process.process

    popen.send_signal(signal.SIGINT)

    assert popen.wait(timeout=10) == 0
    process.stop()


def test_startup_failure_reports_stderr():
    process = EmulatorProcess("--children", "5:1")

    with pytest.raises(EmulatorError) as caught:
        process.start()

    assert "MIN <= MAX" in str(caught.value)


def collect_bodies(emulator) -> list[str]:
    bodies = [raw_request(emulator, "GET", "/v1/sessions", query={"limit": 100, "include_archived": "true"}).text]
    for session in emulator.state_sessions():
        bodies.append(raw_request(emulator, "GET", "/v1/sessions/%s/threads" % session["id"]).text)
        bodies.append(raw_request(emulator, "GET", "/v1/sessions/%s/events" % session["id"], query={"limit": 1000}).text)
    return bodies


def test_same_seed_and_anchor_serve_identical_bodies(emulator_factory):
    first = emulator_factory("--sessions", "15", "--seed", "7", "--anchor", ANCHOR)
    second = emulator_factory("--sessions", "15", "--seed", "7", "--anchor", ANCHOR)

    assert collect_bodies(first) == collect_bodies(second)


def test_other_seed_serves_other_data(emulator_factory):
    first = emulator_factory("--sessions", "5", "--seed", "7", "--anchor", ANCHOR)
    second = emulator_factory("--sessions", "5", "--seed", "8", "--anchor", ANCHOR)

    assert collect_bodies(first)[0] != collect_bodies(second)[0]


def test_anchor_bounds_generated_times(emulator_factory):
    emulator = emulator_factory("--sessions", "30", "--anchor", ANCHOR)
    sessions = raw_request(emulator, "GET", "/v1/sessions", query={"limit": 100, "include_archived": "true"}).json()["data"]

    assert max(session["updated_at"] for session in sessions) <= "2026-03-15T10:00:00.000Z"
    assert min(session["created_at"] for session in sessions) >= "2026-02-13T10:00:00.000Z"


def test_sessions_option_sets_count(emulator_factory):
    emulator = emulator_factory("--sessions", "7")

    assert len(emulator.state_sessions()) == 7


def test_children_option_sets_thread_counts(emulator_factory):
    emulator = emulator_factory("--sessions", "6", "--children", "3:3")

    assert {row["thread_count"] for row in emulator.state_sessions()} == {4}
    primaries = [row for row in emulator.state_threads() if row["parent_thread_id"] is None]
    assert len(primaries) == 6


def test_children_zero_gives_single_agent_sessions(emulator_factory):
    emulator = emulator_factory("--sessions", "4", "--children", "0:0")
    sessions = raw_request(emulator, "GET", "/v1/sessions", query={"include_archived": "true"}).json()["data"]

    assert {session["agent"]["multiagent"] is None for session in sessions} == {True}


def test_odd_records_fail_strict_validation(emulator_factory):
    emulator = emulator_factory("--sessions", "5", "--odd-records", "1")
    newest = raw_request(emulator, "GET", "/v1/sessions", query={"limit": 1}).json()["data"][0]

    text = raw_request(emulator, "GET", "/v1/sessions/%s/threads" % newest["id"]).text

    with pytest.raises(Exception):
        strict(MODELS["thread_page"], text)
    data = json.loads(text)["data"]
    assert "paused_for_review" in {thread["status"] for thread in data}
    assert "scripted_agent" in {thread["agent"]["type"] for thread in data}
    assert any("created_at" not in thread for thread in data)


def test_odd_records_parse_with_sdk_lenient_path(emulator_factory):
    emulator = emulator_factory("--sessions", "5", "--odd-records", "1")
    client = sdk_client(emulator)
    newest = client.beta.sessions.list(limit=1).data[0]

    threads = list(client.beta.sessions.threads.list(newest.id))

    assert len(threads) == len([row for row in emulator.state_threads() if row["session_id"] == newest.id])


def test_odd_records_only_in_newest_sessions(emulator_factory):
    emulator = emulator_factory("--sessions", "5", "--odd-records", "2")
    newest_first = [row["id"] for row in reversed(emulator.state_sessions())]
    odd_sessions = {row["session_id"] for row in emulator.state_threads() if row["status"] == "paused_for_review"}

    assert odd_sessions == set(newest_first[:2])


def test_large_data_set_generation_time(emulator_factory):
    started = time.monotonic()
    emulator = emulator_factory("--sessions", "1000", "--children", "19:19")
    startup = time.monotonic() - started

    result = emulator.reset()
    session_id = emulator.state_sessions()[-1]["id"]
    request_started = time.monotonic()
    page = sdk_client(emulator).beta.sessions.threads.list(session_id)
    request_seconds = time.monotonic() - request_started

    assert result["threads"] == 20_000
    assert len(page.data) == 20
    assert startup < 20
    assert request_seconds < 2


def test_sdk_connection_refused_after_stop():
    process = EmulatorProcess("--sessions", "2").start()
    url = process.base_url
    process.stop()

    client = anthropic.Anthropic(api_key="sk-ant-emulator", base_url=url, max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        client.beta.sessions.list()
