"""Archive threads from the command line: the pages' filters, a dry run, then a job.

The command creates the job and follows it; a Celery worker does the archiving.
"""

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import ngettext
from tqdm import tqdm

from threads.filters import ARCHIVED_CHOICES, KIND_CHOICES
from threads.models import AgentType, ArchiveJob, ArchiveJobScope, ArchiveJobStatus, SnapshotStatus
from threads.services.archive_jobs import (
    ArchiveDryRun,
    ArchiveSelection,
    ArchiveSelectionError,
    archive_dry_run,
    archive_job_cancel,
    archive_job_create,
    archive_job_progress,
    archive_selection_build,
)

POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = (
        "Archive the threads that a filter or a list of thread ids selects. Prints the dry run, "
        "asks for confirmation, creates an archive job and follows it until it finishes. "
        "A Celery worker must be running to do the archiving."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--status",
            action="append",
            default=[],
            choices=SnapshotStatus.values,
            help="thread status to select; repeat for several",
        )
        parser.add_argument("--agent", default="", help="agent id or exact agent name")
        parser.add_argument(
            "--agent-type",
            default="",
            choices=AgentType.values,
            help="agent variant; advisor threads have no agent id or name, so only this selects them",
        )
        parser.add_argument("--model", default="", help="model id, for example claude-sonnet-4-5")
        parser.add_argument(
            "--created-from", default="", help="created on or after this date (YYYY-MM-DD, UTC)"
        )
        parser.add_argument(
            "--created-to", default="", help="created on or before this date (YYYY-MM-DD, UTC)"
        )
        parser.add_argument(
            "--archived",
            default="",
            choices=[value for value, _label in ARCHIVED_CHOICES],
            help="archived threads to include (default: no, which leaves them out)",
        )
        parser.add_argument(
            "--q", default="", help="free text matched against ids, names, titles and metadata"
        )
        parser.add_argument("--kind", default="", choices=[value for value, _label in KIND_CHOICES])
        parser.add_argument("--session", default="", help="only the threads of this session id")

        parser.add_argument(
            "--thread-id",
            action="append",
            default=[],
            dest="thread_ids",
            help="archive this thread id; repeat for several. Filters are then ignored",
        )

        parser.add_argument("--dry-run", action="store_true", help="print what would happen and stop")
        parser.add_argument("--user", default="", help="username recorded as the job's creator in the audit")
        parser.add_argument(
            "--interrupt-running",
            action="store_true",
            help="interrupt running threads and archive them once idle, instead of skipping them",
        )

        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument(
            "--wait",
            action="store_true",
            default=True,
            help="follow the job with a progress bar until it finishes (the default)",
        )
        parser.add_argument("--no-wait", action="store_false", dest="wait", help="create the job and exit")

    def handle(self, *args, **options):
        selection = self._selection(options)
        user = self._user(options["user"])
        dry_run = archive_dry_run(selection=selection, interrupt_running=options["interrupt_running"])
        self._dry_run_print(dry_run)

        if options["dry_run"]:
            return
        if dry_run.planned_count == 0:
            self.stdout.write("Nothing to archive.")
            return
        if not options["yes"] and not self._confirmed(dry_run):
            raise CommandError("Not confirmed; nothing was archived.")

        job = archive_job_create(
            selection=selection, interrupt_running=options["interrupt_running"], user=user
        )
        self.stdout.write(
            "Archive job #%d confirmed; it starts at %s."
            % (job.pk, job.grace_until.isoformat(timespec="seconds"))
        )
        if options["wait"]:
            self._follow(job)

    def _selection(self, options) -> ArchiveSelection:
        try:
            if options["thread_ids"]:
                return archive_selection_build(
                    scope=ArchiveJobScope.SELECTED, thread_ids=options["thread_ids"]
                )
            return archive_selection_build(scope=ArchiveJobScope.FILTER, filter_query=_filter_query(options))
        except ArchiveSelectionError as exc:
            raise CommandError(str(exc)) from exc

    def _user(self, username: str):
        if not username:
            return None
        try:
            return get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist as exc:
            raise CommandError("No user named %r; pass an existing username to --user." % username) from exc

    def _dry_run_print(self, dry_run: ArchiveDryRun) -> None:
        selected = dry_run.selected_count
        self.stdout.write(ngettext("Selected: %d thread", "Selected: %d threads", selected) % selected)
        for _plan, label, count in dry_run.planned:
            self.stdout.write("  %6d  %s" % (count, label))
        for _plan, label, count in dry_run.skipped:
            self.stdout.write("  %6d  skipped: %s" % (count, label))
        if dry_run.unknown_ids:
            self.stdout.write("  %6d  ignored: no stored snapshot" % len(dry_run.unknown_ids))

        costs = ", ".join(
            "%s %.2f" % (currency, amount / 100) for currency, amount in dry_run.list_cost_totals.items()
        )
        self.stdout.write(
            ngettext(
                "To archive: %d thread; list cost %s; %d tokens",
                "To archive: %d threads; list cost %s; %d tokens",
                dry_run.planned_count,
            )
            % (
                dry_run.planned_count,
                costs or "not reported",
                dry_run.total_tokens,
            )
        )
        for row in dry_run.by_agent:
            self.stdout.write(
                "  %-40s %6d to archive %6d skipped" % (row["agent"][:40], row["planned"], row["skipped"])
            )

    def _confirmed(self, dry_run: ArchiveDryRun) -> bool:
        planned = dry_run.planned_count
        question = ngettext("Archive %d thread?", "Archive %d threads?", planned) % planned
        answer = input(question + " This cannot be undone. [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    def _follow(self, job: ArchiveJob) -> None:
        progress = archive_job_progress(job_id=job.pk)
        bar = tqdm(total=progress.total, unit="thread", desc="archive job #%d" % job.pk)
        try:
            while True:
                job.refresh_from_db()
                progress = archive_job_progress(job_id=job.pk)
                bar.n = progress.done
                bar.set_postfix(archived=progress.archived, skipped=progress.skipped, failed=progress.failed)
                if job.is_finished:
                    break
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self._interrupted(job)
            return
        finally:
            bar.close()

        self.stdout.write(
            "Archive job #%d %s: %d archived, %d skipped, %d failed."
            % (job.pk, job.status, progress.archived, progress.skipped, progress.failed)
        )

    def _interrupted(self, job: ArchiveJob) -> None:
        job.refresh_from_db()
        if job.status == ArchiveJobStatus.SCHEDULED and archive_job_cancel(job_id=job.pk):
            self.stdout.write("Archive job #%d cancelled during its grace period; nothing was sent." % job.pk)
        else:
            self.stdout.write("Stopped following archive job #%d; it keeps running in the worker." % job.pk)


def _filter_query(options) -> dict[str, list[str] | str]:
    """Return the options as the threads list's query parameters."""
    query: dict[str, list[str] | str] = {}
    if options["status"]:
        query["status"] = options["status"]
    names = ("agent", "agent_type", "model", "created_from", "created_to", "archived", "q", "kind", "session")
    for name in names:
        if options[name]:
            query[name] = options[name]
    return query
