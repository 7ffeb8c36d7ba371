"""Sync the session and thread snapshots from the API now."""

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from threads.models import SyncRunStatus
from threads.services.sync import (
    SyncAlreadyRunning,
    session_refresh,
    sync_full,
    sync_incremental,
)


class Command(BaseCommand):
    help = (
        "Sync session and thread snapshots from the API: an incremental sync by default, "
        "a full sync with --full, or one session with --session. Exits 1 when the run fails."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group()
        target.add_argument(
            "--full",
            action="store_true",
            help="List every session's threads, and mark sessions the API no longer lists gone.",
        )
        target.add_argument(
            "--session",
            metavar="ID",
            help="Refresh only this session (sesn_...) and its threads.",
        )

    def handle(self, *args, full: bool, session: str | None, **options):
        started = time.monotonic()

        try:
            if session:
                run = session_refresh(session_id=session)
            else:
                run = self._sync_with_progress(full=full)
        except SyncAlreadyRunning as exc:
            raise CommandError(str(exc)) from exc

        self._write_summary(run, seconds=time.monotonic() - started)
        if run.status == SyncRunStatus.FAILED:
            raise CommandError("Sync run %s failed: %s" % (run.pk, _first_error(run)))

    def _sync_with_progress(self, *, full: bool):
        service = sync_full if full else sync_incremental
        # The bar writes to the raw stream: OutputWrapper would end each redraw with a newline.
        with tqdm(desc="sessions", unit="session", file=self.stderr._out) as bar:

            def progress(done: int, seen: int) -> None:
                # Workers report in any order; the bar only moves forward.
                bar.total = seen
                bar.n = max(bar.n, done)
                bar.refresh()

            return service(progress=progress)

    def _write_summary(self, run, *, seconds: float) -> None:
        self.stdout.write(
            "Sync run %s (%s): %s in %.1f s, %d API calls. Records: %d seen, %d created, "
            "%d updated, %d unchanged, %d failed."
            % (
                run.pk,
                run.kind,
                run.status,
                seconds,
                run.api_calls,
                run.seen,
                run.created,
                run.updated,
                run.unchanged,
                run.failed,
            )
        )
        for entry in run.errors:
            self.stderr.write(
                "  %s %s: %s (request id %s)"
                % (
                    entry["target"] or "-",
                    entry["error"],
                    entry["message"],
                    entry["request_id"] or "-",
                )
            )


def _first_error(run) -> str:
    if not run.errors:
        return "no error was recorded"
    return "%s: %s" % (run.errors[0]["error"], run.errors[0]["message"])
