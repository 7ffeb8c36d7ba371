"""Keep the daily usage rollups equal to sums over the thread snapshots.

Invariant: for every UTC day that has no `UsageRollupDirtyDay` row, the day's
`UsageDailyRollup` and `UsageSessionDayRollup` rows equal the sums over the
committed threads created that day.
Writers keep it by marking a thread's old and new day dirty in the transaction that
changes the thread (`usage_rollup_marking`). The refresh keeps it by locking the dirty
rows before it reads the threads, and by deleting them in the transaction that
rewrites the days. A writer that marks a day while a refresh holds it waits for that refresh
to commit and then marks the day again, so no change is lost.

Readers (threads/selectors_usage.py) read rollups for clean days and sum the threads
of dirty days directly, so figures stay exact while days wait for a refresh.
"""

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from itertools import islice

from django.db import connection, models, transaction
from django.db.models import Count, ExpressionWrapper, F, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from threads.models import Thread, UsageDailyRollup, UsageRollupDirtyDay, UsageSessionDayRollup

logger = logging.getLogger(__name__)

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
)
KEY_FIELDS = ("day", "agent_id", "agent_name", "agent_type", "model", "status", "is_archived", "is_primary")
SUM_FIELDS = (
    "thread_count",
    "usage_unknown_count",
    "cost_unknown_count",
    *TOKEN_FIELDS,
    "total_tokens",
    "list_cost_amount",
    "active_seconds",
)
SESSION_DAY_KEY_FIELDS = ("day", "session_id")
SESSION_DAY_SUM_FIELDS = ("thread_count", "cost_unknown_count", "total_tokens", "list_cost_amount")
# Days recomputed per INSERT ... SELECT: enough to keep the statement count low on a
# rebuild, few enough that each statement's date ranges stay short.
REFRESH_BATCH_DAYS = 31
# Any fixed 64-bit number, the same in every process: refreshes hold this advisory
# lock so two of them never rewrite the same day at once (PostgreSQL only).
REFRESH_LOCK_KEY = 0x75736167_65726F6C

USAGE_UNKNOWN = Q(**{"%s__isnull" % name: True for name in TOKEN_FIELDS})
COST_KNOWN = Q(list_cost_amount__isnull=False) & (
    Q(list_cost_currency__isnull=True) | Q(list_cost_currency__in=["", "USD"])
)


def day_start(day: date) -> datetime:
    """Return midnight UTC at the start of `day`."""
    return datetime.combine(day, day_time.min, tzinfo=UTC)


def day_ranges_q(days: Iterable[date]) -> Q:
    """Return a condition on `created_at` that selects threads created on these UTC days.

    Consecutive days merge into one range, so the created_at index serves each range.
    An empty iterable selects nothing.
    """
    condition = Q(pk__in=[])
    for first, last in _day_runs(sorted(set(days))):
        condition |= Q(created_at__gte=day_start(first), created_at__lt=day_start(last + timedelta(days=1)))
    return condition


def _day_runs(days: list[date]) -> Iterator[tuple[date, date]]:
    if not days:
        return
    first = last = days[0]
    for day in days[1:]:
        if day != last + timedelta(days=1):
            yield first, last
            first = day
        last = day
    yield first, last


def _total_tokens():
    total_tokens = Coalesce(F(TOKEN_FIELDS[0]), Value(0))
    for name in TOKEN_FIELDS[1:]:
        total_tokens = total_tokens + Coalesce(F(name), Value(0))
    return total_tokens


def _rollup_select(threads) -> tuple[str, tuple]:
    """Return the SQL and parameters of a SELECT that yields rollup rows in KEY_FIELDS, SUM_FIELDS order."""
    keys = {
        "r_day": TruncDate("created_at", tzinfo=UTC),
        "r_agent_id": F("agent_id"),
        "r_agent_name": F("agent_name"),
        "r_agent_type": F("agent_type"),
        "r_model": F("model"),
        "r_status": F("status"),
        "r_is_archived": ExpressionWrapper(Q(archived_at__isnull=False), output_field=models.BooleanField()),
        "r_is_primary": F("is_primary"),
    }
    sums = {
        "s_thread_count": Count("id"),
        "s_usage_unknown_count": Count("id", filter=USAGE_UNKNOWN),
        "s_cost_unknown_count": Count("id", filter=~COST_KNOWN),
        **{"s_%s" % name: Sum(name) for name in TOKEN_FIELDS},
        "s_total_tokens": Sum(_total_tokens(), filter=~USAGE_UNKNOWN),
        "s_list_cost_amount": Sum("list_cost_amount", filter=COST_KNOWN),
        "s_active_seconds": Sum("active_seconds"),
    }
    return _grouped_select(threads, keys=keys, sums=sums)


def _session_day_select(threads) -> tuple[str, tuple]:
    """Return a SELECT of session-day rollup rows in SESSION_DAY_KEY_FIELDS, SESSION_DAY_SUM_FIELDS order."""
    keys = {"r_day": TruncDate("created_at", tzinfo=UTC), "r_session_id": F("session_id")}
    sums = {
        "s_thread_count": Count("id"),
        "s_cost_unknown_count": Count("id", filter=~COST_KNOWN),
        "s_total_tokens": Sum(_total_tokens(), filter=~USAGE_UNKNOWN),
        "s_list_cost_amount": Sum("list_cost_amount", filter=COST_KNOWN),
    }
    return _grouped_select(threads, keys=keys, sums=sums)


def _grouped_select(threads, *, keys: dict, sums: dict) -> tuple[str, tuple]:
    # Rows come out in day order, so after a rebuild the rows of a period sit together
    # on disk and reading a period touches few pages.
    rows = threads.annotate(**keys).values(*keys).annotate(**sums).order_by("r_day")
    # INSERT ... SELECT matches columns by position, so the SELECT must list the
    # keys, then the sums, in the order of the table's column list.
    if list(rows.query.annotation_select) != [*keys, *sums]:
        raise RuntimeError("Rollup SELECT columns are out of order: %s" % list(rows.query.annotation_select))
    return rows.query.sql_with_params()


def _rollup_insert(*, threads) -> int:
    """Insert the daily and session-day rollup rows of a thread queryset; return daily rows written.

    One INSERT ... SELECT per table.
    """
    threads = threads.filter(created_at__isnull=False)
    written = 0
    for table, columns, select in (
        (UsageDailyRollup, (*KEY_FIELDS, *SUM_FIELDS), _rollup_select),
        (UsageSessionDayRollup, (*SESSION_DAY_KEY_FIELDS, *SESSION_DAY_SUM_FIELDS), _session_day_select),
    ):
        select_sql, params = select(threads)
        statement = "INSERT INTO %s (%s) %s" % (
            connection.ops.quote_name(table._meta.db_table),
            ", ".join(connection.ops.quote_name(name) for name in columns),
            select_sql,
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            if table is UsageDailyRollup:
                written = cursor.rowcount
    return written


def _refresh_lock(*, wait: bool) -> bool:
    """Take the refresh lock for the current transaction; return False when busy and not waiting."""
    if connection.vendor != "postgresql":
        # SQLite runs one writer at a time, which serialises refreshes already.
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REFRESH_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [REFRESH_LOCK_KEY])
        return cursor.fetchone()[0]


def usage_rollup_refresh(*, days: Iterable[date]) -> int:
    """Recompute the rollup rows of these UTC days from the thread table; return daily rows written.

    Deletes each day's daily and session-day rows and inserts one row per key
    group, one INSERT ... SELECT per table and batch of REFRESH_BATCH_DAYS days, in
    one transaction. Does not touch the
    dirty-day marks (see `usage_rollup_refresh_dirty`). Idempotent.
    """
    days = sorted(set(days))
    written = 0
    with transaction.atomic():
        _refresh_lock(wait=True)
        for batch in _chunks(days, REFRESH_BATCH_DAYS):
            UsageDailyRollup.objects.filter(day__in=batch).delete()
            UsageSessionDayRollup.objects.filter(day__in=batch).delete()
            written += _rollup_insert(threads=Thread.objects.filter(day_ranges_q(batch)))
    return written


def usage_rollup_mark_dirty(*, days: Iterable[date | None]) -> None:
    """Record that the rollups of these UTC days need a refresh; None (no creation time) is skipped.

    Call it in the transaction that changes the threads. Upserts, so marking a day
    that a refresh is rewriting waits for that refresh and marks the day again.
    """
    days = sorted({day for day in days if day is not None})
    if not days:
        return
    now = timezone.now()
    UsageRollupDirtyDay.objects.bulk_create(
        [UsageRollupDirtyDay(day=day, marked_at=now) for day in days],
        update_conflicts=True,
        unique_fields=["day"],
        update_fields=["marked_at"],
    )


def usage_rollup_dirty_days() -> list[date]:
    """Return the UTC days whose rollup rows wait for a refresh, oldest first."""
    return list(UsageRollupDirtyDay.objects.order_by("day").values_list("day", flat=True))


def usage_rollup_refresh_dirty() -> int:
    """Refresh the days marked dirty and clear their marks; return how many days were refreshed.

    Returns 0 at once when another refresh holds the lock: that one clears the marks.
    Marks that a writer has locked and not yet committed are skipped and refreshed
    next time.
    """
    started = time.monotonic()
    with transaction.atomic():
        if not _refresh_lock(wait=False):
            logger.info("Usage rollup refresh skipped: another refresh is running")
            return 0
        # Lock the marks before reading threads, so every thread change committed
        # before a mark was taken is in the recomputed rows.
        dirty = list(
            UsageRollupDirtyDay.objects.select_for_update(skip_locked=True)
            .order_by("day")
            .values_list("pk", "day")
        )
        if not dirty:
            return 0
        written = usage_rollup_refresh(days=[day for _, day in dirty])
        UsageRollupDirtyDay.objects.filter(pk__in=[pk for pk, _ in dirty]).delete()

    logger.info(
        "Usage rollup refresh finished",
        extra={
            "days": len(dirty),
            "rollup_rows": written,
            "duration_s": round(time.monotonic() - started, 3),
        },
    )
    return len(dirty)


def usage_rollup_rebuild() -> int:
    """Recompute every rollup row from the thread table and clear the dirty marks.

    Returns the number of daily rollup rows written.
    """
    started = time.monotonic()
    with transaction.atomic():
        _refresh_lock(wait=True)
        dirty_ids = list(
            UsageRollupDirtyDay.objects.select_for_update(skip_locked=True).values_list("pk", flat=True)
        )
        UsageDailyRollup.objects.all().delete()
        UsageSessionDayRollup.objects.all().delete()
        written = _rollup_insert(threads=Thread.objects.all())
        UsageRollupDirtyDay.objects.filter(pk__in=dirty_ids).delete()

    logger.info(
        "Usage rollup rebuild finished",
        extra={"rollup_rows": written, "duration_s": round(time.monotonic() - started, 3)},
    )
    return written


def _thread_days(values: Iterable[datetime | None]) -> set[date | None]:
    return {None if value is None else value.astimezone(UTC).date() for value in values}


@contextmanager
def usage_rollup_marking(*, model: type[models.Model], snapshots: list):
    """Run the block in a transaction that marks the written threads' old and new days dirty.

    `snapshots` are the ParsedSnapshot objects the block writes. Does nothing for
    other models, so a snapshot writer can wrap every batch.
    """
    if model is not Thread:
        yield
        return

    with transaction.atomic():
        stored = Thread.objects.filter(pk__in=[snapshot.id for snapshot in snapshots])
        old_days = _thread_days(stored.values_list("created_at", flat=True))
        yield
        new_days = _thread_days(snapshot.values.get("created_at") for snapshot in snapshots)
        usage_rollup_mark_dirty(days=old_days | new_days)


def _chunks(items: list, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
