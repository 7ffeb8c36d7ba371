"""Archive job services on the database: selection, dry run, freezing, cancel, finish, reconcile.

Nothing here reaches the API or a worker. Tests that need the start task to run use
the worker tests; here `on_commit` callbacks never fire (each test is one transaction).
"""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import SessionFactory, ThreadFactory
from threads.models import (
    ArchiveItem,
    ArchiveItemState,
    ArchiveJob,
    ArchiveJobStatus,
    SnapshotStatus,
)
from threads.services.archive_jobs import (
    ArchivePlan,
    ArchiveSelectionError,
    archive_dry_run,
    archive_job_cancel,
    archive_job_create,
    archive_job_finish_if_done,
    archive_job_progress,
    archive_job_retry_failed,
    archive_jobs_reconcile,
    archive_selection_build,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_threads():
    """One thread of every dry-run plan, in one session, keyed by plan."""
    session = SessionFactory()
    primary = ThreadFactory(session=session)

    def child(**values):
        return ThreadFactory(session=session, parent=primary, is_primary=False, **values)

    return {
        ArchivePlan.SKIP_PRIMARY: primary,
        ArchivePlan.ARCHIVE: child(status=SnapshotStatus.IDLE, list_cost_amount=250),
        ArchivePlan.SKIP_ALREADY_ARCHIVED: child(
            status=SnapshotStatus.TERMINATED, archived_at=timezone.now()
        ),
        ArchivePlan.SKIP_RUNNING: child(status=SnapshotStatus.RUNNING),
        ArchivePlan.RUN_MAY_BE_OPEN: child(status=SnapshotStatus.IDLE, workflow_run_id="wfrun_1"),
        ArchivePlan.SKIP_GONE: child(status=SnapshotStatus.IDLE, gone_at=timezone.now()),
    }


def _ids_selection(threads) -> object:
    return archive_selection_build(scope="selected", thread_ids=[thread.id for thread in threads])


def test_dry_run_counts_each_plan_once(mixed_threads):
    dry_run = archive_dry_run(selection=_ids_selection(mixed_threads.values()), interrupt_running=False)

    assert dry_run.selected_count == 6
    assert dry_run.planned_count == 2
    assert dry_run.skipped_count == 4
    for plan in mixed_threads:
        assert dry_run.counts_by_plan[plan] == 1, plan


def test_dry_run_skip_reasons_are_named(mixed_threads):
    dry_run = archive_dry_run(selection=_ids_selection(mixed_threads.values()), interrupt_running=False)

    reasons = {plan: label for plan, label, _count in dry_run.skipped}
    assert set(reasons) == {
        ArchivePlan.SKIP_PRIMARY,
        ArchivePlan.SKIP_ALREADY_ARCHIVED,
        ArchivePlan.SKIP_RUNNING,
        ArchivePlan.SKIP_GONE,
    }
    assert "primary" in reasons[ArchivePlan.SKIP_PRIMARY]


def test_dry_run_interrupt_plans_running_threads(mixed_threads):
    dry_run = archive_dry_run(selection=_ids_selection(mixed_threads.values()), interrupt_running=True)

    assert dry_run.planned_count == 3
    assert dry_run.counts_by_plan[ArchivePlan.INTERRUPT_FIRST] == 1
    assert ArchivePlan.SKIP_RUNNING not in dry_run.counts_by_plan


def test_dry_run_totals_cover_planned_threads_only(mixed_threads):
    dry_run = archive_dry_run(selection=_ids_selection(mixed_threads.values()), interrupt_running=False)

    # The idle child (250) and the workflow-run child (factory default 10).
    assert dry_run.list_cost_totals == {"USD": 260}
    assert dry_run.total_tokens == 2 * 1100


def test_dry_run_reports_unknown_ids(mixed_threads):
    selection = archive_selection_build(
        scope="selected", thread_ids=["sthr_missing", mixed_threads["archive"].id]
    )

    dry_run = archive_dry_run(selection=selection, interrupt_running=False)

    assert dry_run.unknown_ids == ["sthr_missing"]
    assert dry_run.selected_count == 1


def test_dry_run_breaks_down_by_agent(mixed_threads):
    ThreadFactory(
        session=mixed_threads["archive"].session,
        parent=mixed_threads["primary"],
        is_primary=False,
        agent_type="advisor",
        agent_name=None,
        model="claude-opus-4-1",
    )
    selection = archive_selection_build(scope="filter", filter_query={"kind": "child"})

    dry_run = archive_dry_run(selection=selection, interrupt_running=False)

    by_agent = {row["agent"]: row for row in dry_run.by_agent}
    assert by_agent["advisor · claude-opus-4-1"]["planned"] == 1
    assert by_agent["Coordinator"]["planned"] == 2


def test_selection_filter_resolves_on_server(mixed_threads):
    selection = archive_selection_build(scope="filter", filter_querystring="status=running&kind=child")

    ids = set(selection.threads().values_list("id", flat=True))

    assert ids == {mixed_threads["running"].id}


def test_selection_invalid_filter_rejected():
    with pytest.raises(ArchiveSelectionError, match="created_from"):
        archive_selection_build(scope="filter", filter_querystring="created_from=not-a-date")


def test_selection_without_ids_rejected():
    with pytest.raises(ArchiveSelectionError, match="No threads selected"):
        archive_selection_build(scope="selected", thread_ids=[" "])


def test_job_create_freezes_one_item_per_thread(mixed_threads):
    job = archive_job_create(selection=_ids_selection(mixed_threads.values()), interrupt_running=False)

    items = {item.thread_id: item for item in ArchiveItem.objects.filter(job=job)}
    assert job.total_count == 6
    assert job.planned_count == 2
    assert job.status == ArchiveJobStatus.SCHEDULED
    assert items[mixed_threads["archive"].id].state == ArchiveItemState.PENDING
    assert items[mixed_threads["primary"].id].state == ArchiveItemState.SKIPPED
    assert items[mixed_threads["primary"].id].reason == ArchivePlan.LABELS[ArchivePlan.SKIP_PRIMARY]
    assert items[mixed_threads["run_may_be_open"].id].workflow_run_id == "wfrun_1"


def test_job_create_batches_many_threads(settings):
    session = SessionFactory()
    primary = ThreadFactory(session=session)
    ThreadFactory.create_batch(2500, session=session, parent=primary, is_primary=False)

    job = archive_job_create(
        selection=archive_selection_build(scope="filter", filter_query={}), interrupt_running=False
    )

    assert ArchiveItem.objects.filter(job=job).count() == 2501
    assert job.planned_count == 2500


def test_job_create_ignores_threads_created_later(mixed_threads):
    job = archive_job_create(
        selection=archive_selection_build(scope="filter", filter_query={}), interrupt_running=False
    )
    later = ThreadFactory(
        session=mixed_threads["archive"].session, parent=mixed_threads["primary"], is_primary=False
    )

    assert not ArchiveItem.objects.filter(job=job, thread_id=later.id).exists()


def test_job_create_sets_grace_deadline(mixed_threads, settings):
    settings.ARCHIVE_GRACE_SECONDS = 30
    before = timezone.now()

    job = archive_job_create(selection=_ids_selection(mixed_threads.values()), interrupt_running=False)

    assert job.grace_until >= before + timedelta(seconds=30)


def test_cancel_skips_pending_items(mixed_threads):
    job = archive_job_create(selection=_ids_selection(mixed_threads.values()), interrupt_running=False)

    cancelled = archive_job_cancel(job_id=job.pk)

    job.refresh_from_db()
    progress = archive_job_progress(job_id=job.pk)
    assert cancelled
    assert job.status == ArchiveJobStatus.CANCELLED
    assert job.finished_at is not None
    assert progress.pending == 0
    assert progress.skipped == 6


def test_cancel_twice_is_refused(mixed_threads):
    job = archive_job_create(selection=_ids_selection(mixed_threads.values()), interrupt_running=False)
    archive_job_cancel(job_id=job.pk)

    assert archive_job_cancel(job_id=job.pk) is False


def _running_job(mixed_threads) -> ArchiveJob:
    job = archive_job_create(selection=_ids_selection(mixed_threads.values()), interrupt_running=False)
    ArchiveJob.objects.filter(pk=job.pk).update(status=ArchiveJobStatus.RUNNING, started_at=timezone.now())
    return job


def test_finish_waits_for_open_items(mixed_threads):
    job = _running_job(mixed_threads)

    assert archive_job_finish_if_done(job_id=job.pk) is False


def test_finish_counts_once(mixed_threads):
    job = _running_job(mixed_threads)
    ArchiveItem.objects.filter(job=job, state=ArchiveItemState.PENDING).update(
        state=ArchiveItemState.ARCHIVED
    )

    first = archive_job_finish_if_done(job_id=job.pk)
    second = archive_job_finish_if_done(job_id=job.pk)

    job.refresh_from_db()
    assert first is True
    assert second is False
    assert job.status == ArchiveJobStatus.FINISHED
    assert job.archived_count == 2
    assert job.skipped_count == 4


def test_retry_failed_reopens_job(mixed_threads):
    job = _running_job(mixed_threads)
    ArchiveItem.objects.filter(job=job, state=ArchiveItemState.PENDING).update(
        state=ArchiveItemState.FAILED, attempts=8, reason="gave up"
    )
    archive_job_finish_if_done(job_id=job.pk)

    retried = archive_job_retry_failed(job_id=job.pk)

    job.refresh_from_db()
    items = ArchiveItem.objects.filter(job=job, state=ArchiveItemState.PENDING)
    assert retried == 2
    assert job.status == ArchiveJobStatus.RUNNING
    assert job.finished_at is None
    assert items.count() == 2
    assert all(item.attempts == 0 for item in items)


def test_reconcile_requeues_stuck_item(mixed_threads, settings, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "threads.services.archive_jobs.archive_items_enqueue",
        lambda *, item_ids, countdown=0: sent.extend(item_ids),
    )
    job = _running_job(mixed_threads)
    long_ago = timezone.now() - timedelta(seconds=settings.ARCHIVE_STUCK_AFTER_SECONDS + 5)
    item = ArchiveItem.objects.filter(job=job, state=ArchiveItemState.PENDING).first()
    ArchiveItem.objects.filter(pk=item.pk).update(
        state=ArchiveItemState.IN_PROGRESS, attempts=1, claimed_at=long_ago, queued_at=long_ago
    )

    report = archive_jobs_reconcile()

    item.refresh_from_db()
    assert report.stuck_requeued == 1
    assert item.state == ArchiveItemState.PENDING
    assert item.pk in sent


def test_reconcile_fails_stuck_item_out_of_attempts(mixed_threads, settings, monkeypatch):
    monkeypatch.setattr("threads.services.archive_jobs.archive_items_enqueue", lambda **kwargs: None)
    job = _running_job(mixed_threads)
    long_ago = timezone.now() - timedelta(seconds=settings.ARCHIVE_STUCK_AFTER_SECONDS + 5)
    item = ArchiveItem.objects.filter(job=job, state=ArchiveItemState.PENDING).first()
    ArchiveItem.objects.filter(pk=item.pk).update(
        state=ArchiveItemState.IN_PROGRESS, attempts=settings.ARCHIVE_MAX_ATTEMPTS, claimed_at=long_ago
    )

    report = archive_jobs_reconcile()

    item.refresh_from_db()
    assert report.stuck_failed == 1
    assert item.state == ArchiveItemState.FAILED


def test_reconcile_requeues_lost_pending_item(mixed_threads, settings, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "threads.services.archive_jobs.archive_items_enqueue",
        lambda *, item_ids, countdown=0: sent.extend(item_ids),
    )
    job = _running_job(mixed_threads)
    long_ago = timezone.now() - timedelta(seconds=settings.ARCHIVE_STUCK_AFTER_SECONDS + 5)
    ArchiveJob.objects.filter(pk=job.pk).update(started_at=long_ago)
    ArchiveItem.objects.filter(job=job, state=ArchiveItemState.PENDING).update(queued_at=long_ago)

    report = archive_jobs_reconcile()

    assert report.unqueued_requeued == 2
    assert len(sent) == 2


def test_reconcile_leaves_items_of_progressing_job(mixed_threads, settings, monkeypatch):
    monkeypatch.setattr("threads.services.archive_jobs.archive_items_enqueue", lambda **kwargs: None)
    job = _running_job(mixed_threads)
    long_ago = timezone.now() - timedelta(seconds=settings.ARCHIVE_STUCK_AFTER_SECONDS + 5)
    pending = list(ArchiveItem.objects.filter(job=job, state=ArchiveItemState.PENDING))
    ArchiveItem.objects.filter(pk=pending[0].pk).update(queued_at=long_ago)
    # Another item of the job was claimed just now, so the queue is still moving.
    ArchiveItem.objects.filter(pk=pending[1].pk).update(
        state=ArchiveItemState.IN_PROGRESS, claimed_at=timezone.now(), queued_at=long_ago
    )

    report = archive_jobs_reconcile()

    assert report.unqueued_requeued == 0


def test_command_dry_run_prints_summary(mixed_threads):
    out = StringIO()

    call_command("archive_threads", "--dry-run", "--kind", "child", "--archived", "all", stdout=out)

    text = out.getvalue()
    assert "Selected: 5 threads" in text
    assert "skipped: already archived" in text
    assert not ArchiveJob.objects.exists()


def test_command_creates_job_without_waiting(mixed_threads, django_user_model):
    django_user_model.objects.create_user("ops", password="pw-ops-12345")
    out = StringIO()

    call_command(
        "archive_threads",
        "--thread-id",
        mixed_threads["archive"].id,
        "--yes",
        "--no-wait",
        "--user",
        "ops",
        stdout=out,
    )

    job = ArchiveJob.objects.get()
    assert job.created_by.username == "ops"
    assert job.planned_count == 1
    assert "Archive job #%d confirmed" % job.pk in out.getvalue()


def test_command_unknown_user_rejected(mixed_threads):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("archive_threads", "--yes", "--user", "nobody", stdout=StringIO())


def test_command_created_filter_passes_dates(mixed_threads):
    out = StringIO()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()

    call_command("archive_threads", "--dry-run", "--created-from", tomorrow, stdout=out)

    assert "Selected: 0 threads" in out.getvalue()


def test_command_agent_type_selects_advisors():
    primary = ThreadFactory()
    ThreadFactory(
        session=primary.session, parent=primary, agent_type="advisor", agent_id=None, agent_name=None
    )
    out = StringIO()

    call_command("archive_threads", "--dry-run", "--agent-type", "advisor", stdout=out)

    assert "Selected: 1 thread\n" in out.getvalue()
