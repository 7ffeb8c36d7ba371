"""Celery task entry points, their locks, and the sync_threads command."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.threads.sync_support import idle_session_id, sync_settings  # noqa: F401
from threads import tasks
from threads.models import Session, SyncRun, SyncRunKind, SyncRunStatus, Thread
from threads.services.sync_lock import sync_run_claim, sync_task_lock

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_settings")]


def test_sync_tasks_registered_by_name():
    from dashboard.celery import app

    app.loader.import_default_modules()
    for name in (
        "threads.sync_incremental",
        "threads.sync_full",
        "threads.session_refresh",
        "threads.thread_refresh",
    ):
        assert name in app.tasks


def test_sync_tasks_exported():
    assert set(tasks.sync.__all__) == {
        "sync_incremental",
        "sync_full",
        "session_refresh",
        "thread_refresh",
    }


def test_sync_full_task_runs_sync(emulator):
    tasks.sync_full.apply()

    run = SyncRun.objects.get()
    assert run.kind == SyncRunKind.FULL
    assert run.status == SyncRunStatus.SUCCEEDED


def test_sync_incremental_task_skips_when_claimed(emulator, caplog):
    sync_run_claim(kind=SyncRunKind.INCREMENTAL)
    caplog.set_level("INFO", logger="threads.tasks")

    tasks.sync_incremental.apply()

    assert SyncRun.objects.count() == 1
    assert "Skipped sync: another run is in progress" in caplog.text


@pytest.mark.redis
def test_sync_full_task_skips_when_redis_lock_held(emulator, settings, redis_url, caplog):
    settings.REDIS_URL = redis_url
    caplog.set_level("INFO", logger="threads.tasks")

    with sync_task_lock(kind=SyncRunKind.FULL) as acquired:
        tasks.sync_full.apply()

    assert acquired
    assert SyncRun.objects.count() == 0
    assert "Skipped sync: its lock is held" in caplog.text


@pytest.mark.redis
def test_sync_task_lock_released_after_run(settings, redis_url):
    settings.REDIS_URL = redis_url
    with sync_task_lock(kind=SyncRunKind.FULL):
        pass

    with sync_task_lock(kind=SyncRunKind.FULL) as acquired:
        assert acquired


def test_sync_run_claim_expires_stale_run():
    stale = sync_run_claim(kind=SyncRunKind.FULL)
    SyncRun.objects.filter(pk=stale.pk).update(started_at="2000-01-01T00:00:00Z")

    fresh = sync_run_claim(kind=SyncRunKind.FULL)

    stale.refresh_from_db()
    assert stale.status == SyncRunStatus.FAILED
    assert fresh.status == SyncRunStatus.RUNNING


def test_sync_run_claim_per_kind():
    sync_run_claim(kind=SyncRunKind.FULL)

    incremental = sync_run_claim(kind=SyncRunKind.INCREMENTAL)

    assert incremental.kind == SyncRunKind.INCREMENTAL


def test_session_refresh_task_takes_ids(emulator):
    session_id = idle_session_id(emulator)

    tasks.session_refresh.apply(kwargs={"session_id": session_id})

    assert Session.objects.filter(id=session_id).exists()


def test_thread_refresh_task_takes_ids(emulator):
    row = emulator.state_threads()[0]

    tasks.thread_refresh.apply(kwargs={"session_id": row["session_id"], "thread_id": row["id"]})

    assert Thread.objects.filter(id=row["id"]).exists()


def test_sync_threads_command_prints_summary(emulator):
    stdout, stderr = StringIO(), StringIO()

    call_command("sync_threads", "--full", stdout=stdout, stderr=stderr)

    assert "(full): succeeded" in stdout.getvalue()
    assert "API calls" in stdout.getvalue()
    assert "sessions" in stderr.getvalue()


def test_sync_threads_command_one_session(emulator):
    session_id = idle_session_id(emulator)

    call_command("sync_threads", "--session", session_id, stdout=StringIO())

    assert Session.objects.filter(id=session_id).exists()


def test_sync_threads_command_fails_on_failed_run(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    emulator.force(500, 1)

    with pytest.raises(CommandError, match="failed: InternalServerError"):
        call_command("sync_threads", stdout=StringIO(), stderr=StringIO())


def test_sync_threads_command_failed_exit_code(emulator, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    emulator.force(500, 1)

    with pytest.raises(CommandError) as raised:
        call_command("sync_threads", stdout=StringIO(), stderr=StringIO())

    # manage.py exits with the CommandError's return code.
    assert raised.value.returncode == 1
