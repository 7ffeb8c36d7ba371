"""Queue a refresh of one thread's snapshot."""

import logging

from kombu.exceptions import KombuError

from dashboard.celery import app as celery_app

logger = logging.getLogger(__name__)

THREAD_REFRESH_TASK = "threads.thread_refresh"


class RefreshNotQueued(Exception):
    """The broker did not accept the refresh task; `str(exc)` is safe to show."""


def thread_refresh_request(*, session_id: str, thread_id: str) -> None:
    """Send the refresh task for one thread to the broker.

    The task is sent by name so that this module does not import the sync tasks.
    Raises RefreshNotQueued when the broker cannot be reached.
    """
    try:
        celery_app.send_task(THREAD_REFRESH_TASK, kwargs={"session_id": session_id, "thread_id": thread_id})
    except (KombuError, OSError) as exc:
        logger.warning(
            "Thread refresh not queued",
            extra={"session_id": session_id, "thread_id": thread_id, "error_type": type(exc).__name__},
        )
        raise RefreshNotQueued("The task queue is unreachable, so the refresh was not queued.") from exc

    logger.info("Thread refresh queued", extra={"session_id": session_id, "thread_id": thread_id})
