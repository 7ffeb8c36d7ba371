"""Time a full and an incremental sync against a large emulator.

Starts `python -m emulator` on 127.0.0.1 with --sessions sessions of 1 primary plus
--children child threads each and --latency-ms added to every response, points the
API client at it, runs a full sync into the configured database, touches
--change-percent of the sessions through the emulator's control endpoint, and runs
an incremental sync. For each run it prints throughput, API calls against the
minimum, the ratio to a latency-bound ideal, and peak memory.

Run it on a database of its own: it stops with an error when the database already
contains snapshots, and deletes the snapshots it wrote when it ends.
"""

import json
import math
import resource
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from threads.client import reset_api_clients
from threads.models import (
    Session,
    SyncRun,
    Thread,
    UsageDailyRollup,
    UsageRollupDirtyDay,
    UsageSessionDayRollup,
)
from threads.rate_limit import get_rate_limiter, reset_rate_limiter
from threads.services.sync import SESSIONS_PAGE_SIZE, sync_full, sync_incremental

PROJECT_ROOT = Path(__file__).resolve().parents[3]
EMULATOR_API_KEY = "sk-ant-emulator"
STARTUP_TIMEOUT_SECONDS = 300
ACTIVE_STATUSES = {"running", "rescheduling"}


@dataclass
class Measurement:
    seconds: float
    # User plus system CPU time of this process (the sync's threads, not the emulator).
    cpu_seconds: float
    tracemalloc_peak_bytes: int | None
    maxrss_kib: int


class Command(BaseCommand):
    help = (
        "Time a full and an incremental sync against an emulator started for the purpose. "
        "Set ANTHROPIC_RATE_LIMIT_PER_SECOND high, or the limiter sets the pace."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=1000, help="Sessions to generate.")
        parser.add_argument(
            "--children", type=int, default=19, help="Child threads per session (exact count)."
        )
        parser.add_argument(
            "--latency-ms", type=int, default=20, help="Delay the emulator adds per response, ms."
        )
        parser.add_argument(
            "--change-percent",
            type=float,
            default=1.0,
            help="Percentage of sessions touched before the incremental sync.",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            help="Sessions synced at once; defaults to the SYNC_CONCURRENCY setting.",
        )
        parser.add_argument(
            "--no-tracemalloc",
            action="store_true",
            help="Do not trace allocations; tracing slows the runs, so use this for throughput.",
        )

    def handle(self, *args, **options):
        if Session.objects.exists() or Thread.objects.exists():
            raise CommandError(
                "The database already contains snapshots. Point DATABASE_URL at an empty "
                "database made for the benchmark; this command deletes what it syncs."
            )
        if options["concurrency"]:
            settings.SYNC_CONCURRENCY = options["concurrency"]

        emulator = EmulatorProcess(
            sessions=options["sessions"],
            children=options["children"],
            latency_ms=options["latency_ms"],
        )
        try:
            self._run(emulator=emulator, options=options)
        finally:
            emulator.stop()
            _snapshots_delete()

    def _run(self, *, emulator: "EmulatorProcess", options: dict) -> None:
        self._point_client_at(emulator)
        self._write_setup(emulator=emulator, options=options)
        trace = not options["no_tracemalloc"]

        full_run, full = _measure(sync_full, trace=trace)
        sessions = emulator.state_sessions()
        self._write_run(
            "Full sync",
            run=full_run,
            measurement=full,
            minimum_calls=_page_count(len(sessions)) + len(sessions),
            thread_lists=len(sessions),
            pages=_page_count(len(sessions)),
            latency_ms=options["latency_ms"],
        )

        changed = _touch_sessions(emulator, sessions=sessions, percent=options["change_percent"])
        active = {row["id"] for row in emulator.state_sessions() if row["status"] in ACTIVE_STATUSES}
        relisted = len(changed | active)
        incremental_run, incremental = _measure(sync_incremental, trace=trace)
        self._write_run(
            "Incremental sync (%d sessions touched, %d running or rescheduling)"
            % (len(changed), len(active)),
            run=incremental_run,
            measurement=incremental,
            minimum_calls=_page_count(len(sessions)) + relisted,
            thread_lists=relisted,
            pages=_page_count(len(sessions)),
            latency_ms=options["latency_ms"],
        )

    def _point_client_at(self, emulator: "EmulatorProcess") -> None:
        settings.ANTHROPIC_BASE_URL = emulator.base_url
        settings.ANTHROPIC_API_KEY = EMULATOR_API_KEY
        reset_api_clients()
        reset_rate_limiter()
        get_rate_limiter().reset()

    def _write_setup(self, *, emulator: "EmulatorProcess", options: dict) -> None:
        out = self.stdout.write
        out("Emulator: %s" % " ".join(emulator.command))
        out("Emulator config: %s" % json.dumps(emulator.generation, sort_keys=True))
        out("Database: %s" % settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1])
        out(
            "Rate limiter: %s tokens per second, burst %s (ANTHROPIC_RATE_LIMIT_PER_SECOND, "
            "ANTHROPIC_RATE_LIMIT_BURST), store %s"
            % (
                settings.ANTHROPIC_RATE_LIMIT_PER_SECOND,
                settings.ANTHROPIC_RATE_LIMIT_BURST,
                "redis" if settings.REDIS_URL else "database",
            )
        )
        out(
            "Sync: concurrency %d, batch size %d, session page size %d"
            % (settings.SYNC_CONCURRENCY, settings.SYNC_BATCH_SIZE, SESSIONS_PAGE_SIZE)
        )
        out(
            "Ideal time: session pages one after another plus thread lists spread over the "
            "workers, each call taking exactly the emulator latency: "
            "(pages + ceil(thread lists / concurrency)) x latency."
        )
        out(
            "Memory: tracemalloc %s; ru_maxrss is this process's peak resident set so far."
            % ("off" if options["no_tracemalloc"] else "on (it slows the runs)")
        )

    def _write_run(
        self,
        title: str,
        *,
        run: SyncRun,
        measurement: Measurement,
        minimum_calls: int,
        thread_lists: int,
        pages: int,
        latency_ms: int,
    ) -> None:
        concurrency = settings.SYNC_CONCURRENCY
        ideal = (pages + math.ceil(thread_lists / concurrency)) * latency_ms / 1000
        out = self.stdout.write
        out("")
        out(title)
        out("  status %s, sync run %s" % (run.status, run.pk))
        out(
            "  records: %d seen, %d created, %d updated, %d unchanged, %d failed"
            % (run.seen, run.created, run.updated, run.unchanged, run.failed)
        )
        out("  time %.2f s, %.0f records per second" % (measurement.seconds, run.seen / measurement.seconds))
        out(
            "  process CPU %.2f s, %.0f%% of one core, %.0f us per record"
            % (
                measurement.cpu_seconds,
                100 * measurement.cpu_seconds / measurement.seconds,
                1e6 * measurement.cpu_seconds / max(run.seen, 1),
            )
        )
        out("  API calls %d, minimum %d" % (run.api_calls, minimum_calls))
        out("  ideal %.2f s, actual / ideal %.1f" % (ideal, measurement.seconds / ideal))
        if measurement.tracemalloc_peak_bytes is not None:
            out("  tracemalloc peak %.1f MiB" % (measurement.tracemalloc_peak_bytes / 2**20))
        out("  ru_maxrss %.1f MiB" % (measurement.maxrss_kib / 1024))


def _measure(service, *, trace: bool) -> tuple[SyncRun, Measurement]:
    if trace:
        tracemalloc.start()
    started = time.monotonic()
    cpu_started = _process_cpu_seconds()

    run = service()

    seconds = time.monotonic() - started
    cpu_seconds = _process_cpu_seconds() - cpu_started
    peak = None
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return run, Measurement(
        seconds=seconds, cpu_seconds=cpu_seconds, tracemalloc_peak_bytes=peak, maxrss_kib=maxrss
    )


def _process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _snapshots_delete() -> None:
    """Delete every snapshot and usage rollup row with plain DELETE statements.

    `QuerySet.delete()` would load every thread to send its post_delete signal, which
    takes more memory than the sync being measured.
    """
    models = (Thread, Session, UsageDailyRollup, UsageSessionDayRollup, UsageRollupDirtyDay)
    with transaction.atomic(), connection.cursor() as cursor:
        for model in models:
            cursor.execute("DELETE FROM %s" % connection.ops.quote_name(model._meta.db_table))


def _page_count(session_count: int) -> int:
    return max(1, math.ceil(session_count / SESSIONS_PAGE_SIZE))


def _touch_sessions(emulator: "EmulatorProcess", *, sessions: list[dict], percent: float) -> set:
    """Touch every n-th unarchived session so that `percent` of all sessions change."""
    count = max(1, round(len(sessions) * percent / 100))
    candidates = [row["id"] for row in sessions if row["archived_at"] is None]
    step = max(1, len(candidates) // count)
    touched = set(candidates[::step][:count])
    for session_id in touched:
        emulator.control("POST", "sessions/%s/touch" % session_id, {})
    return touched


class EmulatorProcess:
    """The emulator as a subprocess on 127.0.0.1 with a free port."""

    def __init__(self, *, sessions: int, children: int, latency_ms: int) -> None:
        self.command = [
            sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0",
            "--api-key", EMULATOR_API_KEY, "--sessions", str(sessions),
            "--children", "%d:%d" % (children, children), "--latency-ms", str(latency_ms),
            "--log-level", "WARNING",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            self.command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.base_url = self._read_url()
        self.generation = self.control("GET", "config", None)

    def _read_url(self) -> str:
        prefix = "emulator listening on "
        started = time.monotonic()
        line = self.process.stdout.readline().decode("utf-8", "replace").strip()
        if not line.startswith(prefix):
            self.stop()
            raise CommandError(
                "The emulator did not start within %.0f s (it printed %r)."
                % (time.monotonic() - started, line)
            )
        return line[len(prefix) :]

    def control(self, method: str, path: str, body: dict | None) -> object:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + "/_emulator/" + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=STARTUP_TIMEOUT_SECONDS) as response:
            return json.loads(response.read())

    def state_sessions(self) -> list[dict]:
        return self.control("GET", "state/sessions", None)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
