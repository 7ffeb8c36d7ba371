"""One task's batch of archive items in this process, against the emulator over HTTP.

The attempts run in the task's threads as in a worker; the worker tests cover the
Celery side (redelivery, a killed worker).
"""

import pytest
from django.utils import timezone

from tests.factories import ThreadFactory
from tests.threads.archive_helpers import snapshots_seed
from threads.models import (
    ArchiveAuditEntry,
    ArchiveItem,
    ArchiveItemState,
    ArchiveJob,
    ArchiveJobStatus,
    ArchiveOutcome,
    Session,
    Thread,
)
from threads.services import archive_items
from threads.services.archive_items import archive_items_process
from threads.services.archive_jobs import archive_job_create, archive_selection_build

# sync_full writes from a pool of threads with their own connections, so these tests
# commit their data and flush it afterwards.
pytestmark = pytest.mark.django_db(transaction=True)


def _archivable_ids(emulator, count: int) -> list[str]:
    """Return `count` idle child threads that the API archives at the first call."""
    ids = [
        thread["id"]
        for thread in emulator.state_threads()
        if thread["parent_thread_id"] is not None
        and thread["archived_at"] is None
        and thread["status"] == "idle"
        and thread["workflow_run_id"] is None
    ]
    assert len(ids) >= count
    return ids[:count]


def _running_job_items(thread_ids: list[str]) -> list[ArchiveItem]:
    selection = archive_selection_build(scope="selected", thread_ids=thread_ids)
    job = archive_job_create(selection=selection, interrupt_running=False)
    ArchiveJob.objects.filter(pk=job.pk).update(status=ArchiveJobStatus.RUNNING, started_at=timezone.now())
    return list(ArchiveItem.objects.filter(job=job).order_by("pk"))


@pytest.fixture
def no_enqueue(monkeypatch):
    """Collect the item ids the batch would queue again, instead of sending tasks."""
    sent: list[int] = []
    monkeypatch.setattr(
        archive_items, "archive_items_enqueue", lambda *, item_ids, countdown=0: sent.extend(item_ids)
    )
    monkeypatch.setattr(
        archive_items, "archive_item_enqueue", lambda *, item_id, countdown=0: sent.append(item_id)
    )
    return sent


def test_batch_archives_each_thread_once(api_settings, emulator, settings):
    settings.ARCHIVE_BATCH_CONCURRENCY = 3
    snapshots_seed()
    thread_ids = _archivable_ids(emulator, 7)
    items = _running_job_items(thread_ids)
    emulator.reset_log()

    states = archive_items_process(item_ids=[item.pk for item in items])

    log = emulator.log()
    job = ArchiveJob.objects.get(pk=items[0].job_id)
    assert states == {item.pk: ArchiveItemState.ARCHIVED for item in items}
    assert log["thread_archive_calls"] == {thread_id: 1 for thread_id in thread_ids}
    assert ArchiveAuditEntry.objects.filter(job=job, outcome=ArchiveOutcome.ARCHIVED).count() == 7
    assert not Thread.objects.filter(pk__in=thread_ids, archived_at__isnull=True).exists()
    assert job.status == ArchiveJobStatus.FINISHED
    assert job.archived_count == 7


def test_batch_records_request_id_per_item(api_settings, emulator, settings):
    settings.ARCHIVE_BATCH_CONCURRENCY = 3
    snapshots_seed()
    items = _running_job_items(_archivable_ids(emulator, 4))

    archive_items_process(item_ids=[item.pk for item in items])

    request_ids = list(
        ArchiveItem.objects.filter(pk__in=[item.pk for item in items]).values_list(
            "last_request_id", flat=True
        )
    )
    audit_ids = set(ArchiveAuditEntry.objects.values_list("request_id", flat=True))
    assert all(request_id.startswith("req_") for request_id in request_ids)
    assert len(set(request_ids)) == 4
    assert set(request_ids) == audit_ids


def test_batch_mixes_outcomes(api_settings, emulator, settings):
    settings.ARCHIVE_BATCH_CONCURRENCY = 2
    snapshots_seed()
    archivable = _archivable_ids(emulator, 2)
    session = Session.objects.get(pk=Thread.objects.get(pk=archivable[0]).session_id)
    primary = Thread.objects.get(session=session, is_primary=True)
    gone_thread = ThreadFactory(id="sthr_not_upstream_02", session=session, parent=primary, is_primary=False)
    items = _running_job_items([*archivable, gone_thread.id])

    states = archive_items_process(item_ids=[item.pk for item in items])

    gone_thread.refresh_from_db()
    gone_item = ArchiveItem.objects.get(job_id=items[0].job_id, thread_id=gone_thread.id)
    assert sorted(states.values()) == sorted(
        [ArchiveItemState.ARCHIVED, ArchiveItemState.ARCHIVED, ArchiveItemState.SKIPPED]
    )
    assert gone_item.reason == "gone upstream"
    assert gone_thread.gone_at is not None
    assert ArchiveAuditEntry.objects.get(thread_id=gone_thread.id).outcome == ArchiveOutcome.GONE


def test_batch_leaves_item_held_by_another_run(api_settings, emulator, settings):
    settings.ARCHIVE_BATCH_CONCURRENCY = 2
    snapshots_seed()
    items = _running_job_items(_archivable_ids(emulator, 3))
    held_item = items[0]
    ArchiveItem.objects.filter(pk=held_item.pk).update(
        state=ArchiveItemState.IN_PROGRESS, attempts=1, claimed_at=timezone.now()
    )
    emulator.reset_log()

    states = archive_items_process(item_ids=[item.pk for item in items])

    held_item.refresh_from_db()
    assert held_item.pk not in states
    assert held_item.state == ArchiveItemState.IN_PROGRESS
    assert held_item.attempts == 1
    assert held_item.thread_id not in emulator.log()["thread_archive_calls"]
    assert len(emulator.log()["thread_archive_calls"]) == 2


def test_batch_past_deadline_gives_items_back(api_settings, emulator, settings, monkeypatch, no_enqueue):
    # A soft time limit of 0 s puts the deadline at the claim, so no attempt may start.
    settings.ARCHIVE_BATCH_CONCURRENCY = 2
    monkeypatch.setattr(archive_items, "archive_task_soft_time_limit", lambda: 0)
    snapshots_seed()
    items = _running_job_items(_archivable_ids(emulator, 3))
    emulator.reset_log()

    states = archive_items_process(item_ids=[item.pk for item in items])

    stored = list(ArchiveItem.objects.filter(pk__in=[item.pk for item in items]))
    assert set(states.values()) == {ArchiveItemState.PENDING}
    assert {item.state for item in stored} == {ArchiveItemState.PENDING}
    assert {item.attempts for item in stored} == {0}
    assert emulator.log()["total"] == 0
    assert sorted(no_enqueue) == sorted(item.pk for item in items)


def test_batch_retry_after_500_queued_with_backoff(api_settings, emulator, settings, no_enqueue):
    settings.ARCHIVE_BATCH_CONCURRENCY = 1
    snapshots_seed()
    items = _running_job_items(_archivable_ids(emulator, 2))
    emulator.force(500, 1)

    states = archive_items_process(item_ids=[item.pk for item in items])

    retried = ArchiveItem.objects.get(pk=items[0].pk)
    assert states[items[0].pk] == ArchiveItemState.PENDING
    assert states[items[1].pk] == ArchiveItemState.ARCHIVED
    assert retried.last_error_type == "InternalServerError"
    assert retried.retry_at > retried.queued_at
    assert no_enqueue == [items[0].pk]


def test_batch_token_wait_timeout_uses_no_attempt(api_settings, emulator, settings, monkeypatch, no_enqueue):
    # A soft time limit of 2 s puts the deadline 1 s after the claim, inside the
    # limiter's 5 s pause, so each attempt starts and then gets no token.
    from threads.rate_limit import get_rate_limiter

    settings.ARCHIVE_BATCH_CONCURRENCY = 2
    monkeypatch.setattr(archive_items, "archive_task_soft_time_limit", lambda: 2)
    snapshots_seed()
    items = _running_job_items(_archivable_ids(emulator, 2))
    emulator.reset_log()
    get_rate_limiter().pause(seconds=5)

    states = archive_items_process(item_ids=[item.pk for item in items])

    stored = list(ArchiveItem.objects.filter(pk__in=[item.pk for item in items]))
    assert set(states.values()) == {ArchiveItemState.PENDING}
    assert {item.attempts for item in stored} == {0}
    assert {item.last_error_type for item in stored} == {""}
    assert emulator.log()["total"] == 0
    assert sorted(no_enqueue) == sorted(item.pk for item in items)


def test_batch_429_makes_process_serial(api_settings, emulator, settings, monkeypatch, no_enqueue):
    settings.ARCHIVE_BATCH_CONCURRENCY = 4
    monkeypatch.setattr(archive_items, "_clean_attempts", archive_items.SERIAL_UNTIL_CLEAN_ATTEMPTS)
    snapshots_seed()
    items = _running_job_items(_archivable_ids(emulator, 4))
    emulator.force(429, 1)

    states = archive_items_process(item_ids=[item.pk for item in items])

    rate_limited = ArchiveItem.objects.filter(pk__in=no_enqueue)
    assert sorted(states.values()).count(ArchiveItemState.ARCHIVED) == 3
    assert [item.last_error_type for item in rate_limited] == ["RateLimitError"]
    # The 429 reset the count; the three attempts that ended after it counted again.
    assert archive_items._clean_attempts < 4
