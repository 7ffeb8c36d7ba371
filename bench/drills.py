"""Fault drills against a live stack: `python -m bench.drills [--threads N]`.

Each drill syncs an emulator into PostgreSQL, starts real Celery workers and runs a
bulk archive job of N threads while something breaks:

* kill-worker: SIGKILL to a worker's whole process group mid job, then a new worker;
* restart-redis: the broker and limiter's Redis killed mid job and started again on
  the same port (a throwaway redis-server started here, never the machine's own);
* api-faults: the emulator answers 10% of requests with 5xx (5% 500, 5% 529), 5%
  with 429 and drops 2% of connections, during the sync and the job.

After each drill every thread's snapshot, every item's state and the emulator's own
state must agree, no item may be counted twice, and no thread may get an archive
call after it was archived. Prints PASS or FAIL with counts; exits 1 on any FAIL.

Beat does not run here, so the drill calls the archive reconciler every few seconds
as beat would every minute, with ARCHIVE_STUCK_AFTER_SECONDS and the broker's
visibility timeout lowered so that recovery fits in a drill.
"""

import argparse
import json
import math
import os
import re
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import django

from bench.report import section_write
from bench.stack import (
    PROJECT_ROOT,
    RedisServer,
    database_drop,
    database_recreate,
    database_url_for,
    django_env,
    machine_facts,
)

DRILL_NAMES = ("kill-worker", "restart-redis", "api-faults")
CHILDREN_PER_SESSION = 19
DRILL_SETTINGS = {
    "ANTHROPIC_RATE_LIMIT_PER_SECOND": 40,
    "ANTHROPIC_RATE_LIMIT_BURST": 10,
    "ARCHIVE_GRACE_SECONDS": 0,
    "ARCHIVE_STUCK_AFTER_SECONDS": 15,
    "CELERY_VISIBILITY_TIMEOUT_SECONDS": 20,
    "ANTHROPIC_READ_TIMEOUT_SECONDS": 10,
    "LOG_LEVEL": "ERROR",
}
WORKER_ENV = {"LOG_LEVEL": "INFO"}
WORKER_CONCURRENCY = 4
# Share of the job done when the drill breaks something.
DISRUPT_AT = 0.25
RECONCILE_EVERY_SECONDS = 5.0
REDIS_DOWN_SECONDS = 2.0
SYNC_MAX_RUNS = 3
FAULTS = {"fault_500": 0.05, "fault_529": 0.05, "fault_drop": 0.02}
FAULT_429_SHARE = 0.05


@dataclass
class DrillResult:
    name: str
    passed: bool = False
    threads: int = 0
    archived: int = 0
    failed: int = 0
    skipped: int = 0
    attempts: int = 0
    archive_calls: int = 0
    archive_changes: int = 0
    sync_runs: int = 0
    seconds: float = 0.0
    events: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            "%s %-13s %d threads: %d archived, %d failed, %d skipped; %d attempts, %d archive calls, "
            "%d state changes; %d sync runs; %.0f s%s"
            % (
                "PASS" if self.passed else "FAIL",
                self.name,
                self.threads,
                self.archived,
                self.failed,
                self.skipped,
                self.attempts,
                self.archive_calls,
                self.archive_changes,
                self.sync_runs,
                self.seconds,
                "".join("\n    " + event for event in self.events),
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drills", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=300, help="threads archived per drill (default 300)")
    parser.add_argument(
        "--only", action="append", choices=DRILL_NAMES, help="run this drill; repeat for several"
    )
    parser.add_argument("--database", default="bench_drills", help="PostgreSQL database created and dropped")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON to this file")
    parser.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / "docs" / "benchmarks.md",
        help="Markdown file whose drills section is rewritten",
    )
    parser.add_argument("--no-write", action="store_true", help="print the results, do not write --out")
    args = parser.parse_args()
    # SIGTERM (a CI time limit, Ctrl-C's cousin) runs the `finally` blocks below and in
    # each drill, which stop the emulator, workers and redis-server this run started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    started = time.monotonic()
    database_url = database_url_for(name=args.database)
    redis = RedisServer().start()
    try:
        database_recreate(database_url)
        os.environ.update(django_env(database_url=database_url, redis_url=redis.url, **DRILL_SETTINGS))
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        results = [drill_run(name, threads=args.threads, redis=redis) for name in args.only or DRILL_NAMES]
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(database_url)
        redis.stop()

    for result in results:
        print(result.line())
        for problem in result.problems[:20]:
            print("    problem: %s" % problem)
    if args.json_out:
        args.json_out.write_text(json.dumps([asdict(result) for result in results], indent=2))
    if not args.no_write:
        markdown = report_markdown(
            results=results, argv=sys.argv[1:], minutes=(time.monotonic() - started) / 60
        )
        section_write(path=args.out, name="drills", writer="python -m bench.drills", markdown=markdown)
        print("Wrote %s" % args.out)
    return 0 if all(result.passed for result in results) else 1


def report_markdown(*, results: list["DrillResult"], argv: list[str], minutes: float) -> str:
    """Return the drills section of docs/benchmarks.md: the command, the machine and each result line."""
    facts = machine_facts()
    command = "python -m bench.drills" + "".join(" " + shlex.quote(arg) for arg in argv)
    lines = [
        "## Fault drill run",
        "",
        "Written by `%s` (`make drills`) on %s; the run took %.0f minutes."
        % (command, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), minutes),
        "",
        "Machine: %s cores, %s memory, %s; Python %s, PostgreSQL %s. Load average (1, 5, 15 min) "
        "when the run ended: %.2f, %.2f, %.2f."
        % (
            facts["cores"],
            facts["memory"],
            facts["cpu"],
            facts["python"],
            facts["postgresql"],
            *os.getloadavg(),
        ),
        "",
        "```text",
    ]
    for result in results:
        lines.append(result.line())
        lines.extend("    problem: %s" % problem for problem in result.problems[:20])
    lines += ["```", ""]
    return "\n".join(lines)


def drill_run(name: str, *, threads: int, redis: RedisServer) -> DrillResult:
    """Run one drill on an emptied database and a fresh emulator, and check the outcome."""
    from django.core.management import call_command

    from bench.live import archivable_threads_prepare, emulator_start, worker_start
    from tests.support.services import redis_clear_project_keys

    call_command("flush", interactive=False, verbosity=0)
    redis_clear_project_keys(redis.url)
    result = DrillResult(name=name, threads=threads)
    started = time.monotonic()
    sessions = math.ceil(threads * 1.6 / CHILDREN_PER_SESSION) + 5
    emulator = emulator_start("--sessions", str(sessions), "--children", "19:19", "--seed", "3")
    workers = []
    injector = None
    try:
        thread_ids = archivable_threads_prepare(emulator, count=threads)
        if name == "api-faults":
            emulator.configure(**FAULTS)
            injector = Forced429(emulator, share=FAULT_429_SHARE).start()
        result.sync_runs = _sync_until_clean(result)
        workers.append(
            worker_start(
                emulator=emulator, concurrency=WORKER_CONCURRENCY, name="drill-0", extra_env=WORKER_ENV
            )
        )

        job_id = _job_run(
            name, thread_ids=thread_ids, emulator=emulator, workers=workers, redis=redis, result=result
        )
        if injector is not None:
            injector.stop()
            result.events.append("429s forced: %d" % injector.forced)
        emulator.configure(fault_500=0, fault_529=0, fault_drop=0)
        _check(result, job_id=job_id, emulator=emulator, thread_ids=thread_ids, faults=name == "api-faults")
    except Exception as exc:  # noqa: BLE001 - a crashed drill is a failed drill, reported with the rest
        result.problems.append("drill crashed: %s: %s" % (type(exc).__name__, exc))
    finally:
        if injector is not None:
            injector.stop()
        for worker in workers:
            worker.stop()
        emulator.stop()

    result.seconds = time.monotonic() - started
    result.passed = not result.problems
    return result


def _sync_until_clean(result: DrillResult) -> int:
    """Run full syncs until one ends without errors; at most SYNC_MAX_RUNS."""
    from threads.services.sync import sync_full

    for run_number in range(1, SYNC_MAX_RUNS + 1):
        run = sync_full()
        if not run.failed and run.status == "succeeded":
            return run_number
        result.events.append("sync run %d ended %s with %d failed" % (run_number, run.status, run.failed))
    result.problems.append("sync still had errors after %d runs" % SYNC_MAX_RUNS)
    return SYNC_MAX_RUNS


def _job_run(name, *, thread_ids, emulator, workers, redis: RedisServer, result: DrillResult) -> int:
    from bench.live import job_wait, worker_start
    from threads.services.archive_jobs import (
        archive_job_create,
        archive_jobs_reconcile,
        archive_selection_build,
    )

    selection = archive_selection_build(scope="selected", thread_ids=thread_ids)
    job = archive_job_create(selection=selection, interrupt_running=False)
    state = {"disrupted": name == "api-faults", "reconciled_at": time.monotonic()}

    def on_poll(progress) -> None:
        _workers_check_alive(workers)
        if not state["disrupted"] and progress.done >= progress.total * DISRUPT_AT:
            state["disrupted"] = True
            if name == "kill-worker":
                workers[-1].kill()
                result.events.append(
                    "worker killed (SIGKILL to its process group) at %d of %d done"
                    % (progress.done, progress.total)
                )
                workers.append(
                    worker_start(
                        emulator=emulator,
                        concurrency=WORKER_CONCURRENCY,
                        name="drill-1",
                        extra_env=WORKER_ENV,
                    )
                )
            else:
                redis.kill()
                time.sleep(REDIS_DOWN_SECONDS)
                redis.start()
                result.events.append(
                    "redis-server killed and restarted at %d of %d done" % (progress.done, progress.total)
                )
        if time.monotonic() - state["reconciled_at"] >= RECONCILE_EVERY_SECONDS:
            state["reconciled_at"] = time.monotonic()
            try:
                report = archive_jobs_reconcile()
            except Exception as exc:  # noqa: BLE001 - Redis may be down; beat would try again too
                result.events.append("reconciler failed: %s" % type(exc).__name__)
            else:
                if any(vars(report).values()):
                    result.events.append("reconciler: %s" % vars(report))

    job_wait(job_id=job.pk, timeout=240 + len(thread_ids) / 5, on_poll=on_poll)
    return job.pk


class WorkerExited(RuntimeError):
    """A worker the drill did not stop has exited, so nothing consumes the queue."""


def _workers_check_alive(workers) -> None:
    """Raise WorkerExited, with its last warnings and errors, when the newest worker has exited.

    Earlier workers may have been killed on purpose; the drill always runs the newest one.
    """
    worker = workers[-1]
    exit_code = worker.process.poll()
    if exit_code is None:
        return
    # A record starts with its date and level; traceback lines do not.
    records = [
        line
        for line in worker.log_text().splitlines()
        if re.match(r"\d{4}-\d\d-\d\d [\d:,]+ (WARNING|ERROR|CRITICAL) ", line)
    ]
    raise WorkerExited(
        "worker exited with code %s during the job; its last warnings and errors (%s):\n%s"
        % (exit_code, worker.log_path, "\n".join(record[:300] for record in records[-5:]))
    )


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _check(result: DrillResult, *, job_id: int, emulator, thread_ids: list[str], faults: bool) -> None:
    """Compare items, snapshots and the emulator's state and log; add every disagreement to problems."""
    from django.db.models import Count

    from threads.models import (
        ArchiveAuditEntry,
        ArchiveItem,
        ArchiveItemState,
        ArchiveJob,
        ArchiveOutcome,
        Thread,
    )

    problems = result.problems
    job = ArchiveJob.objects.get(pk=job_id)
    items = {item.thread_id: item for item in ArchiveItem.objects.filter(job_id=job_id)}
    upstream = {row["id"]: row for row in emulator.state_threads()}
    snapshots = {row[0]: row[1:] for row in Thread.objects.values_list("id", "status", "archived_at")}
    log = emulator.log()
    calls, changes = log["thread_archive_calls"], log["thread_archive_changes"]

    result.archived = sum(item.state == ArchiveItemState.ARCHIVED for item in items.values())
    result.failed = sum(item.state == ArchiveItemState.FAILED for item in items.values())
    result.skipped = sum(item.state == ArchiveItemState.SKIPPED for item in items.values())
    result.attempts = sum(item.attempts for item in items.values())
    result.archive_calls = sum(calls.values())
    result.archive_changes = sum(changes.values())

    if job.status != "finished":
        problems.append("job %d is %s, expected finished" % (job_id, job.status))
    if len(items) != len(thread_ids):
        problems.append("job has %d items for %d threads" % (len(items), len(thread_ids)))
    if result.archived != len(thread_ids):
        problems.append("%d of %d items archived" % (result.archived, len(thread_ids)))
    for item in items.values():
        if item.state == ArchiveItemState.FAILED:
            problems.append(
                "item of thread %s failed after %d attempts: %s"
                % (item.thread_id, item.attempts, item.reason)
            )
    if (job.archived_count, job.failed_count, job.skipped_count) != (
        result.archived,
        result.failed,
        result.skipped,
    ):
        problems.append(
            "job counts %s differ from item states %s"
            % (
                (job.archived_count, job.failed_count, job.skipped_count),
                (result.archived, result.failed, result.skipped),
            )
        )

    audits = ArchiveAuditEntry.objects.filter(job_id=job_id, outcome=ArchiveOutcome.ARCHIVED)
    for row in audits.values("thread_id").annotate(count=Count("id")).filter(count__gt=1):
        problems.append("thread %s has %d archived audit entries" % (row["thread_id"], row["count"]))

    for thread_id, row in upstream.items():
        snapshot = snapshots.get(thread_id)
        if snapshot is None:
            problems.append("thread %s has no snapshot" % thread_id)
            continue
        status, archived_at = snapshot
        upstream_archived = _parse_time(row["archived_at"])
        if status != row["status"]:
            problems.append("thread %s: snapshot status %s, emulator %s" % (thread_id, status, row["status"]))
        if (archived_at is None) != (upstream_archived is None) or (
            archived_at and abs((archived_at - upstream_archived).total_seconds()) > 0.001
        ):
            problems.append(
                "thread %s: snapshot archived_at %s, emulator %s"
                % (thread_id, archived_at, row["archived_at"])
            )
        item = items.get(thread_id)
        if item is not None and (item.state == ArchiveItemState.ARCHIVED) != (upstream_archived is not None):
            problems.append(
                "thread %s: item %s, emulator archived_at %s" % (thread_id, item.state, row["archived_at"])
            )

    for thread_id, count in changes.items():
        if count > 1:
            problems.append("thread %s changed by %d archive calls" % (thread_id, count))
    for thread_id, count in calls.items():
        item = items.get(thread_id)
        if item is None:
            problems.append("thread %s got %d archive calls but is in no item" % (thread_id, count))
        elif count > item.attempts:
            problems.append(
                "thread %s got %d archive calls in %d attempts" % (thread_id, count, item.attempts)
            )
        elif not faults and count != changes.get(thread_id, 0):
            # Without injected faults every call reaches the store, so a call that
            # changed nothing was sent for a thread already archived.
            problems.append(
                "thread %s got %d archive calls for %d changes"
                % (thread_id, count, changes.get(thread_id, 0))
            )


class Forced429:
    """Force a 429 on `share` of the emulator's API requests, since it has no random 429 rate.

    Every 0.25 s it reads the request total from the control log and queues enough
    forced 429s to keep up; a 429 goes to whichever request comes next.
    """

    def __init__(self, emulator, *, share: float, max_seconds: float = 1800) -> None:
        self.emulator = emulator
        self.share = share
        self.max_seconds = max_seconds
        self.forced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forced-429", daemon=True)

    def start(self) -> "Forced429":
        self._base = self.emulator.log()["total"]
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.wait(0.25) and time.monotonic() < deadline:
            try:
                total = self.emulator.log()["total"]
                owed = int((total - self._base) * self.share) - self.forced
                if owed > 0:
                    self.emulator.force(429, owed)
                    self.forced += owed
            except Exception:  # noqa: BLE001 - a missed round only lowers the 429 share a little
                continue


if __name__ == "__main__":
    sys.exit(main())
