"""Time the usage page's selectors at 10,000 threads and at --threads threads.

Inserts synthetic session and thread snapshots (PostgreSQL COPY, or bulk_create in
batches of 10,000 elsewhere) and rebuilds the daily usage rollups. Then it times each
selector on the rollup path and on the thread-table path that a free-text filter
takes, prints a table with the ratio between the two sizes, and deletes what it
inserted. Run it on a database of its own: it stops with an error when the database
already contains snapshots.

On PostgreSQL the COPY runs with the snapshot tables' secondary indexes dropped and
rebuilds them afterwards, which is much faster than updating some 30 indexes per
row; the timings then run on the full schema.
"""

import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import JSONField
from django.http import QueryDict

from threads.models import Session, Thread, UsageDailyRollup, UsageRollupDirtyDay, UsageSessionDayRollup
from threads.selectors_usage import (
    thread_tree_usage,
    usage_breakdown_page,
    usage_daily,
    usage_overview,
    usage_params_from_query,
    usage_session_totals,
    usage_top_sessions,
    usage_top_threads,
    usage_totals,
)
from threads.services.usage_rollup import usage_rollup_rebuild

SMALL_SIZE = 10_000
BATCH_SIZE = 10_000
THREADS_PER_SESSION = 5
SPAN_DAYS = 365
AGENT_COUNT = 40
MODELS = ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-7", "claude-sonnet-5"]
# Shares of threads with no usage yet, and with usage but no list cost yet.
USAGE_UNKNOWN_SHARE = 0.03
COST_UNKNOWN_SHARE = 0.05
ID_PREFIX = "bench"
SESSION_STATUSES = ("idle", "idle", "idle", "running", "terminated")
THREAD_STATUSES = ("idle", "idle", "idle", "running", "rescheduling", "terminated")
SESSION_ARCHIVED_SHARE = 0.1
THREAD_ARCHIVED_SHARE = 0.1
NESTED_CHILD_SHARE = 0.25


class Command(BaseCommand):
    help = "Time the usage page's selectors on synthetic snapshots at 10,000 and --threads threads."

    def add_arguments(self, parser):
        parser.add_argument(
            "--threads",
            type=int,
            default=1_000_000,
            help="Number of threads for the large run (default 1,000,000).",
        )
        parser.add_argument(
            "--repeat", type=int, default=5, help="Timed runs per selector; the median is shown."
        )
        parser.add_argument("--seed", type=int, default=1, help="Seed of the synthetic data.")

    def handle(self, *args, **options):
        if (
            Thread.objects.exclude(id__startswith=ID_PREFIX).exists()
            or Session.objects.exclude(id__startswith=ID_PREFIX).exists()
        ):
            raise CommandError(
                "The database %r already contains snapshots. Run the benchmark on a database of its own, "
                "for example DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h_usage_bench."
                % connection.settings_dict["NAME"]
            )

        sizes = sorted({SMALL_SIZE, options["threads"]})
        results: dict[int, dict[str, float]] = {}
        try:
            for size in sizes:
                bench_rows_delete()
                started = time.perf_counter()
                bench_rows_insert(threads=size, seed=options["seed"])
                self.stdout.write(
                    "Inserted %s threads in %.1f s on %s."
                    % (f"{size:,}", time.perf_counter() - started, connection.vendor)
                )
                started = time.perf_counter()
                rollup_rows = usage_rollup_rebuild()
                rebuild_ms = (time.perf_counter() - started) * 1000
                self.stdout.write(
                    "Rebuilt the usage rollups (%s rows) in %.1f s." % (f"{rollup_rows:,}", rebuild_ms / 1000)
                )
                database_analyze()
                results[size] = {
                    "rollup rebuild (whole table)": rebuild_ms,
                    **selectors_time(repeat=options["repeat"]),
                }
        finally:
            bench_rows_delete()

        self.stdout.write(results_table(results, sizes=sizes))


# ---------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------


def _usage_values(rng: random.Random) -> dict:
    if rng.random() < USAGE_UNKNOWN_SHARE:
        return {
            "input_tokens": None,
            "output_tokens": None,
            "cache_read_input_tokens": None,
            "cache_creation_5m_input_tokens": None,
            "cache_creation_1h_input_tokens": None,
            "list_cost_amount": None,
            "list_cost_currency": None,
            "active_seconds": None,
        }
    input_tokens = rng.randint(100, 400_000)
    cost_known = rng.random() >= COST_UNKNOWN_SHARE
    return {
        "input_tokens": input_tokens,
        "output_tokens": input_tokens // rng.randint(4, 25),
        "cache_read_input_tokens": input_tokens * rng.choice((0, 1, 3)),
        "cache_creation_5m_input_tokens": input_tokens // rng.randint(2, 10),
        "cache_creation_1h_input_tokens": rng.choice((0, 0, input_tokens // 5)),
        "list_cost_amount": rng.randint(1, 5000) if cost_known else None,
        "list_cost_currency": "USD" if cost_known else None,
        "active_seconds": round(rng.uniform(1, 3600), 3),
    }


def _snapshot_rows(*, threads: int, seed: int, threads_per_session: int = THREADS_PER_SESSION):
    """Yield ("session" | "thread", column values) pairs for `threads` threads.

    Each session has a primary thread and `threads_per_session` - 1 children; most
    children hang off the primary thread, the rest off an earlier child. Sessions
    are spread over SPAN_DAYS days; a session is archived with all its threads at
    SESSION_ARCHIVED_SHARE, and single threads at THREAD_ARCHIVED_SHARE.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC)
    session_count = max(1, threads // threads_per_session)
    thread_index = 0
    for session_index in range(session_count):
        session_id = "%s_sesn_%08d" % (ID_PREFIX, session_index)
        created_at = now - timedelta(seconds=rng.uniform(0, SPAN_DAYS * 86400))
        session_archived_at = created_at if rng.random() < SESSION_ARCHIVED_SHARE else None
        agent = rng.randrange(AGENT_COUNT)
        in_session = threads_per_session if session_index < session_count - 1 else threads - thread_index
        usage = _usage_values(rng)
        yield (
            "session",
            {
                "id": session_id,
                "title": "Bench session %d" % session_index,
                "status": rng.choice(SESSION_STATUSES),
                "created_at": created_at,
                "updated_at": created_at,
                "archived_at": session_archived_at,
                "agent_id": "agent_bench_%02d" % agent,
                "agent_name": "Bench agent %02d" % agent,
                "model": MODELS[agent % len(MODELS)],
                "thread_count": in_session,
                "search_text": "bench session %d %s" % (session_index, session_id),
                **usage,
            },
        )
        session_thread_ids: list[str] = []
        for position in range(in_session):
            thread_id = "%s_sthr_%09d" % (ID_PREFIX, thread_index)
            thread_index += 1
            if position == 0:
                parent_id = None
            elif position > 1 and rng.random() < NESTED_CHILD_SHARE:
                parent_id = rng.choice(session_thread_ids[1:])
            else:
                parent_id = session_thread_ids[0]
            thread_agent = agent if position == 0 else rng.randrange(AGENT_COUNT)
            archived_at = session_archived_at
            if archived_at is None and rng.random() < THREAD_ARCHIVED_SHARE:
                archived_at = created_at + timedelta(days=1)
            yield (
                "thread",
                {
                    "id": thread_id,
                    "session_id": session_id,
                    "parent_id": parent_id,
                    "is_primary": position == 0,
                    "agent_type": "agent",
                    "status": rng.choice(THREAD_STATUSES),
                    "created_at": created_at + timedelta(seconds=position),
                    "updated_at": created_at + timedelta(seconds=position),
                    "archived_at": archived_at,
                    "agent_id": "agent_bench_%02d" % thread_agent,
                    "agent_name": "Bench agent %02d" % thread_agent,
                    "model": MODELS[thread_agent % len(MODELS)],
                    **_usage_values(rng),
                },
            )
            session_thread_ids.append(thread_id)


def _full_values(model, values: dict, *, fetched_at: datetime) -> dict:
    """Fill every column `values` leaves out with the field's default."""
    row = {}
    for field in model._meta.concrete_fields:
        if field.attname in values:
            row[field.attname] = values[field.attname]
        elif field.attname == "raw":
            row["raw"] = {"id": values["id"]}
        elif field.attname == "raw_sha256":
            row["raw_sha256"] = "0" * 64
        elif field.attname == "fetched_at":
            row["fetched_at"] = fetched_at
        else:
            row[field.attname] = field.get_default()
    return row


def bench_rows_insert(*, threads: int, seed: int, threads_per_session: int = THREADS_PER_SESSION) -> None:
    """Insert the synthetic sessions and threads, in one transaction."""
    fetched_at = datetime.now(UTC)
    rows = _snapshot_rows(threads=threads, seed=seed, threads_per_session=threads_per_session)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _insert_copy(rows=rows, fetched_at=fetched_at)
        else:
            _insert_bulk(rows=rows, fetched_at=fetched_at)


def _secondary_indexes_drop(cursor, models) -> list[str]:
    """Drop the tables' indexes that back no constraint; return the statements that recreate them."""
    cursor.execute(
        """
        SELECT index_class.relname, pg_get_indexdef(pg_index.indexrelid)
        FROM pg_index
        JOIN pg_class AS index_class ON index_class.oid = pg_index.indexrelid
        JOIN pg_class AS table_class ON table_class.oid = pg_index.indrelid
        WHERE table_class.relname = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE pg_constraint.conindid = pg_index.indexrelid)
        """,
        [[model._meta.db_table for model in models]],
    )
    indexes = cursor.fetchall()
    for name, _definition in indexes:
        cursor.execute("DROP INDEX %s" % connection.ops.quote_name(name))
    return [definition for _name, definition in indexes]


def _copy_statement(model) -> str:
    return "COPY %s (%s) FROM STDIN" % (
        connection.ops.quote_name(model._meta.db_table),
        ", ".join(connection.ops.quote_name(field.attname) for field in model._meta.concrete_fields),
    )


def _copy_row(model, values: dict, *, fetched_at: datetime) -> list:
    from psycopg.types.json import Jsonb

    row = _full_values(model, values, fetched_at=fetched_at)
    json_columns = {field.attname for field in model._meta.concrete_fields if isinstance(field, JSONField)}
    return [Jsonb(row[name]) if name in json_columns else row[name] for name in row]


def _insert_copy(*, rows, fetched_at: datetime) -> None:
    # Two COPY streams cannot be open at once on one connection, so threads stream
    # while the far fewer sessions wait in memory for a second COPY. Thread.session
    # has no database constraint, so the order is allowed.
    sessions = []
    with connection.cursor() as cursor:
        index_definitions = _secondary_indexes_drop(cursor, [Session, Thread])
        with cursor.cursor.copy(_copy_statement(Thread)) as copy:
            for kind, values in rows:
                if kind == "session":
                    sessions.append(values)
                else:
                    copy.write_row(_copy_row(Thread, values, fetched_at=fetched_at))
        with cursor.cursor.copy(_copy_statement(Session)) as copy:
            for values in sessions:
                copy.write_row(_copy_row(Session, values, fetched_at=fetched_at))
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for definition in index_definitions:
            cursor.execute(definition)


def _insert_bulk(*, rows, fetched_at: datetime) -> None:
    batches: dict[str, list] = {"session": [], "thread": []}
    models = {"session": Session, "thread": Thread}
    for kind, values in rows:
        batches[kind].append(models[kind](**_full_values(models[kind], values, fetched_at=fetched_at)))
        if len(batches[kind]) >= BATCH_SIZE:
            models[kind].objects.bulk_create(batches[kind])
            batches[kind] = []
    for kind, batch in batches.items():
        models[kind].objects.bulk_create(batch)


def bench_rows_delete() -> None:
    """Delete every snapshot this command inserted.

    Raw SQL, because the ORM's delete would load a million rows to look for cascades.
    """
    with connection.cursor() as cursor:
        for model in (Thread, Session):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute("DELETE FROM %s WHERE id LIKE %%s" % table, [ID_PREFIX + "%"])
    # The database holds only this command's snapshots, so every rollup is theirs.
    UsageDailyRollup.objects.all().delete()
    UsageSessionDayRollup.objects.all().delete()
    UsageRollupDirtyDay.objects.all().delete()


def database_analyze() -> None:
    """Refresh planner statistics, and on PostgreSQL the visibility map for index-only scans."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for model in (Session, Thread, UsageDailyRollup, UsageSessionDayRollup):
                cursor.execute("VACUUM ANALYZE %s" % connection.ops.quote_name(model._meta.db_table))
        else:
            cursor.execute("ANALYZE")


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def _benchmarks() -> list[tuple[str, object]]:
    today = datetime.now(UTC).date()
    last_30 = usage_params_from_query(QueryDict(""), today=today)
    all_time = usage_params_from_query(QueryDict("period=all"), today=today)
    one_agent = usage_params_from_query(QueryDict("period=all&agent=agent_bench_07"), today=today)
    # Free text matches ids, agent names and session titles, so the rollups cannot
    # serve it; "bench" matches every synthetic thread, the worst case.
    text_30 = usage_params_from_query(QueryDict("q=bench"), today=today)
    text_all = usage_params_from_query(QueryDict("period=all&q=bench"), today=today)
    primary = Thread.objects.filter(id__startswith=ID_PREFIX, is_primary=True).order_by("id").first()

    return [
        ("page, last 30 days (all selectors)", lambda: usage_overview(params=last_30)),
        ("page, all time (all selectors)", lambda: usage_overview(params=all_time)),
        ("page, all time, one agent", lambda: usage_overview(params=one_agent)),
        ("totals, last 30 days", lambda: usage_totals(thread_filter=last_30.thread_filter)),
        ("totals, all time", lambda: usage_totals(thread_filter=all_time.thread_filter)),
        ("session totals, last 30 days", lambda: usage_session_totals(thread_filter=last_30.thread_filter)),
        ("daily, last 30 days", lambda: usage_daily(thread_filter=last_30.thread_filter)),
        (
            "by agent, last 30 days",
            lambda: usage_breakdown_page(thread_filter=last_30.thread_filter, breakdown="agent"),
        ),
        (
            "by model, last 30 days",
            lambda: usage_breakdown_page(thread_filter=last_30.thread_filter, breakdown="model"),
        ),
        (
            "by agent, all time",
            lambda: usage_breakdown_page(thread_filter=all_time.thread_filter, breakdown="agent"),
        ),
        (
            "by session, last 30 days",
            lambda: usage_breakdown_page(thread_filter=last_30.thread_filter, breakdown="session"),
        ),
        (
            "top threads by cost, last 30 days",
            lambda: list(usage_top_threads(thread_filter=last_30.thread_filter, by="cost")),
        ),
        (
            "top sessions by cost, last 30 days",
            lambda: usage_top_sessions(thread_filter=last_30.thread_filter, by="cost"),
        ),
        ("thread tree of one session", lambda: thread_tree_usage(thread_id=primary.id)),
        ("fallback: page, last 30 days, q=bench", lambda: usage_overview(params=text_30)),
        ("fallback: page, all time, q=bench", lambda: usage_overview(params=text_all)),
        ("fallback: totals, all time, q=bench", lambda: usage_totals(thread_filter=text_all.thread_filter)),
    ]


def selectors_time(*, repeat: int) -> dict[str, float]:
    """Return the median wall time in milliseconds of each selector, after one warm-up run."""
    timings = {}
    for name, call in _benchmarks():
        call()
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            call()
            runs.append((time.perf_counter() - started) * 1000)
        timings[name] = statistics.median(runs)
    return timings


def results_table(results: dict[int, dict[str, float]], *, sizes: list[int]) -> str:
    small, large = sizes[0], sizes[-1]
    width = max(len(name) for name in results[small])
    header = "%-*s %12s %12s %8s" % (width, "selector (median ms)", f"{small:,}", f"{large:,}", "ratio")
    lines = [header, "-" * len(header)]
    for name, small_ms in results[small].items():
        large_ms = results[large][name]
        lines.append("%-*s %12.1f %12.1f %8.1f" % (width, name, small_ms, large_ms, large_ms / small_ms))
    return "\n".join(lines)
