"""Celery tasks for archive jobs: thin wrappers over threads.services.archive_*.

Each task takes ids, re-reads the rows and may run twice: the services claim work
with conditional updates, which is what makes acknowledging late safe. No task waits
on another; item retries are new tasks sent with a countdown.
"""

from celery import shared_task

from threads.services import archive_items, archive_jobs

__all__ = ["archive_item_process", "archive_items_process", "archive_job_start", "archive_reconcile"]


@shared_task(name="threads.archive_job_start", acks_late=True, reject_on_worker_lost=True)
def archive_job_start(job_id: int) -> None:
    """Start a job after its grace period and queue its items in chunks."""
    archive_jobs.archive_job_start(job_id=job_id)


@shared_task(name="threads.archive_items_process", acks_late=True, reject_on_worker_lost=True)
def archive_items_process(item_ids: list[int]) -> None:
    """Make one attempt at archiving each item; retries are scheduled by the service."""
    archive_items.archive_items_process(item_ids=item_ids)


# Nothing sends this task any more; it drains messages queued before an upgrade.
@shared_task(name="threads.archive_item_process", acks_late=True, reject_on_worker_lost=True)
def archive_item_process(item_id: int) -> None:
    """Make one attempt at archiving one item; retries are scheduled by the service."""
    archive_items.archive_item_process(item_id=item_id)


@shared_task(name="threads.archive_reconcile", acks_late=True, reject_on_worker_lost=True)
def archive_reconcile() -> None:
    """Requeue stuck or lost items and finish jobs whose items are all final."""
    archive_jobs.archive_jobs_reconcile()
