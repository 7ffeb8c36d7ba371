"""Archive jobs end to end: a real Celery worker, Redis, PostgreSQL and the emulator over HTTP."""

import time
from io import StringIO

import pytest
from django.core.management import call_command

from tests.threads.archive_helpers import job_wait_finished, snapshots_seed
from threads.client import reset_api_clients
from threads.models import ArchiveItem, ArchiveItemState, ArchiveJobStatus, Thread
from threads.services.archive_jobs import (
    archive_job_cancel,
    archive_job_create,
    archive_job_progress,
    archive_job_retry_failed,
    archive_selection_build,
)

pytestmark = pytest.mark.worker

# Enough sessions for several hundred threads that can be archived.
BIG_EMULATOR_SESSIONS = "120"
# Few attempts keep the retries of busy (409) threads short: about 6 s of backoff in all.
FEW_ATTEMPTS = {"ARCHIVE_MAX_ATTEMPTS": "4"}


@pytest.fixture
def big_emulator(emulator_factory, api_settings):
    """An emulator of its own with several hundred archivable threads, set as the API."""
    process = emulator_factory("--sessions", BIG_EMULATOR_SESSIONS, "--seed", "7")
    api_settings.ANTHROPIC_BASE_URL = process.base_url
    reset_api_clients()
    return process


def _emulator_thread_states(emulator) -> dict[str, dict]:
    return {thread["id"]: thread for thread in emulator.state_threads()}


def _all_selection():
    return archive_selection_build(scope="filter", filter_query={})


def _archivable_ids(emulator) -> set[str]:
    """Return the threads the API would archive now: idle or terminated children, not archived yet."""
    return {
        thread["id"]
        for thread in emulator.state_threads()
        if thread["parent_thread_id"] is not None
        and thread["archived_at"] is None
        and thread["status"] in ("idle", "terminated")
        and not (thread["workflow_run_id"] and thread["run_open"])
    }


def test_archive_job_with_faults_archives_every_eligible_thread(big_emulator, celery_worker_factory):
    snapshots_seed()
    archivable = _archivable_ids(big_emulator)
    big_emulator.configure(fault_500=0.05, fault_529=0.03, fault_drop=0.05, rate_limit=20)
    big_emulator.reset_log()
    big_emulator.force(429, 3)
    # Fewer attempts keep the busy (409) threads' retries short; faults still heal within them.
    celery_worker_factory(concurrency=8, extra_env={"ARCHIVE_MAX_ATTEMPTS": "6"})

    job = archive_job_create(selection=_all_selection(), interrupt_running=False)
    job = job_wait_finished(job.pk, timeout=240)

    progress = archive_job_progress(job_id=job.pk)
    log = big_emulator.log()
    items = ArchiveItem.objects.filter(job=job)
    archived_ids = set(items.filter(state=ArchiveItemState.ARCHIVED).values_list("thread_id", flat=True))
    failed_ids = set(items.filter(state=ArchiveItemState.FAILED).values_list("thread_id", flat=True))
    faulted = sum(log["statuses"].get(status, 0) for status in ("429", "500", "529", "drop"))
    archive_calls = sum(log["thread_archive_calls"].values())

    assert big_emulator.process.poll() is None, big_emulator.stderr()[-3000:]
    assert job.status == ArchiveJobStatus.FINISHED
    assert len(archivable) >= 300
    assert archived_ids == archivable
    # A busy thread whose last allowed attempt met a fault fails; no archivable one may.
    assert failed_ids.isdisjoint(archivable)
    assert progress.queued == 0
    assert progress.archived + progress.skipped + progress.failed == job.total_count
    assert job.archived_count == progress.archived
    assert job.skipped_count == progress.skipped
    assert job.failed_count == progress.failed
    assert log["statuses"].get("429", 0) > 0
    assert log["statuses"].get("drop", 0) > 0
    assert log["statuses"].get("500", 0) + log["statuses"].get("529", 0) > 0
    assert set(log["thread_archive_changes"]) == archivable
    assert all(count == 1 for count in log["thread_archive_changes"].values())
    # Every archive call beyond one per thread is explained by an injected fault or a 409.
    conflicts = log["statuses"].get("409", 0)
    assert archive_calls - len(log["thread_archive_calls"]) <= faulted + conflicts


def test_archive_job_survives_killed_worker(big_emulator, celery_worker_factory, settings):
    snapshots_seed()
    archivable = _archivable_ids(big_emulator)
    big_emulator.configure(latency_ms=20)
    big_emulator.reset_log()
    worker_env = {
        **FEW_ATTEMPTS,
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": "10",
        "ARCHIVE_STUCK_AFTER_SECONDS": "10",
    }
    settings.ARCHIVE_STUCK_AFTER_SECONDS = 10
    first = celery_worker_factory(concurrency=4, extra_env=worker_env)

    job = archive_job_create(selection=_all_selection(), interrupt_running=False)
    deadline = time.monotonic() + 60
    while archive_job_progress(job_id=job.pk).archived < 40 and time.monotonic() < deadline:
        time.sleep(0.1)
    first.kill()
    archived_at_kill = archive_job_progress(job_id=job.pk).archived
    celery_worker_factory(concurrency=4, extra_env=worker_env)
    job = job_wait_finished(job.pk, timeout=180, reconcile=True)

    progress = archive_job_progress(job_id=job.pk)
    log = big_emulator.log()

    assert archived_at_kill < job.planned_count
    assert job.status == ArchiveJobStatus.FINISHED
    assert progress.failed == 0
    assert progress.archived + progress.skipped == job.total_count
    assert set(log["thread_archive_changes"]) == archivable
    # A busy thread gets one call per attempt; an archivable one exactly one, even across the crash.
    assert [thread_id for thread_id in archivable if log["thread_archive_calls"][thread_id] != 1] == []


def test_archive_job_cancel_in_grace_sends_nothing(big_emulator, celery_worker_factory, settings):
    snapshots_seed()
    settings.ARCHIVE_GRACE_SECONDS = 3
    big_emulator.reset_log()
    celery_worker_factory(concurrency=2)

    job = archive_job_create(selection=_all_selection(), interrupt_running=False)
    cancelled = archive_job_cancel(job_id=job.pk)
    time.sleep(5)

    job.refresh_from_db()
    log = big_emulator.log()
    assert cancelled
    assert job.status == ArchiveJobStatus.CANCELLED
    assert job.finished_at is not None
    assert log["thread_archive_calls"] == {}
    assert not ArchiveItem.objects.filter(job=job, state=ArchiveItemState.ARCHIVED).exists()


def test_archive_job_never_touches_threads_created_after_confirm(
    api_settings, emulator, celery_worker_factory, settings
):
    snapshots_seed()
    settings.ARCHIVE_GRACE_SECONDS = 2
    celery_worker_factory(concurrency=2, extra_env=FEW_ATTEMPTS)
    session_id = Thread.objects.filter(is_primary=True, archived_at__isnull=True).values_list(
        "session_id", flat=True
    )[0]

    job = archive_job_create(selection=_all_selection(), interrupt_running=False)
    added = emulator.add_thread(session_id)
    snapshots_seed()
    job = job_wait_finished(job.pk)

    log = emulator.log()
    assert Thread.objects.filter(pk=added["id"]).exists()
    assert not ArchiveItem.objects.filter(thread_id=added["id"]).exists()
    assert added["id"] not in log["thread_archive_calls"]
    assert job.status == ArchiveJobStatus.FINISHED


def test_archive_job_retry_failed_archives_them(api_settings, emulator, celery_worker_factory, settings):
    snapshots_seed()
    worker = celery_worker_factory(concurrency=1, extra_env={"ARCHIVE_MAX_ATTEMPTS": "1"})
    thread_ids = list(
        Thread.objects.filter(
            is_primary=False, archived_at__isnull=True, status="idle", workflow_run_id__isnull=True
        )
        .order_by("id")
        .values_list("id", flat=True)[:3]
    )
    emulator.force(500, 3)

    job = archive_job_create(
        selection=archive_selection_build(scope="selected", thread_ids=thread_ids), interrupt_running=False
    )
    job = job_wait_finished(job.pk)
    failed_first = archive_job_progress(job_id=job.pk).failed
    retried = archive_job_retry_failed(job_id=job.pk)
    job = job_wait_finished(job.pk)

    progress = archive_job_progress(job_id=job.pk)
    assert worker.process.poll() is None
    assert failed_first == 3
    assert retried == 3
    assert progress.archived == 3
    assert progress.failed == 0


def test_command_follows_job_to_finish(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    thread = Thread.objects.filter(
        is_primary=False, archived_at__isnull=True, status="idle", workflow_run_id__isnull=True
    ).first()
    celery_worker_factory(concurrency=2)
    out = StringIO()

    call_command("archive_threads", "--thread-id", thread.id, "--yes", stdout=out, stderr=StringIO())

    item = ArchiveItem.objects.get(thread_id=thread.id)
    assert item.state == ArchiveItemState.ARCHIVED
    assert "Archive job #%d finished: 1 archived, 0 skipped, 0 failed." % item.job_id in out.getvalue()
