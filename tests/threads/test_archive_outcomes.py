"""How each API response maps to an item's outcome, with a real worker and the emulator."""

import pytest

from tests.factories import ThreadFactory
from tests.threads.archive_helpers import job_wait_finished, snapshots_seed
from threads.models import (
    ArchiveAuditEntry,
    ArchiveItem,
    ArchiveItemState,
    ArchiveJobStatus,
    ArchiveOutcome,
    Session,
    Thread,
)
from threads.services.archive_jobs import archive_job_create, archive_selection_build

pytestmark = pytest.mark.worker

THREE_ATTEMPTS = {"ARCHIVE_MAX_ATTEMPTS": "3"}


def _upstream_child(emulator, **conditions) -> dict:
    """Return the first child thread upstream whose fields equal `conditions`."""
    for thread in emulator.state_threads():
        if thread["parent_thread_id"] is None or thread["archived_at"] is not None:
            continue
        if all(thread.get(key) == value for key, value in conditions.items()):
            return thread
    raise AssertionError("the emulator has no child thread with %r" % conditions)


def _run_job(thread_ids: list[str], *, interrupt_running: bool = False):
    selection = archive_selection_build(scope="selected", thread_ids=thread_ids)
    job = archive_job_create(selection=selection, interrupt_running=interrupt_running)
    return job_wait_finished(job.pk, timeout=90)


def _item(job, thread_id: str) -> ArchiveItem:
    return ArchiveItem.objects.get(job=job, thread_id=thread_id)


def test_busy_thread_retried_then_skipped(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    busy = _upstream_child(emulator, status="idle", workflow_run_id=None)
    emulator.set_thread(busy["id"], status="running")
    emulator.reset_log()
    celery_worker_factory(concurrency=2, extra_env=THREE_ATTEMPTS)

    job = _run_job([busy["id"]])

    item = _item(job, busy["id"])
    log = emulator.log()
    assert job.status == ArchiveJobStatus.FINISHED
    assert item.state == ArchiveItemState.SKIPPED
    assert item.reason == "thread busy (409), gave up after 3 attempts"
    assert item.attempts == 3
    assert log["thread_archive_calls"][busy["id"]] == 3
    assert busy["id"] not in log["thread_archive_changes"]


def test_open_workflow_run_skipped_without_retry(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    open_run = _upstream_child(emulator, status="idle", run_open=True)
    emulator.reset_log()
    celery_worker_factory(concurrency=2, extra_env=THREE_ATTEMPTS)

    job = _run_job([open_run["id"]])

    item = _item(job, open_run["id"])
    assert item.state == ArchiveItemState.SKIPPED
    assert item.reason == "workflow run still open (409)"
    assert item.attempts == 1


def test_gone_thread_skipped_and_marked(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    session = Session.objects.filter(archived_at__isnull=True).first()
    primary = Thread.objects.filter(session=session, is_primary=True).first()
    gone = ThreadFactory(id="sthr_not_upstream_01", session=session, parent=primary, is_primary=False)
    celery_worker_factory(concurrency=2)

    job = _run_job([gone.id])

    item = _item(job, gone.id)
    gone.refresh_from_db()
    audit = ArchiveAuditEntry.objects.get(job=job, thread_id=gone.id)
    assert job.status == ArchiveJobStatus.FINISHED
    assert item.state == ArchiveItemState.SKIPPED
    assert item.reason == "gone upstream"
    assert item.last_request_id.startswith("req_")
    assert gone.gone_at is not None
    assert audit.outcome == ArchiveOutcome.GONE


def test_primary_thread_rejected_by_api_skipped(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    primary = Thread.objects.filter(is_primary=True, archived_at__isnull=True).first()
    # A stale snapshot that marks the primary thread as a child: the API returns 400.
    Thread.objects.filter(pk=primary.pk).update(is_primary=False)
    celery_worker_factory(concurrency=2)

    job = _run_job([primary.id])

    item = _item(job, primary.id)
    assert item.state == ArchiveItemState.SKIPPED
    assert item.reason == "rejected by the API (400)"
    assert "primary thread" in item.last_error_message


def test_already_archived_upstream_counts_as_archived(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    thread = _upstream_child(emulator, status="idle", workflow_run_id=None)
    emulator.set_thread(thread["id"], archive=True)
    celery_worker_factory(concurrency=2)

    job = _run_job([thread["id"]])

    item = _item(job, thread["id"])
    snapshot = Thread.objects.get(pk=thread["id"])
    assert item.state == ArchiveItemState.ARCHIVED
    assert item.already_archived is True
    assert job.archived_count == 1
    assert snapshot.archived_at is not None
    assert ArchiveAuditEntry.objects.get(job=job).outcome == ArchiveOutcome.ALREADY_ARCHIVED


def test_archived_thread_updates_snapshot_and_audit(
    api_settings, emulator, celery_worker_factory, django_user_model
):
    snapshots_seed()
    user = django_user_model.objects.create_user("archiver", password="pw-archiver-123")
    thread = _upstream_child(emulator, status="idle", workflow_run_id=None)
    celery_worker_factory(concurrency=2)

    selection = archive_selection_build(scope="selected", thread_ids=[thread["id"]])
    job = job_wait_finished(archive_job_create(selection=selection, interrupt_running=False, user=user).pk)

    snapshot = Thread.objects.get(pk=thread["id"])
    audit = ArchiveAuditEntry.objects.get(job=job)
    assert snapshot.status == "terminated"
    assert snapshot.archived_at is not None
    assert snapshot.raw["archived_at"] is not None
    assert audit.user == user
    assert audit.outcome == ArchiveOutcome.ARCHIVED
    assert audit.session_id == thread["session_id"]
    assert audit.request_id.startswith("req_")


def test_running_thread_interrupted_then_archived(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    running = _upstream_child(emulator, status="running", workflow_run_id=None)
    emulator.reset_log()
    celery_worker_factory(concurrency=2)

    job = _run_job([running["id"]], interrupt_running=True)

    item = _item(job, running["id"])
    log = emulator.log()
    upstream = {thread["id"]: thread for thread in emulator.state_threads()}
    outcomes = set(ArchiveAuditEntry.objects.filter(job=job).values_list("outcome", flat=True))
    assert item.state == ArchiveItemState.ARCHIVED
    assert item.interrupted_at is not None
    assert upstream[running["id"]]["archived_at"] is not None
    assert log["endpoints"]["POST /v1/sessions/{session_id}/events"] == 1
    assert log["thread_archive_calls"][running["id"]] == 1
    assert outcomes == {ArchiveOutcome.INTERRUPTED, ArchiveOutcome.ARCHIVED}


def test_running_thread_skipped_without_interrupt(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    running = _upstream_child(emulator, status="running", workflow_run_id=None)
    emulator.reset_log()
    celery_worker_factory(concurrency=2)

    job = _run_job([running["id"]])

    item = _item(job, running["id"])
    assert item.state == ArchiveItemState.SKIPPED
    assert emulator.log()["thread_archive_calls"] == {}
