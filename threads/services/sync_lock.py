"""Keep two periodic syncs of the same kind from running at once.

Two layers. `sync_run_claim` is always used: it creates the run's `SyncRun` row only
when no other run of that kind is running, checked and inserted under one database
lock, so it holds across processes with or without Redis. `sync_task_lock` adds a
Redis lock for Celery tasks when `REDIS_URL` is set, so a second task gives up before
it touches the database.

A run whose process died leaves its row `running`; after `STALE_RUN_AFTER` the next
claim marks it failed and proceeds.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from threads.models import SyncRun, SyncRunKind, SyncRunStatus

logger = logging.getLogger(__name__)

# NOTE: a run that lasts longer than this can be joined by a second one. By estimate
# (one API call per session, at the default 9 calls per second) a full sync of
# 30,000 sessions takes about an hour.
STALE_RUN_AFTER = timedelta(hours=1)
# Key of the PostgreSQL advisory lock that serialises claims (any fixed bigint).
CLAIM_ADVISORY_LOCK_KEY = 0x5E55_1065
REDIS_LOCK_PREFIX = "dashboard:sync-lock:"


class SyncAlreadyRunning(Exception):
    """Raised when another run of the same kind has the claim."""

    def __init__(self, holder: SyncRun) -> None:
        super().__init__(
            "A %s sync is already running (sync run %s, started %s)."
            % (holder.kind, holder.pk, holder.started_at.isoformat())
        )
        self.holder = holder


def sync_run_claim(*, kind: SyncRunKind) -> SyncRun:
    """Create and return a running `SyncRun` of this kind.

    Raises SyncAlreadyRunning when a run of the kind started less than
    `STALE_RUN_AFTER` ago is still running. Older running rows are marked failed.
    """
    now = timezone.now()

    with transaction.atomic():
        _lock_claims()

        stale = SyncRun.objects.filter(
            kind=kind, status=SyncRunStatus.RUNNING, started_at__lt=now - STALE_RUN_AFTER
        ).update(status=SyncRunStatus.FAILED, finished_at=now)
        if stale:
            logger.warning("Marked abandoned sync runs failed", extra={"kind": kind, "count": stale})

        holder = SyncRun.objects.filter(kind=kind, status=SyncRunStatus.RUNNING).first()
        if holder is not None:
            raise SyncAlreadyRunning(holder)
        return SyncRun.objects.create(kind=kind)


@contextmanager
def sync_task_lock(*, kind: SyncRunKind) -> Iterator[bool]:
    """Hold the Redis lock for this kind when REDIS_URL is set; yield whether it is held.

    Without Redis it yields True and leaves the exclusion to `sync_run_claim`.
    """
    if not settings.REDIS_URL:
        yield True
        return

    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    lock = client.lock(REDIS_LOCK_PREFIX + kind, timeout=STALE_RUN_AFTER.total_seconds(), blocking=False)
    acquired = lock.acquire()
    try:
        yield acquired
    finally:
        if acquired:
            _release(lock, kind=kind)
        client.close()


def _lock_claims() -> None:
    # SQLite needs no lock here: the settings open every transaction IMMEDIATE, which
    # takes the database's write lock at BEGIN.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_ADVISORY_LOCK_KEY])


def _release(lock, *, kind: str) -> None:
    import redis

    try:
        lock.release()
    except redis.exceptions.LockError:
        logger.warning("Sync lock expired before the run ended", extra={"kind": kind})
