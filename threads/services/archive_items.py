"""Archive one item of an archive job: the API calls and what their outcomes mean.

Invariants, which every function here keeps:

* Only the run that moved an item from pending to in progress (a conditional update
  that also adds one to `attempts`) works on it. Every later write is conditional on
  that state and that attempt number, so a task delivered twice, or a stale run that
  the reconciler replaced, changes nothing and counts nothing.
* One attempt sends at most one archive call. An attempt that follows an earlier
  attempt or error first retrieves the thread, and records it as archived without a
  second archive call when the API already shows `archived_at`.
* Retries are bounded by `ARCHIVE_MAX_ATTEMPTS` and happen only for errors that can
  heal: 429, 5xx (529 included), connection errors and timeouts, and 409 (thread
  busy). Any other error is final at once. A retry returns the item to pending and
  re-queues its task with a countdown, so no worker sleeps through a backoff.
* A 404 is not a failure: the thread is gone upstream, the item is skipped and the
  snapshot marked gone. A 400 (a primary thread) is skipped, with the API's message
  kept as the last error.
"""

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anthropic
import kombu.exceptions
import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from threads.client import api_client
from threads.models import (
    ArchiveAuditEntry,
    ArchiveItem,
    ArchiveItemState,
    ArchiveJob,
    ArchiveJobStatus,
    ArchiveOutcome,
    SnapshotStatus,
    Thread,
)
from threads.rate_limit import Priority, RateLimiterUnavailable, RateLimitWaitTimeout
from threads.services.archive_jobs import archive_item_enqueue, archive_job_finish_if_done
from threads.services.snapshot_parse import thread_record_parse
from threads.services.snapshot_write import snapshot_batch_write, snapshot_candidate, snapshot_mark_gone

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
# Below the broker's visibility timeout (180 s by default), so a waiting retry is not
# redelivered as a duplicate while a worker keeps it reserved.
BACKOFF_MAX_SECONDS = 120.0
INTERRUPT_POLL_SECONDS = 1.0
MAX_MESSAGE_LENGTH = 500
BUSY_STATUSES = (SnapshotStatus.RUNNING, SnapshotStatus.RESCHEDULING)
# Failures of the broker or of the limiter's store, not of the API: the item goes back to
# pending, due now, and the reconciler queues it again once the broker is back.
INFRASTRUCTURE_ERRORS = (RateLimiterUnavailable, kombu.exceptions.OperationalError, redis.RedisError)


@dataclass
class AttemptOutcome:
    """Decision of one attempt about its item."""

    state: ArchiveItemState
    audit: ArchiveOutcome | None = None
    reason: str = ""
    already_archived: bool = False
    error_type: str = ""
    error_message: str = ""
    request_id: str = ""
    record: dict[str, Any] | None = None
    thread_gone: bool = False
    interrupted: bool = False
    retry_after_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_retry(self) -> bool:
        return self.state == ArchiveItemState.PENDING


def archive_item_process(*, item_id: int) -> ArchiveItemState | None:
    """Make one attempt at archiving the item, and record what happened.

    Returns the item's new state, or None when another run has claimed the item or it is
    already final (a replayed task). A retry re-queues the item's task itself.
    """
    item = _item_claim(item_id=item_id)
    if item is None:
        return None

    job = ArchiveJob.objects.get(pk=item.job_id)
    try:
        return _item_process_claimed(item=item, job=job)
    except INFRASTRUCTURE_ERRORS as exc:
        logger.warning(
            "Archive item attempt stopped by a broker or limiter outage; the reconciler will requeue it",
            extra={"archive_item_id": item.pk, "thread_id": item.thread_id, "error_type": type(exc).__name__},
        )
        _item_release(item=item, exc=exc)
        return ArchiveItemState.PENDING
    except Exception as exc:
        # A bug must not leave the item in progress until the reconciler: fail it with
        # the error. Retry failed then looks before archiving, as for any earlier error.
        logger.exception(
            "Archive item crashed", extra={"archive_item_id": item.pk, "thread_id": item.thread_id}
        )
        _item_finish(item=item, job=job, outcome=_crash_outcome(exc))
        archive_job_finish_if_done(job_id=job.pk)
        return ArchiveItemState.FAILED


def _item_process_claimed(*, item: ArchiveItem, job: ArchiveJob) -> ArchiveItemState:
    outcome = _attempt(item=item, job=job)

    if outcome.is_retry and item.attempts >= settings.ARCHIVE_MAX_ATTEMPTS:
        outcome = _give_up(item=item, outcome=outcome)

    if outcome.is_retry:
        _item_retry_schedule(item=item, outcome=outcome)
    elif _item_finish(item=item, job=job, outcome=outcome):
        archive_job_finish_if_done(job_id=job.pk)
    return outcome.state


def _item_release(*, item: ArchiveItem, exc: Exception) -> None:
    # A no-op when the retry was already recorded and only its enqueue failed: the item
    # is pending with its retry time set, which the reconciler also picks up.
    now = timezone.now()
    _item_owned(item).update(
        state=ArchiveItemState.PENDING,
        queued_at=now,
        retry_at=now,
        last_error_type=type(exc).__name__,
        last_error_message=str(exc)[:MAX_MESSAGE_LENGTH],
    )


def _crash_outcome(exc: Exception) -> AttemptOutcome:
    return AttemptOutcome(
        state=ArchiveItemState.FAILED,
        audit=ArchiveOutcome.FAILED,
        reason="internal error: %s: %s" % (type(exc).__name__, str(exc)[:MAX_MESSAGE_LENGTH]),
        error_type=type(exc).__name__,
        error_message=str(exc)[:MAX_MESSAGE_LENGTH],
    )


def _item_claim(*, item_id: int) -> ArchiveItem | None:
    # An in-progress item whose run stopped long ago (a killed worker) may be claimed
    # again; the stale run's writes then fail their attempt-number condition.
    now = timezone.now()
    stuck_before = now - timedelta(seconds=settings.ARCHIVE_STUCK_AFTER_SECONDS)
    claimable = ArchiveItem.objects.filter(pk=item_id, job__status=ArchiveJobStatus.RUNNING)
    claimed = claimable.filter(state=ArchiveItemState.PENDING).update(
        state=ArchiveItemState.IN_PROGRESS, attempts=F("attempts") + 1, claimed_at=now
    )
    if not claimed:
        claimed = claimable.filter(state=ArchiveItemState.IN_PROGRESS, claimed_at__lt=stuck_before).update(
            attempts=F("attempts") + 1, claimed_at=now
        )

    if not claimed:
        logger.info("Archive item not claimable; skipping this delivery", extra={"archive_item_id": item_id})
        return None
    return ArchiveItem.objects.get(pk=item_id)


def _attempt(*, item: ArchiveItem, job: ArchiveJob) -> AttemptOutcome:
    client = api_client(priority=Priority.BULK, max_retries=0)
    try:
        return _attempt_calls(client=client, item=item, job=job)
    except anthropic.APIStatusError as exc:
        return _outcome_from_status_error(exc=exc, item=item, job=job)
    except (anthropic.APIConnectionError, RateLimitWaitTimeout, SoftTimeLimitExceeded) as exc:
        # The call may or may not have reached the API; the next attempt checks first.
        return _retry_outcome(exc=exc, message=str(exc) or type(exc).__name__)


def _attempt_calls(*, client: anthropic.Anthropic, item: ArchiveItem, job: ArchiveJob) -> AttemptOutcome:
    # A first attempt of a thread not known to be busy goes straight to archive. Every
    # other attempt looks first, so a lost response or a crash costs no second archive call.
    must_look_first = item.attempts > 1 or bool(item.last_error_type) or item.interrupt_first
    if must_look_first:
        record, request_id = _thread_retrieve(client=client, item=item)
        looked = _outcome_from_current(
            client=client, item=item, job=job, record=record, request_id=request_id
        )
        if looked is not None:
            return looked

    record, request_id = _thread_archive(client=client, item=item)
    return _archived_outcome(record=record, request_id=request_id, job=job)


def _outcome_from_current(
    *, client: anthropic.Anthropic, item: ArchiveItem, job: ArchiveJob, record: dict, request_id: str
) -> AttemptOutcome | None:
    """Decide from the thread's current record; None means go on and archive it."""
    if record.get("archived_at"):
        return _archived_outcome(record=record, request_id=request_id, job=job)

    if record.get("status") not in BUSY_STATUSES or not job.interrupt_running:
        return None

    if item.interrupted_at is None:
        request_id = _thread_interrupt(client=client, item=item)
        return AttemptOutcome(
            state=ArchiveItemState.PENDING,
            audit=ArchiveOutcome.INTERRUPTED,
            interrupted=True,
            request_id=request_id,
            reason="interrupt sent; waiting for the thread to become idle",
            retry_after_seconds=INTERRUPT_POLL_SECONDS,
            extra={"busy": True},
        )
    return AttemptOutcome(
        state=ArchiveItemState.PENDING,
        reason="still %s after the interrupt" % record.get("status"),
        request_id=request_id,
        retry_after_seconds=INTERRUPT_POLL_SECONDS * item.attempts,
        extra={"busy": True},
    )


def _thread_retrieve(*, client: anthropic.Anthropic, item: ArchiveItem) -> tuple[dict, str]:
    response = client.beta.sessions.threads.with_raw_response.retrieve(
        item.thread_id, session_id=item.session_id
    )
    return response.json(), response.headers.get("request-id", "")


def _thread_archive(*, client: anthropic.Anthropic, item: ArchiveItem) -> tuple[dict, str]:
    response = client.beta.sessions.threads.with_raw_response.archive(
        item.thread_id, session_id=item.session_id
    )
    return response.json(), response.headers.get("request-id", "")


def _thread_interrupt(*, client: anthropic.Anthropic, item: ArchiveItem) -> str:
    response = client.beta.sessions.events.with_raw_response.send(
        item.session_id,
        events=[{"type": "user.interrupt", "session_thread_id": item.thread_id}],
    )
    logger.info(
        "Interrupt sent before archiving",
        extra={"archive_item_id": item.pk, "thread_id": item.thread_id, "session_id": item.session_id},
    )
    return response.headers.get("request-id", "")


def _archived_outcome(*, record: dict, request_id: str, job: ArchiveJob) -> AttemptOutcome:
    # The API returns 200 with the unchanged thread when it was archived before, so a
    # thread archived before this job started counts as archived, flagged "already".
    parsed = thread_record_parse(record=record)
    archived_at = parsed.values.get("archived_at")
    # NOTE: this compares the API's clock with ours; a skew of seconds can misflag a
    # thread archived by someone else right as the job started.
    already = bool(archived_at and job.started_at and archived_at < job.started_at)
    return AttemptOutcome(
        state=ArchiveItemState.ARCHIVED,
        audit=ArchiveOutcome.ALREADY_ARCHIVED if already else ArchiveOutcome.ARCHIVED,
        already_archived=already,
        request_id=request_id,
        record=record,
    )


def _outcome_from_status_error(
    *, exc: anthropic.APIStatusError, item: ArchiveItem, job: ArchiveJob
) -> AttemptOutcome:
    message = _error_message(exc)

    if isinstance(exc, anthropic.NotFoundError):
        return _final_outcome(
            exc=exc,
            state=ArchiveItemState.SKIPPED,
            audit=ArchiveOutcome.GONE,
            reason="gone upstream",
            thread_gone=True,
        )
    if isinstance(exc, anthropic.BadRequestError):
        return _final_outcome(
            exc=exc,
            state=ArchiveItemState.SKIPPED,
            audit=ArchiveOutcome.SKIPPED,
            reason="rejected by the API (%s)" % exc.status_code,
        )
    if isinstance(exc, anthropic.ConflictError):
        return _conflict_outcome(exc=exc, item=item, message=message)
    if exc.status_code == 429 or exc.status_code >= 500:
        return _retry_outcome(exc=exc, message=message)

    return _final_outcome(
        exc=exc,
        state=ArchiveItemState.FAILED,
        audit=ArchiveOutcome.FAILED,
        reason="API error %s" % exc.status_code,
    )


def _conflict_outcome(*, exc: anthropic.APIStatusError, item: ArchiveItem, message: str) -> AttemptOutcome:
    # A workflow-run thread is archived by the server once its run closes; retrying
    # the client's archive while the run is open cannot succeed.
    if item.workflow_run_id:
        return _final_outcome(
            exc=exc,
            state=ArchiveItemState.SKIPPED,
            audit=ArchiveOutcome.SKIPPED,
            reason="workflow run still open (409)",
        )
    outcome = _retry_outcome(exc=exc, message=message)
    outcome.reason = "thread busy (409)"
    outcome.extra["busy"] = True
    return outcome


def _retry_outcome(*, exc: BaseException, message: str) -> AttemptOutcome:
    return AttemptOutcome(
        state=ArchiveItemState.PENDING,
        error_type=type(exc).__name__,
        error_message=message,
        request_id=getattr(exc, "request_id", None) or "",
        retry_after_seconds=_retry_after_header(exc),
    )


def _final_outcome(
    *,
    exc: anthropic.APIStatusError,
    state: ArchiveItemState,
    audit: ArchiveOutcome,
    reason: str,
    thread_gone: bool = False,
) -> AttemptOutcome:
    return AttemptOutcome(
        state=state,
        audit=audit,
        reason=reason,
        error_type=type(exc).__name__,
        error_message=_error_message(exc),
        request_id=exc.request_id or "",
        thread_gone=thread_gone,
    )


def _give_up(*, item: ArchiveItem, outcome: AttemptOutcome) -> AttemptOutcome:
    """Turn a retry that has used its last attempt into a final outcome."""
    if outcome.extra.get("busy"):
        outcome.state = ArchiveItemState.SKIPPED
        outcome.audit = ArchiveOutcome.SKIPPED
        outcome.reason = "%s, gave up after %d attempts" % (outcome.reason, item.attempts)
    else:
        outcome.state = ArchiveItemState.FAILED
        outcome.audit = ArchiveOutcome.FAILED
        outcome.reason = "gave up after %d attempts: %s" % (item.attempts, outcome.error_type)
    logger.warning(
        "Archive item gave up after its last attempt",
        extra={
            "archive_item_id": item.pk,
            "archive_job_id": item.job_id,
            "thread_id": item.thread_id,
            "attempts": item.attempts,
            "error_type": outcome.error_type,
        },
    )
    return outcome


def _item_retry_schedule(*, item: ArchiveItem, outcome: AttemptOutcome) -> None:
    now = timezone.now()
    countdown = _backoff_seconds(attempts=item.attempts, retry_after=outcome.retry_after_seconds)
    if outcome.interrupted:
        countdown = outcome.retry_after_seconds or INTERRUPT_POLL_SECONDS

    changes: dict[str, Any] = {
        "state": ArchiveItemState.PENDING,
        "queued_at": now,
        "retry_at": now + timedelta(seconds=countdown),
        "last_error_type": outcome.error_type or item.last_error_type,
        "last_error_message": outcome.error_message[:MAX_MESSAGE_LENGTH] or item.last_error_message,
        "last_request_id": outcome.request_id,
        "reason": outcome.reason,
    }
    if outcome.interrupted:
        changes["interrupted_at"] = now

    with transaction.atomic():
        updated = _item_owned(item).update(**changes)
        if updated and outcome.audit is not None:
            _audit_write(item=item, outcome=outcome)
    if not updated:
        return

    logger.warning(
        "Archive attempt will be retried",
        extra={
            "archive_item_id": item.pk,
            "archive_job_id": item.job_id,
            "thread_id": item.thread_id,
            "attempt": item.attempts,
            "error_type": outcome.error_type,
            "countdown_seconds": round(countdown, 2),
            "request_id": outcome.request_id,
        },
    )
    archive_item_enqueue(item_id=item.pk, countdown=countdown)


def _item_finish(*, item: ArchiveItem, job: ArchiveJob, outcome: AttemptOutcome) -> bool:
    """Record a final outcome, its snapshot change and its audit entry; False if stale."""
    now = timezone.now()
    with transaction.atomic():
        updated = _item_owned(item).update(
            state=outcome.state,
            reason=outcome.reason,
            already_archived=outcome.already_archived,
            last_error_type=outcome.error_type,
            last_error_message=outcome.error_message[:MAX_MESSAGE_LENGTH],
            last_request_id=outcome.request_id,
            retry_at=None,
            finished_at=now,
        )
        if not updated:
            logger.info(
                "Archive item changed by another run; outcome dropped", extra={"archive_item_id": item.pk}
            )
            return False

        if outcome.record is not None:
            _snapshot_update(item=item, record=outcome.record, fetched_at=now)
        if outcome.thread_gone:
            snapshot_mark_gone(model=Thread, ids=[item.thread_id], gone_at=now)
        _audit_write(item=item, outcome=outcome, user_id=job.created_by_id)

    logger.info(
        "Archive item finished",
        extra={
            "archive_item_id": item.pk,
            "archive_job_id": item.job_id,
            "thread_id": item.thread_id,
            "state": outcome.state,
            "attempts": item.attempts,
            "request_id": outcome.request_id,
        },
    )
    return True


def _item_owned(item: ArchiveItem):
    return ArchiveItem.objects.filter(pk=item.pk, state=ArchiveItemState.IN_PROGRESS, attempts=item.attempts)


def _snapshot_update(*, item: ArchiveItem, record: dict, fetched_at: datetime) -> None:
    parsed = thread_record_parse(record=record, session_id=item.session_id)
    if parsed.id != item.thread_id:
        logger.warning(
            "Archive response is for another thread; snapshot left alone",
            extra={"thread_id": item.thread_id, "response_thread_id": parsed.id},
        )
        return
    snapshot_batch_write(model=Thread, candidates=[snapshot_candidate(parsed)], fetched_at=fetched_at)


def _audit_write(*, item: ArchiveItem, outcome: AttemptOutcome, user_id: int | None = None) -> None:
    if user_id is None:
        user_id = ArchiveJob.objects.values_list("created_by_id", flat=True).get(pk=item.job_id)
    ArchiveAuditEntry.objects.create(
        user_id=user_id,
        job_id=item.job_id,
        thread_id=item.thread_id,
        session_id=item.session_id,
        outcome=outcome.audit,
        message=": ".join(part for part in (outcome.reason, outcome.error_message) if part)[
            :MAX_MESSAGE_LENGTH
        ],
        request_id=outcome.request_id,
    )


def _backoff_seconds(*, attempts: int, retry_after: float | None) -> float:
    """Return the delay before the next attempt: exponential with jitter, at least retry-after."""
    exponential = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    delay = exponential * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, retry_after * random.uniform(1.0, 1.2))
    return min(delay, BACKOFF_MAX_SECONDS)


def _retry_after_header(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None

    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(name)
        if not value:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            # An HTTP date is allowed too; the exponential backoff covers that case.
            continue
    return None


def _error_message(exc: anthropic.APIStatusError) -> str:
    message = getattr(exc, "api_message", None) or exc.message or ""
    return str(message)[:MAX_MESSAGE_LENGTH]
