"""Celery tasks for snapshot sync. Each parses its arguments and calls one service.

Periodic syncs take a lock first and skip when it is held, so a slow run is never
joined by the next beat tick. Replaying any of these tasks is safe: a sync writes
only what differs upstream.
"""

import logging

from celery import shared_task

from threads.models import SyncRunKind
from threads.services import sync as sync_services
from threads.services.sync_lock import SyncAlreadyRunning, sync_task_lock

logger = logging.getLogger(__name__)

__all__ = ["session_refresh", "sync_full", "sync_incremental", "thread_refresh"]


@shared_task(name="threads.sync_incremental")
def sync_incremental() -> None:
    """Run an incremental sync unless one is already running."""
    _periodic_sync(kind=SyncRunKind.INCREMENTAL, service=sync_services.sync_incremental)


@shared_task(name="threads.sync_full")
def sync_full() -> None:
    """Run a full sync unless one is already running."""
    _periodic_sync(kind=SyncRunKind.FULL, service=sync_services.sync_full)


@shared_task(name="threads.session_refresh")
def session_refresh(*, session_id: str) -> None:
    """Refresh one session and its threads."""
    sync_services.session_refresh(session_id=session_id)


@shared_task(name="threads.thread_refresh")
def thread_refresh(*, session_id: str, thread_id: str) -> None:
    """Refresh one thread."""
    sync_services.thread_refresh(session_id=session_id, thread_id=thread_id)


def _periodic_sync(*, kind: SyncRunKind, service) -> None:
    with sync_task_lock(kind=kind) as acquired:
        if not acquired:
            logger.info("Skipped sync: its lock is held", extra={"kind": kind})
            return

        try:
            service()
        except SyncAlreadyRunning as exc:
            logger.info(
                "Skipped sync: another run is in progress",
                extra={"kind": kind, "running_sync_run_id": exc.holder.pk},
            )
