"""A bounded pool of threads that sync sessions while the caller reads more pages."""

import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections

logger = logging.getLogger(__name__)

_STOP = object()
_sqlite_lock = threading.Lock()


@contextmanager
def database_turn() -> Iterator[None]:
    """Give this thread sole use of the database on SQLite; do nothing on PostgreSQL.

    SQLite has one writer at a time, and its shared-cache in-memory databases (the
    test database) fail at once with "database table is locked" instead of waiting,
    so sync threads of one process take turns. API calls stay concurrent.
    """
    if connection.vendor != "sqlite":
        yield
        return

    with _sqlite_lock:
        yield


class SessionWorkerPool:
    """Run `work(job)` for each submitted job on `concurrency` threads.

    `submit` blocks while `2 * concurrency` jobs are waiting, so memory stays bounded
    however many sessions the listing yields. Each worker runs in a copy of the
    caller's context (so `counting_api_calls` counts its calls) and closes its
    database connections when it stops. An exception from `work` is logged and the
    worker moves on; `work` is expected to record its own errors.

    With `concurrency=1` there are no threads: `submit` runs the job at once in the
    caller's thread, which suits a single-threaded SQLite test database.
    """

    def __init__(self, *, concurrency: int, work: Callable[[Any], None]) -> None:
        self._work = work
        self._inline = concurrency == 1
        if self._inline:
            return

        self._queue: queue.Queue = queue.Queue(maxsize=2 * concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sync")
        self._futures = [
            self._executor.submit(contextvars.copy_context().run, self._worker_loop)
            for _ in range(concurrency)
        ]

    def __enter__(self) -> "SessionWorkerPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def submit(self, job: Any) -> None:
        if self._inline:
            self._run(job)
        else:
            self._queue.put(job)

    def close(self) -> None:
        """Let the workers finish every submitted job, then stop them."""
        if self._inline:
            return

        for _ in self._futures:
            self._queue.put(_STOP)
        wait(self._futures)
        self._executor.shutdown()

    def _worker_loop(self) -> None:
        try:
            while True:
                job = self._queue.get()
                if job is _STOP:
                    return
                self._run(job)
        finally:
            connections.close_all()

    def _run(self, job: Any) -> None:
        try:
            self._work(job)
        except Exception:
            logger.exception("Sync worker failed on a job")
