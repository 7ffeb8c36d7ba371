"""Full sync against the emulator, over HTTP through the real SDK."""

from datetime import UTC

import pytest

from tests.factories import SessionFactory, ThreadFactory
from tests.threads.sync_support import expected_full_sync_calls, sync_settings  # noqa: F401
from threads.models import Session, SyncRunKind, SyncRunStatus, Thread
from threads.services.sync import sync_full

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_settings")]


def test_sync_full_stores_every_session(emulator):
    sync_full()

    assert Session.objects.count() == len(emulator.state_sessions())


def test_sync_full_stores_every_thread(emulator):
    sync_full()

    assert Thread.objects.count() == len(emulator.state_threads())


def test_sync_full_run_records_counts(emulator):
    record_count = len(emulator.state_sessions()) + len(emulator.state_threads())

    run = sync_full()

    assert run.kind == SyncRunKind.FULL
    assert run.status == SyncRunStatus.SUCCEEDED
    assert run.seen == record_count
    assert run.created == record_count
    assert run.updated == 0
    assert run.failed == 0
    assert run.errors == []
    assert run.finished_at is not None


def test_sync_full_makes_minimum_api_calls(emulator):
    emulator.reset_log()

    run = sync_full()

    assert run.api_calls == expected_full_sync_calls(emulator)
    assert emulator.log()["total"] == run.api_calls


def test_sync_full_rerun_writes_nothing(emulator):
    sync_full()
    fetched_before = dict(Thread.objects.values_list("id", "fetched_at"))

    run = sync_full()

    assert run.created == 0
    assert run.updated == 0
    assert run.unchanged == run.seen
    assert dict(Thread.objects.values_list("id", "fetched_at")) == fetched_before


def test_sync_full_thread_columns_match_emulator(emulator):
    sync_full()

    stored = {thread.id: thread for thread in Thread.objects.all()}
    for row in emulator.state_threads():
        thread = stored[row["id"]]
        assert thread.session_id == row["session_id"]
        assert thread.status == row["status"]
        assert thread.parent_id == row["parent_thread_id"]
        assert thread.is_primary == (row["parent_thread_id"] is None)
        assert thread.workflow_run_id == row["workflow_run_id"]
        assert thread.agent_type == row["agent_type"]
        assert (thread.archived_at is None) == (row["archived_at"] is None)


def test_sync_full_thread_usage_null_stays_null(emulator):
    sync_full()

    no_usage = {row["id"] for row in emulator.state_threads() if row["usage"] is None}
    assert no_usage, "the seed data should include threads without usage"
    for thread in Thread.objects.filter(id__in=no_usage):
        assert thread.input_tokens is None
        assert thread.list_cost_amount is None


def test_sync_full_session_thread_count(emulator):
    sync_full()

    stored = dict(Session.objects.values_list("id", "thread_count"))
    for row in emulator.state_sessions():
        assert stored[row["id"]] == row["thread_count"]


def test_sync_full_one_primary_per_session(emulator):
    sync_full()

    for session in Session.objects.all():
        assert session.threads.filter(is_primary=True).count() == 1


def test_sync_full_timestamps_are_utc(emulator):
    sync_full()

    thread = Thread.objects.first()
    assert thread.created_at.tzinfo == UTC
    assert thread.updated_at.tzinfo == UTC


def test_sync_full_marks_unlisted_thread_gone(emulator):
    sync_full()
    session = Session.objects.first()
    stray = ThreadFactory(session=session, id="sthr_notupstream")

    sync_full()

    stray.refresh_from_db()
    assert stray.gone_at is not None


def test_sync_full_marks_deleted_session_gone(emulator):
    stray = SessionFactory(id="sesn_notupstream")
    emulator.reset_log()

    run = sync_full()

    stray.refresh_from_db()
    assert stray.gone_at is not None
    assert run.api_calls == expected_full_sync_calls(emulator) + 1
    assert run.status == SyncRunStatus.SUCCEEDED


def test_sync_full_marks_session_deleted_upstream_gone(emulator):
    from threads.client import api_client
    from threads.rate_limit import Priority

    sync_full()
    session_id = next(row["id"] for row in emulator.state_sessions() if row["status"] != "running")
    api_client(priority=Priority.INTERACTIVE).beta.sessions.delete(session_id)

    sync_full()

    assert Session.objects.get(id=session_id).gone_at is not None


def test_sync_full_keeps_gone_rows(emulator):
    sync_full()
    session = Session.objects.first()
    ThreadFactory(session=session, id="sthr_notupstream")

    sync_full()

    assert Thread.objects.filter(id="sthr_notupstream").exists()


@pytest.mark.postgres
def test_sync_full_concurrent_runs_rejected(emulator):
    from threads.services.sync import SyncAlreadyRunning
    from threads.services.sync_lock import sync_run_claim

    sync_run_claim(kind=SyncRunKind.FULL)

    with pytest.raises(SyncAlreadyRunning):
        sync_full()
