"""Incremental sync: every session page, threads only of changed or active sessions."""

import pytest

from tests.threads.sync_support import (  # noqa: F401
    active_session_ids,
    idle_session_id,
    session_page_count,
    sync_settings,
)
from threads.models import Session, SyncRunKind, SyncRunStatus, Thread
from threads.services.sync import sync_full, sync_incremental

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_settings")]


def test_sync_incremental_first_run_stores_everything(emulator):
    run = sync_incremental()

    assert run.kind == SyncRunKind.INCREMENTAL
    assert Session.objects.count() == len(emulator.state_sessions())
    assert Thread.objects.count() == len(emulator.state_threads())


def test_sync_incremental_unchanged_lists_only_active(emulator):
    sync_full()
    emulator.reset_log()

    run = sync_incremental()

    pages = session_page_count(len(emulator.state_sessions()))
    assert run.api_calls == pages + len(active_session_ids(emulator))
    assert emulator.log()["total"] == run.api_calls


def test_sync_incremental_unchanged_writes_nothing(emulator):
    sync_full()

    run = sync_incremental()

    assert run.status == SyncRunStatus.SUCCEEDED
    assert run.created == 0
    assert run.updated == 0
    assert run.unchanged == run.seen


def test_sync_incremental_touched_session_relisted(emulator):
    sync_full()
    session_id = idle_session_id(emulator)
    emulator.touch_session(session_id, title="Renamed upstream")

    run = sync_incremental()

    pages = session_page_count(len(emulator.state_sessions()))
    assert run.api_calls == pages + len(active_session_ids(emulator)) + 1
    assert Session.objects.get(id=session_id).title == "Renamed upstream"
    assert run.updated == 1


def test_sync_incremental_thread_status_change(emulator):
    sync_full()
    session_id = idle_session_id(emulator)
    thread = next(row for row in emulator.state_threads() if row["session_id"] == session_id)
    emulator.set_thread(thread["id"], status="running")

    sync_incremental()

    assert Thread.objects.get(id=thread["id"]).status == "running"
    assert Session.objects.get(id=session_id).status == "running"


def test_sync_incremental_new_thread_created(emulator):
    sync_full()
    session_id = idle_session_id(emulator)
    added = emulator.add_thread(session_id, status="idle")

    run = sync_incremental()

    assert Thread.objects.filter(id=added["id"]).exists()
    assert run.created == 1
    assert Session.objects.get(id=session_id).thread_count == len(
        [row for row in emulator.state_threads() if row["session_id"] == session_id]
    )


def test_sync_incremental_thread_archived_upstream(emulator):
    sync_full()
    session_id = idle_session_id(emulator)
    child = next(
        row
        for row in emulator.state_threads()
        if row["session_id"] == session_id
        and row["parent_thread_id"] is not None
        and row["archived_at"] is None
    )
    emulator.set_thread(child["id"], archive=True)

    sync_incremental()

    thread = Thread.objects.get(id=child["id"])
    assert thread.archived_at is not None
    assert thread.status == "terminated"


def test_sync_incremental_session_archived_upstream(emulator):
    from threads.client import api_client
    from threads.rate_limit import Priority

    sync_full()
    session_id = idle_session_id(emulator)
    api_client(priority=Priority.INTERACTIVE).beta.sessions.archive(session_id)

    sync_incremental()

    session = Session.objects.get(id=session_id)
    assert session.archived_at is not None
    assert session.status == "terminated"
    assert session.threads.filter(archived_at__isnull=True).count() == 0
