"""Archive jobs: select threads, show the dry run, freeze the set, start, cancel, retry.

Invariants:

* A job's set of threads is frozen when the user confirms: one ArchiveItem per selected
  thread, written then, in batches. Nothing later adds items, so a thread created
  after the confirmation is never touched.
* Nothing is sent before the grace deadline. The start task re-checks the job when it
  runs. Only a job that it moves from scheduled to running (a conditional update) gets
  its items queued, so a job cancelled before that sends nothing.
* Counts come from the items' states in one aggregate query, so a task delivered twice
  cannot count twice. A job finishes (a conditional update) once no item is open.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.http import QueryDict
from django.utils import timezone

from threads.filters import ThreadFilter, thread_filter_from_query
from threads.models import (
    AgentType,
    ArchiveItem,
    ArchiveItemState,
    ArchiveJob,
    ArchiveJobScope,
    ArchiveJobStatus,
    SnapshotStatus,
    Thread,
)
from threads.models.archive import FINAL_ITEM_STATES, OPEN_ITEM_STATES
from threads.selectors import thread_list_filtered

logger = logging.getLogger(__name__)

CREATE_BATCH_SIZE = 1000
# Items the start task queues per run, in tasks of ARCHIVE_BATCH_SIZE items; it
# re-queues itself for the next chunk.
QUEUE_CHUNK_SIZE = 500
MAX_SELECTED_IDS = 10000
SAMPLE_SIZE = 20
# Unknown ids an error message lists before it gives only the count of the rest.
MAX_IDS_IN_MESSAGE = 5


class ArchiveSelectionError(ValueError):
    """Raised when a selection of threads is invalid; the message names what to fix."""


class ArchivePlan:
    """What the dry run decides for a thread; the skip plans name their reason."""

    ARCHIVE = "archive"
    INTERRUPT_FIRST = "interrupt_first"
    RUN_MAY_BE_OPEN = "run_may_be_open"
    SKIP_GONE = "gone"
    SKIP_PRIMARY = "primary"
    SKIP_ALREADY_ARCHIVED = "already_archived"
    SKIP_RUNNING = "running"

    PLANNED = (ARCHIVE, INTERRUPT_FIRST, RUN_MAY_BE_OPEN)
    LABELS = {
        ARCHIVE: "will be archived",
        INTERRUPT_FIRST: "running: interrupted first, archived once idle",
        RUN_MAY_BE_OPEN: "workflow-run thread whose run may be open: the API decides, and a 409 skips it",
        SKIP_GONE: "gone upstream",
        SKIP_PRIMARY: "primary thread: the API does not archive it, archive its session instead",
        SKIP_ALREADY_ARCHIVED: "already archived",
        SKIP_RUNNING: "running: not interrupted, so the API would refuse it",
    }


@dataclass(frozen=True)
class ArchiveSelection:
    """Threads chosen for archiving: explicit ids, or every thread matching a filter."""

    scope: str
    thread_ids: tuple[str, ...] = ()
    thread_filter: ThreadFilter | None = None

    def threads(self) -> QuerySet[Thread]:
        if self.scope == ArchiveJobScope.FILTER:
            return thread_list_filtered(thread_filter=self.thread_filter)
        return Thread.objects.filter(pk__in=self.thread_ids)

    def filter_query(self) -> dict[str, Any]:
        return self.thread_filter.as_query() if self.thread_filter else {}


@dataclass
class ArchiveDryRun:
    """Outcome of confirming a selection, computed from the snapshots."""

    selected_count: int = 0
    planned_count: int = 0
    # Selected ids with no snapshot; they get no item, because archiving needs the session id.
    unknown_ids: list[str] = field(default_factory=list)
    counts_by_plan: dict[str, int] = field(default_factory=dict)
    list_cost_totals: dict[str, int] = field(default_factory=dict)
    total_tokens: int = 0
    by_agent: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def skipped(self) -> list[tuple[str, str, int]]:
        return [
            (plan, ArchivePlan.LABELS[plan], count)
            for plan, count in self.counts_by_plan.items()
            if plan not in ArchivePlan.PLANNED and count
        ]

    @property
    def planned(self) -> list[tuple[str, str, int]]:
        return [
            (plan, ArchivePlan.LABELS[plan], self.counts_by_plan.get(plan, 0))
            for plan in ArchivePlan.PLANNED
            if self.counts_by_plan.get(plan)
        ]

    @property
    def skipped_count(self) -> int:
        return self.selected_count - self.planned_count


def archive_selection_build(
    *,
    scope: str,
    thread_ids: list[str] | None = None,
    filter_querystring: str = "",
    filter_query: dict | None = None,
) -> ArchiveSelection:
    """Validate a selection as the pages and the command send it.

    Raises ArchiveSelectionError for an unknown scope, no ids, too many ids, or an
    invalid filter (a filter with a field dropped would select more than was shown).
    """
    if scope == ArchiveJobScope.SELECTED:
        ids = tuple(dict.fromkeys(thread_id.strip() for thread_id in thread_ids or () if thread_id.strip()))
        if not ids:
            raise ArchiveSelectionError("No threads selected. Tick at least one thread.")
        if len(ids) > MAX_SELECTED_IDS:
            raise ArchiveSelectionError(
                "%d threads selected; select at most %d, or use a filter." % (len(ids), MAX_SELECTED_IDS)
            )
        return ArchiveSelection(scope=scope, thread_ids=ids)

    if scope == ArchiveJobScope.FILTER:
        query = filter_query if filter_query is not None else QueryDict(filter_querystring)
        thread_filter, _form = thread_filter_from_query(query)
        if not thread_filter.is_valid:
            problems = "; ".join(
                "%s: %s" % (name, " ".join(messages)) for name, messages in thread_filter.errors.items()
            )
            raise ArchiveSelectionError("The filter is invalid (%s). Fix it on the threads list." % problems)
        return ArchiveSelection(scope=scope, thread_filter=thread_filter)

    raise ArchiveSelectionError("Unknown selection scope %r; use 'selected' or 'filter'." % scope)


def _plan_expression(*, interrupt_running: bool) -> Case:
    running_plan = ArchivePlan.INTERRUPT_FIRST if interrupt_running else ArchivePlan.SKIP_RUNNING
    return Case(
        When(gone_at__isnull=False, then=Value(ArchivePlan.SKIP_GONE)),
        When(is_primary=True, then=Value(ArchivePlan.SKIP_PRIMARY)),
        When(archived_at__isnull=False, then=Value(ArchivePlan.SKIP_ALREADY_ARCHIVED)),
        When(status=SnapshotStatus.RUNNING, then=Value(running_plan)),
        # The snapshot cannot tell an open run from a closed one; only a terminated
        # thread's run is surely closed.
        When(
            Q(workflow_run_id__isnull=False) & ~Q(status=SnapshotStatus.TERMINATED),
            then=Value(ArchivePlan.RUN_MAY_BE_OPEN),
        ),
        default=Value(ArchivePlan.ARCHIVE),
        output_field=CharField(),
    )


def _tokens_expression():
    columns = (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_5m_input_tokens",
        "cache_creation_1h_input_tokens",
    )
    total = Coalesce(columns[0], Value(0))
    for column in columns[1:]:
        total = total + Coalesce(column, Value(0))
    return total


def _agent_label(*, agent_type: str, agent_name: str | None, model: str | None) -> str:
    if agent_type == AgentType.ADVISOR:
        return "advisor · %s" % (model or "unknown model")
    return agent_name or agent_type or "unknown agent"


def archive_dry_run(*, selection: ArchiveSelection, interrupt_running: bool) -> ArchiveDryRun:
    """Return what confirming the selection would archive and skip, and why.

    Reads snapshots only; sends nothing.
    """
    threads = selection.threads().annotate(plan=_plan_expression(interrupt_running=interrupt_running))
    dry_run = ArchiveDryRun()

    per_plan = threads.values("plan", "list_cost_currency").annotate(
        count=Count("id"), cost=Sum("list_cost_amount"), tokens=Sum(_tokens_expression())
    )
    counts: dict[str, int] = defaultdict(int)
    for row in per_plan:
        counts[row["plan"]] += row["count"]
        if row["plan"] in ArchivePlan.PLANNED:
            dry_run.total_tokens += row["tokens"] or 0
            if row["cost"] is not None and row["list_cost_currency"]:
                currency = row["list_cost_currency"]
                dry_run.list_cost_totals[currency] = dry_run.list_cost_totals.get(currency, 0) + row["cost"]
    dry_run.counts_by_plan = dict(counts)
    dry_run.selected_count = sum(counts.values())
    dry_run.planned_count = sum(counts[plan] for plan in ArchivePlan.PLANNED)

    dry_run.by_agent = _by_agent(threads)
    dry_run.samples = list(
        threads.order_by("-created_at", "-id").values(
            "id",
            "session_id",
            "status",
            "agent_type",
            "agent_name",
            "model",
            "created_at",
            "list_cost_amount",
            "list_cost_currency",
            "plan",
        )[:SAMPLE_SIZE]
    )
    for sample in dry_run.samples:
        sample["plan_label"] = ArchivePlan.LABELS[sample["plan"]]

    if selection.scope == ArchiveJobScope.SELECTED:
        known = set(Thread.objects.filter(pk__in=selection.thread_ids).values_list("pk", flat=True))
        dry_run.unknown_ids = [thread_id for thread_id in selection.thread_ids if thread_id not in known]
    return dry_run


def _by_agent(threads: QuerySet[Thread]) -> list[dict[str, Any]]:
    rows = threads.values("agent_type", "agent_name", "model", "plan").annotate(count=Count("id"))
    agents: dict[str, dict[str, Any]] = {}
    for row in rows:
        label = _agent_label(agent_type=row["agent_type"], agent_name=row["agent_name"], model=row["model"])
        entry = agents.setdefault(label, {"agent": label, "planned": 0, "skipped": 0})
        entry["planned" if row["plan"] in ArchivePlan.PLANNED else "skipped"] += row["count"]
    return sorted(agents.values(), key=lambda entry: (-entry["planned"], entry["agent"]))


def archive_job_create(*, selection: ArchiveSelection, interrupt_running: bool, user=None) -> ArchiveJob:
    """Freeze the selection into a confirmed job and schedule its start after the grace period.

    Raises ArchiveSelectionError, and creates nothing, when the selection matches no
    stored thread. Writes one item per selected thread in batches of CREATE_BATCH_SIZE; threads the
    dry run skips get items that are skipped from the start, with their reason. The
    start task is sent after the transaction commits.
    """
    from threads.tasks.archive import archive_job_start

    now = timezone.now()
    grace_seconds = settings.ARCHIVE_GRACE_SECONDS

    with transaction.atomic():
        dry_run = archive_dry_run(selection=selection, interrupt_running=interrupt_running)
        if dry_run.selected_count == 0:
            raise ArchiveSelectionError(_empty_selection_message(selection=selection, dry_run=dry_run))
        job = ArchiveJob.objects.create(
            created_by=user if user is not None and user.is_authenticated else None,
            scope=selection.scope,
            selected_ids=list(selection.thread_ids),
            filter_query=selection.filter_query(),
            interrupt_running=interrupt_running,
            grace_until=now + timedelta(seconds=grace_seconds),
            list_cost_totals=dry_run.list_cost_totals,
            total_tokens=dry_run.total_tokens,
        )
        total, planned = _items_create(job=job, selection=selection, interrupt_running=interrupt_running)
        ArchiveJob.objects.filter(pk=job.pk).update(total_count=total, planned_count=planned)
        archive_job_start.apply_async_on_commit(args=[job.pk], countdown=grace_seconds)

    job.refresh_from_db()
    logger.info(
        "Archive job confirmed",
        extra={
            "archive_job_id": job.pk,
            "total": total,
            "planned": planned,
            "grace_seconds": grace_seconds,
            "user_id": job.created_by_id,
        },
    )
    return job


def _empty_selection_message(*, selection: ArchiveSelection, dry_run: ArchiveDryRun) -> str:
    if selection.scope == ArchiveJobScope.FILTER:
        return "The filter matches no stored threads, so there is nothing to archive. Change the filter."

    shown = ", ".join(dry_run.unknown_ids[:MAX_IDS_IN_MESSAGE])
    more = len(dry_run.unknown_ids) - MAX_IDS_IN_MESSAGE
    suffix = " (and %d more)" % more if more > 0 else ""
    return (
        "None of the selected threads is stored, so there is nothing to archive. Unknown ids: %s%s. "
        "Check the ids, or sync first." % (shown, suffix)
    )


def _items_create(
    *, job: ArchiveJob, selection: ArchiveSelection, interrupt_running: bool
) -> tuple[int, int]:
    rows = (
        selection.threads()
        .annotate(plan=_plan_expression(interrupt_running=interrupt_running))
        .order_by("id")
        .values_list("id", "session_id", "workflow_run_id", "agent_type", "agent_name", "model", "plan")
    )
    now = timezone.now()
    batch: list[ArchiveItem] = []
    total = planned = 0

    for thread_id, session_id, workflow_run_id, agent_type, agent_name, model, plan in rows.iterator(
        chunk_size=CREATE_BATCH_SIZE
    ):
        is_planned = plan in ArchivePlan.PLANNED
        batch.append(
            ArchiveItem(
                job=job,
                thread_id=thread_id,
                session_id=session_id,
                workflow_run_id=workflow_run_id,
                agent_label=_agent_label(agent_type=agent_type, agent_name=agent_name, model=model)[:512],
                interrupt_first=plan == ArchivePlan.INTERRUPT_FIRST,
                state=ArchiveItemState.PENDING if is_planned else ArchiveItemState.SKIPPED,
                reason="" if is_planned else ArchivePlan.LABELS[plan],
                finished_at=None if is_planned else now,
            )
        )
        total += 1
        planned += int(is_planned)
        if len(batch) >= CREATE_BATCH_SIZE:
            ArchiveItem.objects.bulk_create(batch)
            batch = []

    if batch:
        ArchiveItem.objects.bulk_create(batch)
    return total, planned


def archive_job_start(*, job_id: int) -> int:
    """Start a confirmed job once its grace period is over, and queue a chunk of its items.

    Idempotent: only the run that moves the job from scheduled to running starts it;
    a cancelled or finished job sends nothing. Each run queues up to QUEUE_CHUNK_SIZE
    pending items not yet queued and re-queues itself while more remain. Returns the
    number of items queued.
    """
    from threads.tasks.archive import archive_job_start as archive_job_start_task

    job = ArchiveJob.objects.get(pk=job_id)
    now = timezone.now()

    if job.status == ArchiveJobStatus.SCHEDULED:
        if job.grace_until > now:
            # Delivered early (a clock step, or a redelivery): wait out the rest.
            archive_job_start_task.apply_async(
                args=[job_id], countdown=(job.grace_until - now).total_seconds()
            )
            return 0
        started = ArchiveJob.objects.filter(pk=job_id, status=ArchiveJobStatus.SCHEDULED).update(
            status=ArchiveJobStatus.RUNNING, started_at=now
        )
        if started:
            logger.info("Archive job started", extra={"archive_job_id": job_id})
        job.refresh_from_db()

    if job.status != ArchiveJobStatus.RUNNING:
        logger.info(
            "Archive job not running; nothing queued", extra={"archive_job_id": job_id, "status": job.status}
        )
        return 0

    sent = _items_queue_chunk(job_id=job_id)
    if sent == QUEUE_CHUNK_SIZE:
        archive_job_start_task.delay(job_id)
    elif sent == 0:
        archive_job_finish_if_done(job_id=job_id)
    return sent


def _items_queue_chunk(*, job_id: int) -> int:
    unqueued = ArchiveItem.objects.filter(
        job_id=job_id, state=ArchiveItemState.PENDING, queued_at__isnull=True
    )
    item_ids = list(unqueued.order_by("id").values_list("id", flat=True)[:QUEUE_CHUNK_SIZE])
    if not item_ids:
        return 0

    # Mark first: an item marked but never sent (a crash here) is found by the reconciler.
    ArchiveItem.objects.filter(pk__in=item_ids, queued_at__isnull=True).update(queued_at=timezone.now())
    archive_items_enqueue(item_ids=item_ids)
    return len(item_ids)


def archive_task_soft_time_limit() -> int:
    """Return the soft time limit of an item task in seconds: half the stuck threshold, at least 5.

    The limit makes a hung attempt give its items back before the reconciler would
    hand them to a second run.
    """
    return max(5, settings.ARCHIVE_STUCK_AFTER_SECONDS // 2)


def archive_items_enqueue(*, item_ids: Sequence[int], countdown: float = 0) -> int:
    """Send tasks that process these items, up to ARCHIVE_BATCH_SIZE items per task.

    Returns the number of tasks sent.
    """
    from threads.tasks.archive import archive_items_process

    batch_size = settings.ARCHIVE_BATCH_SIZE
    sent = 0
    for start in range(0, len(item_ids), batch_size):
        archive_items_process.apply_async(
            args=[list(item_ids[start : start + batch_size])],
            countdown=countdown,
            soft_time_limit=archive_task_soft_time_limit(),
        )
        sent += 1
    return sent


def archive_item_enqueue(*, item_id: int, countdown: float = 0) -> None:
    """Send a task that processes one item, such as a retry after its backoff."""
    archive_items_enqueue(item_ids=[item_id], countdown=countdown)


def archive_job_finish_if_done(*, job_id: int) -> bool:
    """Mark the job finished, with its final counts, if none of its items is open.

    A conditional update, so concurrent callers finish the job once. The counts are
    written in the same transaction, so no reader sees a finished job without them.
    Returns whether this call finished it.
    """
    open_items = ArchiveItem.objects.filter(job_id=OuterRef("pk"), state__in=OPEN_ITEM_STATES)
    with transaction.atomic():
        finished = (
            ArchiveJob.objects.filter(
                pk=job_id,
                finished_at__isnull=True,
                status__in=[ArchiveJobStatus.RUNNING, ArchiveJobStatus.CANCELLED],
            )
            .filter(~Exists(open_items))
            .update(
                finished_at=timezone.now(),
                status=Case(
                    When(status=ArchiveJobStatus.CANCELLED, then=Value(ArchiveJobStatus.CANCELLED)),
                    default=Value(ArchiveJobStatus.FINISHED),
                ),
            )
        )
        if not finished:
            return False
        counts = _item_counts(job_id=job_id)
        ArchiveJob.objects.filter(pk=job_id).update(
            archived_count=counts["archived"], skipped_count=counts["skipped"], failed_count=counts["failed"]
        )

    job = ArchiveJob.objects.get(pk=job_id)
    duration = (job.finished_at - job.started_at).total_seconds() if job.started_at else 0.0
    logger.info(
        "Archive job finished",
        extra={
            "archive_job_id": job_id,
            "status": job.status,
            "archived": counts["archived"],
            "skipped": counts["skipped"],
            "failed": counts["failed"],
            "duration_seconds": round(duration, 1),
        },
    )
    return True


@dataclass(frozen=True)
class ArchiveProgress:
    """Counts of a job's items by state, from one aggregate query."""

    total: int
    pending: int
    in_progress: int
    archived: int
    skipped: int
    failed: int
    already_archived: int

    @property
    def queued(self) -> int:
        return self.pending + self.in_progress

    @property
    def done(self) -> int:
        return self.archived + self.skipped + self.failed

    @property
    def percent(self) -> int:
        if self.total == 0:
            return 100
        return int(self.done * 100 / self.total)


def _item_counts(*, job_id: int) -> dict[str, int]:
    def count_of(state: str) -> Count:
        return Count("id", filter=Q(state=state))

    return ArchiveItem.objects.filter(job_id=job_id).aggregate(
        total=Count("id"),
        pending=count_of(ArchiveItemState.PENDING),
        in_progress=count_of(ArchiveItemState.IN_PROGRESS),
        archived=count_of(ArchiveItemState.ARCHIVED),
        skipped=count_of(ArchiveItemState.SKIPPED),
        failed=count_of(ArchiveItemState.FAILED),
        already_archived=Count("id", filter=Q(state=ArchiveItemState.ARCHIVED, already_archived=True)),
    )


def archive_job_progress(*, job_id: int) -> ArchiveProgress:
    """Return the job's live counts."""
    return ArchiveProgress(**_item_counts(job_id=job_id))


def archive_job_cancel(*, job_id: int, user=None) -> bool:
    """Cancel a job: its pending items are skipped and never sent; finished ones stay.

    An item already in progress finishes its attempt. Returns False when the job was
    already finished or cancelled.
    """
    now = timezone.now()
    with transaction.atomic():
        cancelled = ArchiveJob.objects.filter(
            pk=job_id, status__in=[ArchiveJobStatus.SCHEDULED, ArchiveJobStatus.RUNNING]
        ).update(
            status=ArchiveJobStatus.CANCELLED,
            cancelled_at=now,
            cancelled_by=user if user is not None and user.is_authenticated else None,
        )
        if not cancelled:
            return False
        skipped = ArchiveItem.objects.filter(job_id=job_id, state=ArchiveItemState.PENDING).update(
            state=ArchiveItemState.SKIPPED,
            reason="cancelled before it was sent",
            retry_at=None,
            finished_at=now,
        )

    logger.info("Archive job cancelled", extra={"archive_job_id": job_id, "items_skipped": skipped})
    archive_job_finish_if_done(job_id=job_id)
    return True


def archive_job_retry_failed(*, job_id: int) -> int:
    """Return a job's failed items to pending with a fresh attempt budget, and queue them.

    Returns the number of items retried; 0 for a cancelled or scheduled job.
    """
    from threads.tasks.archive import archive_job_start

    with transaction.atomic():
        job = ArchiveJob.objects.select_for_update().get(pk=job_id)
        if job.status not in (ArchiveJobStatus.RUNNING, ArchiveJobStatus.FINISHED):
            return 0
        retried = ArchiveItem.objects.filter(job_id=job_id, state=ArchiveItemState.FAILED).update(
            state=ArchiveItemState.PENDING,
            attempts=0,
            reason="",
            queued_at=None,
            retry_at=None,
            finished_at=None,
        )
        if retried:
            ArchiveJob.objects.filter(pk=job_id).update(status=ArchiveJobStatus.RUNNING, finished_at=None)
            archive_job_start.apply_async_on_commit(args=[job_id])

    logger.info("Archive job failed items retried", extra={"archive_job_id": job_id, "items": retried})
    return retried


@dataclass
class ReconcileReport:
    """Changes made by one reconciler run."""

    stuck_requeued: int = 0
    stuck_failed: int = 0
    unqueued_requeued: int = 0
    jobs_started: int = 0
    jobs_finished: int = 0


def archive_jobs_reconcile() -> ReconcileReport:
    """Recover work a crashed worker or a lost message left behind.

    Requeues items in progress for longer than ARCHIVE_STUCK_AFTER_SECONDS, and fails
    those that used their last attempt. Requeues pending items of running jobs whose
    task is overdue or was never sent. Starts scheduled jobs whose start task is
    overdue, and finishes jobs whose items are all final.
    """
    from threads.tasks.archive import archive_job_start

    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.ARCHIVE_STUCK_AFTER_SECONDS)
    report = ReconcileReport()

    report.stuck_failed, report.stuck_requeued = _stuck_items_recover(now=now, cutoff=cutoff)
    report.unqueued_requeued = _overdue_items_requeue(now=now, cutoff=cutoff)

    overdue_jobs = ArchiveJob.objects.filter(status=ArchiveJobStatus.SCHEDULED, grace_until__lt=cutoff)
    for job_id in overdue_jobs.values_list("pk", flat=True):
        archive_job_start.delay(job_id)
        report.jobs_started += 1

    open_jobs = ArchiveJob.objects.filter(
        finished_at__isnull=True, status__in=[ArchiveJobStatus.RUNNING, ArchiveJobStatus.CANCELLED]
    )
    for job_id in open_jobs.values_list("pk", flat=True):
        report.jobs_finished += int(archive_job_finish_if_done(job_id=job_id))

    if any(vars(report).values()):
        logger.info("Archive reconciler changed work", extra=vars(report))
    return report


def _stuck_items_recover(*, now, cutoff) -> tuple[int, int]:
    stuck = ArchiveItem.objects.filter(state=ArchiveItemState.IN_PROGRESS, claimed_at__lt=cutoff)

    failed = stuck.filter(attempts__gte=settings.ARCHIVE_MAX_ATTEMPTS).update(
        state=ArchiveItemState.FAILED,
        reason="worker stopped during the last allowed attempt",
        finished_at=now,
    )
    if failed:
        logger.warning("Archive items failed after their worker stopped", extra={"items": failed})

    # A cancelled job does not retry, and what its lost attempt did upstream is unknown.
    abandoned = stuck.exclude(job__status=ArchiveJobStatus.RUNNING).update(
        state=ArchiveItemState.FAILED,
        reason="worker stopped during the attempt and the job is no longer running; the outcome is unknown",
        finished_at=now,
    )
    failed += abandoned

    item_ids = list(stuck.filter(job__status=ArchiveJobStatus.RUNNING).values_list("pk", flat=True))
    requeued = ArchiveItem.objects.filter(
        pk__in=item_ids, state=ArchiveItemState.IN_PROGRESS, claimed_at__lt=cutoff
    ).update(state=ArchiveItemState.PENDING, queued_at=now, retry_at=None)
    archive_items_enqueue(item_ids=item_ids)
    return failed, requeued


def _overdue_items_requeue(*, now, cutoff) -> int:
    # A pending item's task counts as lost when it was due (retry_at, else queued_at)
    # before the cutoff and no item of its job was claimed since. While a job's items
    # are still being claimed, its other tasks are taken to be waiting in the queue.
    # NOTE: a job starved by another job's long queue may get duplicate tasks, which
    # the claim makes harmless.
    recently_claimed = ArchiveItem.objects.filter(job_id=OuterRef("job_id"), claimed_at__gte=cutoff)
    overdue = (
        ArchiveItem.objects.filter(state=ArchiveItemState.PENDING, job__status=ArchiveJobStatus.RUNNING)
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lt=cutoff))
        .filter(Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True, job__started_at__lt=cutoff))
        .filter(~Exists(recently_claimed))
    )
    item_ids = list(overdue.values_list("pk", flat=True))
    ArchiveItem.objects.filter(pk__in=item_ids, state=ArchiveItemState.PENDING).update(
        queued_at=now, retry_at=None
    )
    archive_items_enqueue(item_ids=item_ids)
    return len(item_ids)


def archive_job_list() -> QuerySet[ArchiveJob]:
    """Return archive jobs, newest first, with their creator."""
    return ArchiveJob.objects.select_related("created_by").order_by("-created_at", "-id")


def archive_job_failed_items(*, job_id: int) -> QuerySet[ArchiveItem]:
    return ArchiveItem.objects.filter(job_id=job_id, state=ArchiveItemState.FAILED).order_by("id")


def archive_job_skipped_reasons(*, job_id: int) -> list[dict[str, Any]]:
    """Return the job's skip reasons with their counts, most frequent first."""
    rows = (
        ArchiveItem.objects.filter(job_id=job_id, state=ArchiveItemState.SKIPPED)
        .values("reason")
        .annotate(count=Count("id"))
        .order_by("-count", "reason")
    )
    return list(rows)


__all__ = [
    "FINAL_ITEM_STATES",
    "ArchiveDryRun",
    "ArchivePlan",
    "ArchiveProgress",
    "ArchiveSelection",
    "ArchiveSelectionError",
    "archive_dry_run",
    "archive_item_enqueue",
    "archive_items_enqueue",
    "archive_job_cancel",
    "archive_job_create",
    "archive_job_failed_items",
    "archive_job_finish_if_done",
    "archive_job_list",
    "archive_job_progress",
    "archive_job_retry_failed",
    "archive_job_skipped_reasons",
    "archive_job_start",
    "archive_jobs_reconcile",
    "archive_selection_build",
    "archive_task_soft_time_limit",
]
