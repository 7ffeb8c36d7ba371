"""Fill and refresh the session and thread snapshots from the API.

Design invariants:

* A session's row is written only after its full thread list has been stored. When
  a thread list fails, the session row keeps its old `updated_at` and hash, so the
  next incremental sync finds the session changed and lists its threads again.
* Nothing is deleted. A thread left out of its session's complete thread list, a
  404 on retrieve, or a session that a full sync no longer lists and that then
  answers 404, sets `gone_at` on the row.
* Memory stays flat: session pages are read one at a time, and each session's
  threads are written in batches of `SYNC_BATCH_SIZE` by a bounded worker pool.
* The sessions list has no `updated_at` filter, so an incremental sync reads every
  session page and lists threads only of sessions that changed or are still running
  or rescheduling.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
from django.conf import settings
from django.utils import timezone

from threads.client import api_client, counting_api_calls
from threads.models import Session, SnapshotStatus, SyncRun, SyncRunKind, Thread
from threads.rate_limit import Priority
from threads.services.snapshot_parse import (
    ParsedSnapshot,
    session_record_parse,
    snapshot_id_read,
    snapshot_sha256,
    thread_record_parse,
)
from threads.services.snapshot_write import (
    SnapshotCandidate,
    WriteCounts,
    snapshot_batch_write,
    snapshot_candidate,
    snapshot_mark_gone,
    thread_mark_missing_gone,
)
from threads.services.sync_lock import SyncAlreadyRunning, sync_run_claim
from threads.services.sync_pages import (
    SESSIONS_PAGE_SIZE,
    session_pages,
    session_record_retrieve,
    thread_pages,
    thread_record_retrieve,
)
from threads.services.sync_state import SYNC_API_ERRORS, SyncState, sync_run_finish
from threads.services.sync_workers import SessionWorkerPool, database_turn
from threads.services.usage_rollup import usage_rollup_refresh_dirty

logger = logging.getLogger(__name__)

__all__ = [
    "SESSIONS_PAGE_SIZE",
    "SyncAlreadyRunning",
    "session_refresh",
    "sync_full",
    "sync_incremental",
    "thread_refresh",
]

# Sessions in these states may gain threads or usage without a new `updated_at`
# reaching us before the next run, so an incremental sync lists their threads anyway.
ACTIVE_STATUSES = {SnapshotStatus.RUNNING, SnapshotStatus.RESCHEDULING}

# Called with (sessions done, sessions seen so far) as a run advances.
ProgressCallback = Callable[[int, int], None]


@dataclass
class _SessionJob:
    """One session whose threads a worker lists and stores, then writes its row."""

    session_id: str
    record: dict


def sync_full(*, progress: ProgressCallback | None = None) -> SyncRun:
    """List every session and every session's threads, and store what changed.

    Sessions stored but no longer listed are retrieved one by one; a 404 marks them
    gone. Raises SyncAlreadyRunning when another full sync has the claim.
    """
    return _sync_run(kind=SyncRunKind.FULL, progress=progress)


def sync_incremental(*, progress: ProgressCallback | None = None) -> SyncRun:
    """List every session, and the threads only of sessions that changed or are active.

    Raises SyncAlreadyRunning when another incremental sync has the claim.
    """
    return _sync_run(kind=SyncRunKind.INCREMENTAL, progress=progress)


def session_refresh(*, session_id: str) -> SyncRun:
    """Retrieve one session and list its threads now, at interactive priority.

    A 404 marks the session gone.
    """
    run = SyncRun.objects.create(kind=SyncRunKind.SESSION, target_id=session_id)
    state = SyncState(run=run)
    _log_run_start(run)

    with counting_api_calls() as counter:
        client = api_client(priority=Priority.INTERACTIVE)
        _session_refresh_in_run(client=client, session_id=session_id, state=state)

    return sync_run_finish(state=state, api_calls=counter.calls)


def thread_refresh(*, session_id: str, thread_id: str) -> SyncRun:
    """Retrieve one thread now, at interactive priority. A 404 marks the thread gone."""
    run = SyncRun.objects.create(kind=SyncRunKind.THREAD, target_id=thread_id)
    state = SyncState(run=run)
    _log_run_start(run)

    with counting_api_calls() as counter:
        client = api_client(priority=Priority.INTERACTIVE)
        try:
            record = thread_record_retrieve(client, session_id=session_id, thread_id=thread_id)
        except anthropic.NotFoundError:
            _mark_gone(model=Thread, ids=[thread_id], state=state)
        except SYNC_API_ERRORS as exc:
            state.add_error(target=thread_id, exc=exc)
        else:
            _thread_records_store(records=[record], session_id=session_id, state=state)

    return sync_run_finish(state=state, api_calls=counter.calls)


def _sync_run(*, kind: SyncRunKind, progress: ProgressCallback | None) -> SyncRun:
    run = sync_run_claim(kind=kind)
    state = SyncState(run=run, progress=progress)
    _log_run_start(run)

    with counting_api_calls() as counter:
        client = api_client(priority=Priority.BACKGROUND)
        listed_ids = _sessions_list_and_dispatch(client=client, kind=kind, state=state)
        if listed_ids is not None:
            _missing_sessions_check(client=client, listed_ids=listed_ids, state=state)

    # The run marked the days of the threads it wrote; refresh them before the run ends.
    usage_rollup_refresh_dirty()
    return sync_run_finish(state=state, api_calls=counter.calls)


def _sessions_list_and_dispatch(
    *, client: anthropic.Anthropic, kind: SyncRunKind, state: SyncState
) -> set[str] | None:
    """Read every session page and hand sessions to the workers.

    Returns the listed session ids for a full sync, None for an incremental sync or
    when the listing failed.
    """
    full = kind == SyncRunKind.FULL
    listed_ids: set[str] = set()

    def work(job: _SessionJob) -> None:
        try:
            snapshot = session_record_parse(record=job.record)
            _session_threads_sync(client=client, snapshot=snapshot, state=state)
        except Exception as exc:
            # A database error or a bug: record it against the session, keep the run going.
            logger.exception(
                "Session sync crashed",
                extra={"sync_run_id": state.run.pk, "session_id": job.session_id},
            )
            state.add_error(target=job.session_id, exc=exc)
            state.add_session_done()

    with SessionWorkerPool(concurrency=settings.SYNC_CONCURRENCY, work=work) as pool:
        try:
            for records in session_pages(client):
                jobs = _session_page_triage(records=records, relist_all=full, state=state)
                listed_ids.update(job.session_id for job in jobs.relist)
                listed_ids.update(jobs.unchanged_ids)
                for job in jobs.relist:
                    pool.submit(job)
        except SYNC_API_ERRORS as exc:
            state.add_error(target="sessions", exc=exc)
            state.listing_failed = True

    if state.listing_failed or not full:
        return None
    return listed_ids


@dataclass
class _PageTriage:
    relist: list[_SessionJob]
    unchanged_ids: list[str]


def _session_page_triage(*, records: list[Any], relist_all: bool, state: SyncState) -> _PageTriage:
    """Pick the sessions of one page whose threads must be listed.

    Sessions are compared by the hash of their raw JSON, which covers `updated_at`;
    only the sessions picked are parsed, later, by the workers.
    """
    hashed = []
    for record in records:
        session_id = snapshot_id_read(record)
        if session_id is None:
            snapshot = session_record_parse(record=record)
            state.add_unstorable(record=record, parse_error=snapshot.parse_error)
        else:
            hashed.append((session_id, snapshot_sha256(record), record))

    with database_turn():
        stored = {
            row[0]: row[1:]
            for row in Session.objects.filter(pk__in=[item[0] for item in hashed]).values_list(
                "id", "raw_sha256", "gone_at", "threads_synced_at"
            )
        }

    triage = _PageTriage(relist=[], unchanged_ids=[])
    for session_id, raw_sha256, record in hashed:
        if relist_all or _session_needs_threads(record, raw_sha256, stored.get(session_id)):
            triage.relist.append(_SessionJob(session_id=session_id, record=record))
        else:
            triage.unchanged_ids.append(session_id)

    unchanged = len(triage.unchanged_ids)
    state.add_sessions_seen(listed=len(hashed), done=unchanged)
    state.add_counts(WriteCounts(unchanged=unchanged), seen=unchanged)
    return triage


def _session_needs_threads(record: dict, raw_sha256: str, stored: tuple | None) -> bool:
    if stored is None:
        return True

    stored_sha256, gone_at, threads_synced_at = stored
    if record.get("status") in ACTIVE_STATUSES:
        return True
    if threads_synced_at is None or gone_at is not None:
        return True
    return stored_sha256 != raw_sha256


def _session_threads_sync(*, client: anthropic.Anthropic, snapshot: ParsedSnapshot, state: SyncState) -> None:
    """List one session's threads, store them, mark missing ones gone, then store the session."""
    session_id = snapshot.id
    listed_ids: set[str] = set()

    try:
        for records in thread_pages(client, session_id=session_id):
            listed_ids.update(_thread_records_store(records=records, session_id=session_id, state=state))
    except anthropic.NotFoundError:
        # Deleted between the sessions page and its thread list.
        _mark_gone(model=Session, ids=[session_id], state=state)
        state.add_session_done()
        return
    except SYNC_API_ERRORS as exc:
        state.add_error(target=session_id, exc=exc)
        state.add_session_done()
        return

    now = timezone.now()
    snapshot.values.update(thread_count=len(listed_ids), threads_synced_at=now)
    with database_turn():
        gone = thread_mark_missing_gone(session_id=session_id, listed_ids=listed_ids, gone_at=now)
        counts = snapshot_batch_write(
            model=Session, candidates=[snapshot_candidate(snapshot)], fetched_at=now
        )
    state.add_counts(counts, seen=1, gone=gone)
    state.add_session_done()


def _thread_records_store(*, records: list[Any], session_id: str, state: SyncState) -> set[str]:
    """Upsert one page of thread records in batches; return the ids of those stored."""
    candidates = []
    for record in records:
        thread_id = snapshot_id_read(record)
        if thread_id is None:
            snapshot = thread_record_parse(record=record, session_id=session_id)
            state.add_unstorable(record=record, parse_error=snapshot.parse_error)
        else:
            candidates.append(_thread_candidate(thread_id, record, session_id=session_id))

    batch_size = settings.SYNC_BATCH_SIZE
    for start in range(0, len(candidates), batch_size):
        batch = candidates[start : start + batch_size]
        with database_turn():
            counts = snapshot_batch_write(model=Thread, candidates=batch, fetched_at=timezone.now())
        state.add_counts(counts, seen=len(batch))
    return {candidate.id for candidate in candidates}


def _thread_candidate(thread_id: str, record: dict, *, session_id: str) -> SnapshotCandidate:
    return SnapshotCandidate(
        id=thread_id,
        raw_sha256=snapshot_sha256(record),
        parse=lambda: thread_record_parse(record=record, session_id=session_id),
    )


def _session_refresh_in_run(*, client: anthropic.Anthropic, session_id: str, state: SyncState) -> None:
    try:
        record = session_record_retrieve(client, session_id=session_id)
    except anthropic.NotFoundError:
        _mark_gone(model=Session, ids=[session_id], state=state)
        return
    except SYNC_API_ERRORS as exc:
        state.add_error(target=session_id, exc=exc)
        return

    snapshot = session_record_parse(record=record)
    if snapshot.id is None:
        state.add_unstorable(record=record, parse_error=snapshot.parse_error)
        return
    state.add_sessions_seen(listed=1, done=0)
    _session_threads_sync(client=client, snapshot=snapshot, state=state)


def _missing_sessions_check(*, client: anthropic.Anthropic, listed_ids: set[str], state: SyncState) -> None:
    """Retrieve stored sessions the full listing left out; mark those that 404 gone."""
    stored_ids = Session.objects.filter(gone_at__isnull=True).values_list("id", flat=True)
    missing = [session_id for session_id in stored_ids.iterator() if session_id not in listed_ids]
    if missing:
        logger.info(
            "Checking sessions the listing left out",
            extra={"sync_run_id": state.run.pk, "count": len(missing)},
        )

    for session_id in missing:
        _session_refresh_in_run(client=client, session_id=session_id, state=state)


def _mark_gone(*, model: type[Session] | type[Thread], ids: list[str], state: SyncState) -> None:
    with database_turn():
        gone = snapshot_mark_gone(model=model, ids=ids, gone_at=timezone.now())
    state.add_counts(WriteCounts(), seen=0, gone=gone)
    logger.info(
        "Marked %s gone upstream",
        model._meta.verbose_name,
        extra={"sync_run_id": state.run.pk, "ids": ",".join(ids)[:500], "marked": gone},
    )


def _log_run_start(run: SyncRun) -> None:
    logger.info(
        "Sync run started",
        extra={"sync_run_id": run.pk, "kind": run.kind, "target_id": run.target_id},
    )
