"""Sync runs under API trouble: 429s, 5xx, timeouts and dropped connections.

Faults are switched on from the run's progress callback, which runs after the
sessions page is read and before any thread list is requested, so they hit thread
lists and not the listing.
"""

import time

import pytest

from tests.threads.sync_support import expected_full_sync_calls, sync_settings  # noqa: F401
from threads.models import Session, SyncRunStatus
from threads.services.sync import sync_full, sync_incremental

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_settings")]


def _once(action):
    """Return a progress callback that runs `action` on its first call only."""
    done = []

    def progress(sessions_done: int, sessions_seen: int) -> None:
        if not done:
            done.append(True)
            action()

    return progress


def test_sync_429_pauses_and_finishes(emulator):
    emulator.force(429, 1)
    started = time.monotonic()

    run = sync_full()

    assert run.status == SyncRunStatus.SUCCEEDED
    assert run.api_calls == expected_full_sync_calls(emulator) + 1
    # The emulator sends retry-after: 1, which pauses the limiter and the SDK.
    assert time.monotonic() - started >= 1.0


def test_sync_emulator_rate_limit_run_finishes(emulator_factory, settings):
    limited = emulator_factory("--sessions", "15", "--rate-limit", "20")
    settings.ANTHROPIC_BASE_URL = limited.base_url
    settings.ANTHROPIC_MAX_RETRIES = 5

    run = sync_full()

    assert run.status == SyncRunStatus.SUCCEEDED
    assert Session.objects.count() == 15


def test_sync_listing_500_fails_run(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    emulator.force(500, 1)

    run = sync_full()

    assert run.status == SyncRunStatus.FAILED
    assert run.errors[0]["target"] == "sessions"
    assert run.errors[0]["error"] == "InternalServerError"
    assert run.errors[0]["request_id"].startswith("req_")


def test_sync_listing_500_retried_by_sdk(emulator):
    emulator.force(500, 2)

    run = sync_full()

    assert run.status == SyncRunStatus.SUCCEEDED
    assert run.api_calls == expected_full_sync_calls(emulator) + 2


def test_sync_thread_list_500_partial(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0

    run = sync_full(progress=_once(lambda: emulator.force(500, 1)))

    assert run.status == SyncRunStatus.PARTIAL
    assert len(run.errors) == 1
    assert run.errors[0]["error"] == "InternalServerError"
    assert run.errors[0]["target"].startswith("sesn_")
    assert run.failed == 1


def test_sync_failed_session_not_stored(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0

    run = sync_full(progress=_once(lambda: emulator.force(500, 1)))

    failed_id = run.errors[0]["target"]
    assert not Session.objects.filter(id=failed_id).exists()
    assert Session.objects.count() == len(emulator.state_sessions()) - 1


def test_sync_failed_session_retried_next_run(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    first = sync_full(progress=_once(lambda: emulator.force(500, 1)))
    failed_id = first.errors[0]["target"]

    second = sync_incremental()

    assert second.status == SyncRunStatus.SUCCEEDED
    assert Session.objects.filter(id=failed_id).exists()


def test_sync_dropped_connection_recorded(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0

    run = sync_full(progress=_once(lambda: emulator.force("drop", 1)))

    assert run.status == SyncRunStatus.PARTIAL
    assert [entry["error"] for entry in run.errors] == ["APIConnectionError"]


def test_sync_timeout_records_exactly_what_failed(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    settings.ANTHROPIC_READ_TIMEOUT_SECONDS = 0.5
    emulator.configure(slow_seconds=2)

    def slow_responses_on():
        emulator.configure(fault_slow=1)
        time.sleep(0.1)

    def progress(sessions_done: int, sessions_seen: int) -> None:
        if sessions_done == 0:
            slow_responses_on()
        else:
            emulator.configure(fault_slow=0)

    run = sync_full(progress=progress)

    failed_ids = {entry["target"] for entry in run.errors}
    stored_ids = set(Session.objects.values_list("id", flat=True))
    upstream_ids = {row["id"] for row in emulator.state_sessions()}
    assert run.status == SyncRunStatus.PARTIAL
    assert failed_ids
    assert {entry["error"] for entry in run.errors} == {"APITimeoutError"}
    assert failed_ids == upstream_ids - stored_ids
    assert run.failed == len(failed_ids)


def test_sync_error_never_contains_api_key(emulator, settings, caplog):
    settings.ANTHROPIC_MAX_RETRIES = 0
    emulator.force(500, 1)

    run = sync_full()

    assert settings.ANTHROPIC_API_KEY not in str(run.errors)
    assert settings.ANTHROPIC_API_KEY not in caplog.text


def test_sync_logs_start_and_end(emulator, caplog):
    caplog.set_level("INFO", logger="threads.services")

    run = sync_full()

    messages = [record.getMessage() for record in caplog.records]
    assert "Sync run started" in messages
    finished = next(r for r in caplog.records if r.getMessage() == "Sync run finished")
    assert finished.sync_run_id == run.pk
    assert finished.api_calls == run.api_calls
