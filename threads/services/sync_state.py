"""Counts and errors of one sync run, shared by its worker threads, and how a run ends."""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anthropic
from django.conf import settings
from django.utils import timezone

from threads.models import SyncRun, SyncRunStatus
from threads.rate_limit import RateLimitWaitTimeout
from threads.services.snapshot_parse import record_excerpt
from threads.services.snapshot_write import WriteCounts
from threads.services.sync_pages import MalformedResponse

logger = logging.getLogger(__name__)

# Errors that end one API call of a run without ending the run. anthropic.APIError
# covers status errors left after the SDK's retries, timeouts and connection errors.
SYNC_API_ERRORS = (anthropic.APIError, RateLimitWaitTimeout, MalformedResponse)
MAX_ERROR_ENTRIES = 200
MAX_ERROR_MESSAGE_LENGTH = 500


class SyncState:
    """Thread-safe counts, errors and progress of one run."""

    def __init__(self, *, run: SyncRun, progress: Callable[[int, int], None] | None = None):
        self.run = run
        self.progress = progress
        self.started = time.monotonic()
        self.listing_failed = False
        self.seen = 0
        self.failed = 0
        self.gone = 0
        self.counts = WriteCounts()
        self.errors: list[dict[str, str]] = []
        self.errors_dropped = 0
        self.sessions_listed = 0
        self.sessions_done = 0
        self._lock = threading.Lock()

    def add_counts(self, counts: WriteCounts, *, seen: int, gone: int = 0) -> None:
        """Add written and unchanged records; rows marked gone count as updated."""
        with self._lock:
            self.counts.add(counts)
            self.counts.updated += gone
            self.gone += gone
            self.seen += seen

    def add_unstorable(self, *, record: Any, parse_error: str) -> None:
        """Count a record without a usable id as failed and keep an excerpt of it."""
        with self._lock:
            self.seen += 1
            self.failed += 1
            self._append_error(
                {
                    "target": "",
                    "error": "UnstorableRecord",
                    "message": _truncate("%s: %s" % (parse_error, record_excerpt(record))),
                    "request_id": "",
                }
            )
        logger.warning(
            "Skipped a record without a usable id",
            extra={"sync_run_id": self.run.pk, "parse_error": parse_error},
        )

    def add_error(self, *, target: str, exc: BaseException) -> None:
        """Record an API error on `target` (a session id, a thread id or "sessions")."""
        entry = {
            "target": target,
            "error": type(exc).__name__,
            "message": _truncate(_redact(str(exc))),
            "request_id": getattr(exc, "request_id", None) or "",
        }
        with self._lock:
            if target != "sessions":
                self.seen += 1
                self.failed += 1
            self._append_error(entry)
        logger.warning(
            "Sync API call failed: %s",
            entry["error"],
            extra={
                "sync_run_id": self.run.pk,
                "target_id": target,
                "request_id": entry["request_id"],
                "error_message": entry["message"],
            },
        )

    def add_sessions_seen(self, *, listed: int, done: int) -> None:
        with self._lock:
            self.sessions_listed += listed
            self.sessions_done += done
        self._report_progress()

    def add_session_done(self) -> None:
        with self._lock:
            self.sessions_done += 1
        self._report_progress()

    def _append_error(self, entry: dict[str, str]) -> None:
        if len(self.errors) < MAX_ERROR_ENTRIES:
            self.errors.append(entry)
        else:
            self.errors_dropped += 1

    def _report_progress(self) -> None:
        if self.progress is not None:
            self.progress(self.sessions_done, self.sessions_listed)


def sync_run_finish(*, state: SyncState, api_calls: int) -> SyncRun:
    """Store the run's counts, errors and status, log its end, and return it."""
    run = state.run
    run.seen = state.seen
    run.created = state.counts.created
    run.updated = state.counts.updated
    run.unchanged = state.counts.unchanged
    run.failed = state.failed
    run.api_calls = api_calls
    run.errors = _errors_with_overflow(state)
    run.status = _final_status(state)
    run.finished_at = timezone.now()
    run.save()

    logger.info(
        "Sync run finished",
        extra={
            "sync_run_id": run.pk,
            "kind": run.kind,
            "status": run.status,
            "records_seen": run.seen,
            "records_created": run.created,
            "records_updated": run.updated,
            "records_unchanged": run.unchanged,
            "records_failed": run.failed,
            "records_gone": state.gone,
            "error_count": len(state.errors) + state.errors_dropped,
            "api_calls": run.api_calls,
            "duration_s": round(time.monotonic() - state.started, 3),
        },
    )
    return run


def _final_status(state: SyncState) -> SyncRunStatus:
    if state.listing_failed:
        return SyncRunStatus.FAILED
    if state.errors or state.failed:
        return SyncRunStatus.PARTIAL
    return SyncRunStatus.SUCCEEDED


def _errors_with_overflow(state: SyncState) -> list[dict[str, str]]:
    if not state.errors_dropped:
        return list(state.errors)

    # The note takes the last of the MAX_ERROR_ENTRIES places.
    errors = state.errors[: MAX_ERROR_ENTRIES - 1]
    dropped = state.errors_dropped + len(state.errors) - len(errors)
    errors.append(
        {
            "target": "",
            "error": "ErrorsTruncated",
            "message": "%d more errors were not recorded; the log has each of them." % dropped,
            "request_id": "",
        }
    )
    return errors


def _redact(text: str) -> str:
    key = settings.ANTHROPIC_API_KEY
    if key and len(key) >= 8:
        return text.replace(key, "[redacted]")
    return text


def _truncate(text: str) -> str:
    if len(text) <= MAX_ERROR_MESSAGE_LENGTH:
        return text
    return text[: MAX_ERROR_MESSAGE_LENGTH - 3] + "..."
