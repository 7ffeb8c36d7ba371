"""Run one benchmark stage in a process of its own and write its figures as JSON.

`python -m bench.stage {sync,archive,pages} --size N --out FILE`, with the Django
environment from `bench.stack.django_env`. Each stage runs in a fresh process so that
its peak resident memory (ru_maxrss) belongs to that stage alone.
"""

import argparse
import json
import math
import re
import statistics
import time
from io import StringIO
from pathlib import Path

import django

PAGE_REPEAT = 7
ARCHIVE_RATE_LIMIT = 100
CHILDREN_PER_SESSION = 19
SYNC_LATENCY_MS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("sync", "archive", "pages"))
    parser.add_argument("--size", type=int, action="append", required=True, help="threads; pages takes two")
    parser.add_argument("--out", type=Path, required=True, help="file the JSON figures are written to")
    parser.add_argument("--workers", type=int, default=1, help="archive: Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="archive: pool size of each worker")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="pages: keep the last size's rows loaded, and time rows already loaded when their count "
        "equals a size instead of loading them again",
    )
    args = parser.parse_args()

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.stage == "sync":
        figures = sync_stage(threads=args.size[0])
    elif args.stage == "archive":
        figures = archive_stage(threads=args.size[0], workers=args.workers, concurrency=args.concurrency)
    else:
        figures = pages_stage(sizes=args.size, keep=args.keep)
    args.out.write_text(json.dumps(figures, indent=2))


# ---------------------------------------------------------------------------
# Sync: the bench_sync command, run as is
# ---------------------------------------------------------------------------


def sync_stage(*, threads: int) -> dict:
    """Run `bench_sync` for `threads` threads (sessions of 1 primary and 19 children)."""
    from django.conf import settings
    from django.core.management import call_command

    sessions = max(1, math.ceil(threads / (CHILDREN_PER_SESSION + 1)))
    output = StringIO()
    call_command(
        "bench_sync",
        sessions=sessions,
        children=CHILDREN_PER_SESSION,
        latency_ms=SYNC_LATENCY_MS,
        change_percent=1.0,
        no_tracemalloc=True,
        stdout=output,
    )
    text = output.getvalue()
    full = text.split("\nFull sync", 1)[1].split("\nIncremental sync", 1)[0]
    seconds = float(_search(r"time ([\d.]+) s", full))
    ideal = float(_search(r"ideal ([\d.]+) s", full))
    return {
        "threads": sessions * (CHILDREN_PER_SESSION + 1),
        "sessions": sessions,
        "latency_ms": SYNC_LATENCY_MS,
        "concurrency": settings.SYNC_CONCURRENCY,
        "seconds": seconds,
        "ideal_seconds": ideal,
        "cpu_seconds": float(_search(r"process CPU ([\d.]+) s", full)),
        "api_calls": int(_search(r"API calls (\d+)", full)),
        "records_seen": int(_search(r"records: (\d+) seen", full)),
        # The peak that bench_sync reads after its syncs and before it deletes what
        # they wrote, so the clean-up's own memory is not counted.
        "maxrss_mib": float(re.findall(r"ru_maxrss ([\d.]+) MiB", text)[-1]),
        "command_output": text,
    }


def _search(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError("bench_sync output has no %r:\n%s" % (pattern, text))
    return match.group(1)


# ---------------------------------------------------------------------------
# Bulk archive: a real job, real workers, the emulator's rate limit
# ---------------------------------------------------------------------------


def archive_stage(*, threads: int, workers: int, concurrency: int) -> dict:
    """Archive `threads` idle child threads through a job while the emulator allows 100 requests/s."""
    from bench.live import archivable_threads_prepare, emulator_start, job_wait, workers_start
    from threads.models import ArchiveItem, ArchiveItemState, ArchiveJob
    from threads.services.archive_jobs import archive_job_create, archive_selection_build
    from threads.services.sync import sync_full

    # About 55% of generated children are archivable (seed 1: 947 of 1,710), because
    # the rest are archived or belong to archived sessions; 2.2 leaves a margin.
    sessions = math.ceil(threads * 2.2 / CHILDREN_PER_SESSION) + 5
    emulator = emulator_start(
        "--sessions",
        str(sessions),
        "--children",
        "%d:%d" % (CHILDREN_PER_SESSION, CHILDREN_PER_SESSION),
        "--rate-limit",
        str(ARCHIVE_RATE_LIMIT),
    )
    started_workers = []
    try:
        thread_ids = archivable_threads_prepare(emulator, count=threads)
        sync_run = sync_full()
        started_workers = workers_start(emulator=emulator, count=workers, concurrency=concurrency)
        emulator.reset_log()

        selection = archive_selection_build(scope="selected", thread_ids=thread_ids)
        job = archive_job_create(selection=selection, interrupt_running=False)
        job_wait(job_id=job.pk, timeout=threads / ARCHIVE_RATE_LIMIT * 4 + 120)
        log = emulator.log()
    finally:
        for worker in started_workers:
            worker.stop()
        emulator.stop()

    job = ArchiveJob.objects.get(pk=job.pk)
    items = ArchiveItem.objects.filter(job_id=job.pk)
    archived = items.filter(state=ArchiveItemState.ARCHIVED)
    first_claim = min(items.values_list("claimed_at", flat=True))
    last_finish = max(items.values_list("finished_at", flat=True))
    span = (last_finish - first_claim).total_seconds()
    return {
        "threads": threads,
        "sync_status": sync_run.status,
        "job_status": job.status,
        "archived": archived.count(),
        "failed": items.filter(state=ArchiveItemState.FAILED).count(),
        "skipped": items.filter(state=ArchiveItemState.SKIPPED).count(),
        "attempts": sum(items.values_list("attempts", flat=True)),
        "seconds": span,
        "per_second": archived.count() / span if span else 0.0,
        "rate_limit": ARCHIVE_RATE_LIMIT,
        "workers": workers,
        "concurrency": concurrency,
        "emulator_requests": log["total"],
        "emulator_statuses": log["statuses"],
        "archive_calls": sum(log["thread_archive_calls"].values()),
    }


# ---------------------------------------------------------------------------
# Pages: server time through the Django test client
# ---------------------------------------------------------------------------


def pages_stage(*, sizes: list[int], keep: bool = False) -> dict:
    """Load each size of synthetic snapshots in turn and time every page on it.

    With `keep`, a size whose thread count is already loaded is timed as it is
    (`load_seconds` is None), and the last size's rows stay in the database.
    """
    from bench.loader import snapshots_load
    from threads.management.commands.bench_usage import bench_rows_delete, database_analyze
    from threads.models import Thread

    results: dict[str, dict] = {}
    for size in sizes:
        load_seconds = None
        if not keep or Thread.objects.count() != size:
            bench_rows_delete()
            started = time.perf_counter()
            snapshots_load(threads=size)
            load_seconds = time.perf_counter() - started
            database_analyze()
        results[str(size)] = {"load_seconds": load_seconds, "pages": pages_time()}
        print("pages: %d threads timed (load %s s)" % (size, load_seconds), flush=True)
    if not keep:
        bench_rows_delete()
    return results


def _page_urls() -> list[tuple[str, str]]:
    from django.urls import reverse

    from threads import selectors
    from threads.models import Session, Thread
    from threads.pagination import NEXT, cursor_encode, sort_parse

    total = Thread.objects.count()
    middle = Thread.objects.order_by("-created_at", "-id").values("id", "created_at")[total // 2]
    sort = sort_parse(value="", keys=selectors.THREAD_SORT_KEYS, default=selectors.DEFAULT_SORT)
    cursor = cursor_encode(sort=sort, direction=NEXT, value=middle["created_at"], row_id=middle["id"])
    session = Session.objects.order_by("id")[Session.objects.count() // 2]
    thread = Thread.objects.filter(session_id=session.pk, is_primary=False).order_by("id").first()

    return [
        ("sessions list", reverse("threads:session-list")),
        ("threads list, first page", reverse("threads:thread-list")),
        ("threads list, middle page (cursor)", reverse("threads:thread-list") + "?cursor=" + cursor),
        (
            "threads list, filtered",
            reverse("threads:thread-list") + "?status=idle&model=claude-sonnet-4-5&archived=no",
        ),
        ("session detail", reverse("threads:session-detail", args=[session.pk])),
        ("thread detail", reverse("threads:thread-detail", args=[session.pk, thread.pk])),
        ("usage page", reverse("threads:usage")),
    ]


class _QueryCounter:
    """Count the SQL statements run while installed with `connection.execute_wrapper`."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def pages_time() -> dict[str, dict]:
    """Return, per page, the median server time in ms over PAGE_REPEAT runs and its query count."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="bench-viewer")
    client = Client()
    client.force_login(user)

    timings = {}
    for name, url in _page_urls():
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError("GET %s returned %d, expected 200." % (url, response.status_code))
        queries = _QueryCounter()
        with connection.execute_wrapper(queries):
            client.get(url)
        runs = []
        for _ in range(PAGE_REPEAT):
            started = time.perf_counter()
            client.get(url)
            runs.append((time.perf_counter() - started) * 1000)
        timings[name] = {"median_ms": statistics.median(runs), "queries": queries.count, "url": url}
    return timings


if __name__ == "__main__":
    main()
