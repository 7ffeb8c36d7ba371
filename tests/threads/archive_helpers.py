"""Helpers shared by the archive tests: seeding snapshots and waiting for a job."""

import time

from threads.models import ArchiveJob
from threads.services.archive_jobs import archive_jobs_reconcile
from threads.services.sync import sync_full


def snapshots_seed() -> None:
    """Fill the snapshot tables from the emulator the API settings point at."""
    sync_full()


def job_wait_finished(job_id: int, *, timeout: float = 120.0, reconcile: bool = False) -> ArchiveJob:
    """Poll until the job finishes, running the reconciler each second if asked.

    Raises AssertionError with the job's state when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ArchiveJob.objects.get(pk=job_id)
        if job.finished_at is not None:
            return job
        if reconcile:
            archive_jobs_reconcile()
        time.sleep(0.5)
    raise AssertionError(
        "archive job %s did not finish within %.0f s: status %s" % (job_id, timeout, job.status)
    )
