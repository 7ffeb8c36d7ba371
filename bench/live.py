"""Drive a live stack from a Django process: the emulator, Celery workers, archive jobs."""

import os
import tempfile
import time
from pathlib import Path

from django.conf import settings

from tests.support.emulator import EmulatorProcess
from tests.support.services import WorkerProcess

JOB_POLL_SECONDS = 0.2
CHILD_STATUSES_ARCHIVABLE = ("idle", "terminated")


class JobTimeout(RuntimeError):
    """An archive job did not finish within its time limit."""


def emulator_start(*options: str) -> EmulatorProcess:
    """Start an emulator and point this process's API client and limiter at it."""
    from threads.client import reset_api_clients
    from threads.rate_limit import get_rate_limiter, reset_rate_limiter

    emulator = EmulatorProcess(*options, "--log-level", "WARNING", startup_timeout=120).start()
    settings.ANTHROPIC_BASE_URL = emulator.base_url
    settings.ANTHROPIC_API_KEY = emulator.api_key
    reset_api_clients()
    reset_rate_limiter()
    get_rate_limiter().reset()
    return emulator


def archivable_threads_prepare(emulator: EmulatorProcess, *, count: int) -> list[str]:
    """Make `count` child threads archivable through the control endpoint and return their ids.

    Takes children of sessions that are not archived, sets a busy one idle and closes an
    open workflow run, so the API accepts the archive call. Raises RuntimeError when the
    emulator has fewer such children than `count`.
    """
    archived_sessions = {row["id"] for row in emulator.state_sessions() if row["archived_at"] is not None}
    candidates = [
        row
        for row in emulator.state_threads()
        if row["parent_thread_id"] is not None
        and row["archived_at"] is None
        and row["session_id"] not in archived_sessions
        and row["status"] in ("idle", "terminated", "running", "rescheduling")
    ]
    if len(candidates) < count:
        raise RuntimeError(
            "The emulator has %d unarchived child threads; %d are needed. Raise --sessions."
            % (len(candidates), count)
        )

    chosen = candidates[:count]
    for row in chosen:
        changes = {}
        if row["status"] not in CHILD_STATUSES_ARCHIVABLE:
            changes["status"] = "idle"
        if row["workflow_run_id"] and row["run_open"]:
            changes["run_open"] = False
        if changes:
            emulator.set_thread(row["id"], **changes)
    return [row["id"] for row in chosen]


def worker_env(*, emulator: EmulatorProcess, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a worker: this process's settings, pointed at the emulator."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=os.environ["DATABASE_URL"],
        ANTHROPIC_BASE_URL=emulator.base_url,
        ANTHROPIC_API_KEY=emulator.api_key,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    return env


_log_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))


def worker_start(
    *, emulator: EmulatorProcess, concurrency: int, name: str, extra_env: dict[str, str] | None = None
) -> WorkerProcess:
    """Start one `celery -A dashboard worker` process and wait until it is ready."""
    worker = WorkerProcess(
        env=worker_env(emulator=emulator, extra_env=extra_env),
        log_path=_log_dir / ("%s.log" % name),
        concurrency=concurrency,
        name="%s-%d" % (name, os.getpid()),
    )
    worker.wait_ready(timeout=60)
    return worker


def workers_start(
    *, emulator: EmulatorProcess, count: int, concurrency: int, extra_env: dict[str, str] | None = None
) -> list[WorkerProcess]:
    return [
        worker_start(
            emulator=emulator, concurrency=concurrency, name="bench-worker-%d" % index, extra_env=extra_env
        )
        for index in range(count)
    ]


def job_wait(*, job_id: int, timeout: float, on_poll=None) -> None:
    """Poll until the archive job is finished; call `on_poll(progress)` after each poll.

    Raises JobTimeout with the job's counts when `timeout` seconds pass first.
    """
    from threads.models import ArchiveJob
    from threads.services.archive_jobs import archive_job_progress

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ArchiveJob.objects.get(pk=job_id)
        progress = archive_job_progress(job_id=job_id)
        if job.is_finished:
            return
        if on_poll is not None:
            on_poll(progress)
        time.sleep(JOB_POLL_SECONDS)
    raise JobTimeout("Archive job %d did not finish within %.0f s: %s" % (job_id, timeout, progress))
