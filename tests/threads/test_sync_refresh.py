"""Refresh of one session or one thread, at interactive priority."""

import pytest

from tests.factories import SessionFactory, ThreadFactory
from tests.threads.sync_support import idle_session_id, sync_settings  # noqa: F401
from threads.models import Session, SyncRunKind, SyncRunStatus, Thread
from threads.services.sync import session_refresh, thread_refresh

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_settings")]


def test_session_refresh_stores_session_and_threads(emulator):
    session_id = idle_session_id(emulator)
    upstream = [row for row in emulator.state_threads() if row["session_id"] == session_id]

    run = session_refresh(session_id=session_id)

    assert run.kind == SyncRunKind.SESSION
    assert run.target_id == session_id
    assert run.status == SyncRunStatus.SUCCEEDED
    assert run.api_calls == 2
    assert Thread.objects.filter(session_id=session_id).count() == len(upstream)
    assert Session.objects.get(id=session_id).thread_count == len(upstream)


def test_session_refresh_404_marks_gone(emulator):
    SessionFactory(id="sesn_missingupstream")

    run = session_refresh(session_id="sesn_missingupstream")

    assert run.status == SyncRunStatus.SUCCEEDED
    assert Session.objects.get(id="sesn_missingupstream").gone_at is not None


def test_session_refresh_uses_interactive_priority(emulator, monkeypatch):
    from threads import client as client_module

    priorities = []
    build = client_module._build_client

    def recording_build(*, priority, max_retries):
        priorities.append(priority)
        return build(priority=priority, max_retries=max_retries)

    # Records the priority the service requests; the client itself is real.
    monkeypatch.setattr(client_module, "_build_client", recording_build)

    session_refresh(session_id=idle_session_id(emulator))

    assert [p.name for p in priorities] == ["INTERACTIVE"]


def test_thread_refresh_updates_thread(emulator):
    row = next(r for r in emulator.state_threads() if r["status"] == "idle")
    ThreadFactory(id=row["id"], session=SessionFactory(id=row["session_id"]), status="running")

    run = thread_refresh(session_id=row["session_id"], thread_id=row["id"])

    assert run.kind == SyncRunKind.THREAD
    assert run.updated == 1
    assert run.api_calls == 1
    assert Thread.objects.get(id=row["id"]).status == "idle"


def test_thread_refresh_404_marks_gone(emulator):
    session_id = idle_session_id(emulator)
    thread = ThreadFactory(id="sthr_missingupstream", session=SessionFactory(id=session_id))

    run = thread_refresh(session_id=session_id, thread_id=thread.id)

    thread.refresh_from_db()
    assert run.status == SyncRunStatus.SUCCEEDED
    assert thread.gone_at is not None


def test_thread_refresh_gone_thread_returns(emulator):
    row = emulator.state_threads()[0]
    thread_refresh(session_id=row["session_id"], thread_id=row["id"])
    Thread.objects.filter(id=row["id"]).update(gone_at="2026-01-01T00:00:00Z")

    thread_refresh(session_id=row["session_id"], thread_id=row["id"])

    assert Thread.objects.get(id=row["id"]).gone_at is None


def test_thread_refresh_500_recorded(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    row = emulator.state_threads()[0]
    emulator.force(500, 1)

    run = thread_refresh(session_id=row["session_id"], thread_id=row["id"])

    assert run.status == SyncRunStatus.PARTIAL
    assert run.errors[0]["target"] == row["id"]
