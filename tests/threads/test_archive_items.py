"""Processing one archive item in this process: claiming, replays, crashes and backoff.

A real worker and the emulator cover the API outcomes. These tests need no API,
because here the item is never claimable or the attempt is replaced.
"""

import pytest
from django.utils import timezone

from tests.factories import SessionFactory, ThreadFactory
from threads.models import ArchiveAuditEntry, ArchiveItem, ArchiveItemState, ArchiveJob, ArchiveJobStatus
from threads.services import archive_items
from threads.services.archive_items import BACKOFF_MAX_SECONDS, _backoff_seconds, archive_item_process
from threads.services.archive_jobs import archive_job_create, archive_selection_build

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_item() -> ArchiveItem:
    session = SessionFactory()
    primary = ThreadFactory(session=session)
    thread = ThreadFactory(session=session, parent=primary, is_primary=False)
    selection = archive_selection_build(scope="selected", thread_ids=[thread.id])
    job = archive_job_create(selection=selection, interrupt_running=False)
    ArchiveJob.objects.filter(pk=job.pk).update(status=ArchiveJobStatus.RUNNING, started_at=timezone.now())
    return ArchiveItem.objects.get(job=job)


def test_item_replay_after_archive_changes_nothing(running_item):
    ArchiveItem.objects.filter(pk=running_item.pk).update(state=ArchiveItemState.ARCHIVED, attempts=1)

    result = archive_item_process(item_id=running_item.pk)

    running_item.refresh_from_db()
    assert result is None
    assert running_item.attempts == 1
    assert running_item.state == ArchiveItemState.ARCHIVED
    assert not ArchiveAuditEntry.objects.exists()


def test_item_of_cancelled_job_not_claimed(running_item):
    ArchiveJob.objects.filter(pk=running_item.job_id).update(status=ArchiveJobStatus.CANCELLED)

    result = archive_item_process(item_id=running_item.pk)

    running_item.refresh_from_db()
    assert result is None
    assert running_item.state == ArchiveItemState.PENDING
    assert running_item.attempts == 0


def test_item_crash_fails_item_and_job(running_item, monkeypatch):
    # A bug cannot be produced through the emulator, so the attempt itself is replaced.
    def crash(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(archive_items, "_attempt", crash)

    result = archive_item_process(item_id=running_item.pk)

    running_item.refresh_from_db()
    job = ArchiveJob.objects.get(pk=running_item.job_id)
    assert result == ArchiveItemState.FAILED
    assert running_item.state == ArchiveItemState.FAILED
    assert running_item.reason == "internal error: RuntimeError: boom"
    assert running_item.last_error_type == "RuntimeError"
    assert job.status == ArchiveJobStatus.FINISHED
    assert job.failed_count == 1


@pytest.mark.parametrize("attempts", [1, 2, 3, 5, 8])
def test_backoff_grows_with_jitter(attempts):
    # The exponential part is capped before the jitter is applied (at attempt 8,
    # 128 s becomes 120 s), so the bounds use the capped value.
    exponential = min(BACKOFF_MAX_SECONDS, 2 ** (attempts - 1))

    delay = _backoff_seconds(attempts=attempts, retry_after=None)

    assert delay >= 0.5 * exponential
    assert delay <= exponential


def test_backoff_honours_retry_after():
    delay = _backoff_seconds(attempts=1, retry_after=30.0)

    assert delay >= 30.0
    assert delay <= 36.0


def test_backoff_capped():
    assert _backoff_seconds(attempts=30, retry_after=None) <= BACKOFF_MAX_SECONDS
    assert _backoff_seconds(attempts=1, retry_after=3600.0) == BACKOFF_MAX_SECONDS


def test_item_limiter_outage_leaves_item_pending(running_item, settings):
    # A real Redis client aimed at a closed port on this machine: the limiter's store
    # is down, so no token can be taken and no API call is made.
    from threads.rate_limit import reset_rate_limiter

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    reset_rate_limiter()

    result = archive_item_process(item_id=running_item.pk)

    running_item.refresh_from_db()
    assert result == ArchiveItemState.PENDING
    assert running_item.state == ArchiveItemState.PENDING
    assert running_item.last_error_type == "RateLimiterUnavailable"
    assert running_item.retry_at is not None
