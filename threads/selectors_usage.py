"""Read queries for the token usage page: totals, daily series, breakdowns and top lists.

Every figure is summed in the database. Token and cost columns are null while the
API has not reported them, and null stays unknown here: sums skip it and separate
counts report how many threads were left out, so an unknown is never shown as zero.

A thread is counted on the day it was created, because the API reports one running
total per thread and no per-day split.

Costs are minor units of USD (cents), the only currency the API reports. A cost in
any other currency is counted as unknown instead of being added to dollars.

Totals, the daily series and the agent and model breakdowns read the daily rollups
(threads/models/usage.py) when the filter uses only their key columns. They sum
rollup rows for clean days and thread rows for days marked dirty and for threads
without a creation time, and merge the two in Python. A filter with free text `q`
or a `session` falls back to summing the thread table. The session totals read
the session-day rollups the same way when the filter selects by creation date
alone, and the snapshot tables otherwise. Top lists need single rows and always
read the snapshot tables.
"""

import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, timedelta
from decimal import Decimal
from functools import reduce

from django.core.exceptions import NON_FIELD_ERRORS
from django.db import connection
from django.db.models import Count, F, Max, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from threads.filters import ThreadFilter, ThreadFilterForm, thread_filter_from_query, thread_filter_problems
from threads.models import Session, Thread, UsageDailyRollup, UsageSessionDayRollup
from threads.models.snapshots import sort_key_number, sort_key_total_tokens
from threads.selectors import thread_list_filtered
from threads.services.usage_rollup import SUM_FIELDS, day_ranges_q, usage_rollup_dirty_days

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
)
PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90, "all": None}
DEFAULT_PERIOD = "30d"
BREAKDOWNS = ("agent", "model", "session")
BREAKDOWN_SORTS = ("cost", "tokens", "threads", "name")
CHARTS = ("tokens", "cost")
BREAKDOWN_PAGE_ROWS = 50
TOP_PAGE_ROWS = 10

USAGE_UNKNOWN = Q(**{"%s__isnull" % name: True for name in TOKEN_FIELDS})
COST_KNOWN = Q(list_cost_amount__isnull=False) & (
    Q(list_cost_currency__isnull=True) | Q(list_cost_currency__in=["", "USD"])
)


def _row_total_tokens():
    """Return the expression for one row's tokens of every kind added up."""
    return reduce(operator.add, [Coalesce(name, Value(0)) for name in TOKEN_FIELDS])


def _usage_aggregates() -> dict:
    """Return the aggregates every usage row carries, keyed by output name."""
    aggregates = {
        "thread_count": Count("id"),
        "usage_unknown_count": Count("id", filter=USAGE_UNKNOWN),
        "cost_unknown_count": Count("id", filter=~COST_KNOWN),
        "list_cost_amount": Sum("list_cost_amount", filter=COST_KNOWN),
        "active_seconds": Sum("active_seconds"),
        "total_tokens": Sum(_row_total_tokens(), filter=~USAGE_UNKNOWN),
    }
    for name in TOKEN_FIELDS:
        aggregates[name] = Sum(name)
    return aggregates


# ---------------------------------------------------------------------------
# Grouped sums from the daily rollups, or from the thread table
# ---------------------------------------------------------------------------

COUNT_FIELDS = ("thread_count", "usage_unknown_count", "cost_unknown_count")


def usage_rollup_supported(thread_filter: ThreadFilter) -> bool:
    """Return True when the rollups' key columns can express the filter (no free text, no session)."""
    return not thread_filter.q and not thread_filter.session


def _rollup_filter_q(thread_filter: ThreadFilter) -> Q:
    """Return the rollup-row form of `thread_list_filtered`'s conditions (without `q` and `session`)."""
    condition = Q()
    if thread_filter.statuses:
        condition &= Q(status__in=thread_filter.statuses)
    if thread_filter.agent:
        condition &= Q(agent_id=thread_filter.agent) | Q(agent_name=thread_filter.agent)
    if thread_filter.agent_type:
        condition &= Q(agent_type=thread_filter.agent_type)
    if thread_filter.model:
        condition &= Q(model=thread_filter.model)
    if thread_filter.created_from:
        condition &= Q(day__gte=thread_filter.created_from)
    if thread_filter.created_to:
        condition &= Q(day__lte=thread_filter.created_to)
    if thread_filter.archived == "no":
        condition &= Q(is_archived=False)
    elif thread_filter.archived == "yes":
        condition &= Q(is_archived=True)
    if thread_filter.kind == "primary":
        condition &= Q(is_primary=True)
    elif thread_filter.kind == "child":
        condition &= Q(is_primary=False)
    return condition


def _grouped(rows: QuerySet, *, group: str) -> QuerySet:
    """Group thread or rollup rows by `group`; both tables name the key columns alike."""
    if group == "total":
        return rows.annotate(group=Value(1)).values("group")
    if group == "day":
        if rows.model is Thread:
            rows = rows.filter(created_at__isnull=False).annotate(day=TruncDate("created_at", tzinfo=UTC))
        return rows.values("day")
    if group == "agent":
        return (
            rows.annotate(key=Coalesce("agent_id", "agent_name", Value("")))
            .values("key", "agent_type")
            .annotate(agent_name=Max("agent_name"))
        )
    if group == "model":
        return rows.annotate(key=Coalesce("model", Value(""))).values("key")
    raise ValueError("Unknown usage grouping %r." % group)


def _empty_usage_row() -> dict:
    return {name: 0 if name in COUNT_FIELDS else None for name in SUM_FIELDS}


def _row_merge(into: dict, row: dict) -> None:
    """Add one group's sums to another's; a sum stays None only while both are unknown."""
    for name in SUM_FIELDS:
        if row[name] is None:
            continue
        into[name] = row[name] if into[name] is None else into[name] + row[name]
    if "agent_name" in row and row["agent_name"] is not None:
        if into.get("agent_name") is None or row["agent_name"] > into["agent_name"]:
            into["agent_name"] = row["agent_name"]


def _usage_rows(*, thread_filter: ThreadFilter, group: str, dirty_days: list[date] | None) -> list[dict]:
    """Return usage sums per group ("total", "day", "agent" or "model"), unsorted.

    Reads rollups for clean days and the thread table for the rest when the filter
    allows (see the module docstring), else the thread table alone. Empty when no
    thread matches.
    """
    threads = thread_list_filtered(thread_filter=thread_filter)
    if not usage_rollup_supported(thread_filter):
        rows = _grouped(threads, group=group).annotate(**_usage_aggregates()).order_by()
        return [_row_cleaned(row) for row in rows]

    if dirty_days is None:
        dirty_days = usage_rollup_dirty_days()
    rollups = UsageDailyRollup.objects.filter(_rollup_filter_q(thread_filter))
    if dirty_days:
        rollups = rollups.exclude(day__in=dirty_days)
    parts = [_grouped(rollups, group=group).annotate(**{name: Sum(name) for name in SUM_FIELDS})]

    # Threads without a creation time are in no rollup day; a date bound leaves them out.
    live = day_ranges_q(dirty_days)
    if thread_filter.created_from is None and thread_filter.created_to is None:
        live |= Q(created_at__isnull=True)
    if dirty_days or thread_filter.created_from is None and thread_filter.created_to is None:
        parts.append(_grouped(threads.filter(live), group=group).annotate(**_usage_aggregates()))

    merged: dict[tuple, dict] = {}
    for part in parts:
        for row in part.order_by():
            row = _row_cleaned(row)
            if row["thread_count"] == 0:
                continue
            group_key = tuple(row[name] for name in row if name not in SUM_FIELDS and name != "agent_name")
            if group_key in merged:
                _row_merge(merged[group_key], row)
            else:
                merged[group_key] = row
    for row in merged.values():
        row.pop("group", None)
    return list(merged.values())


def _row_cleaned(row: dict) -> dict:
    """Return a row with counts as int (0 when empty), token and cost sums as int or None."""
    row = dict(row)
    for name in SUM_FIELDS:
        value = row.get(name)
        if name in COUNT_FIELDS:
            row[name] = int(value or 0)
        elif value is not None and name != "active_seconds":
            row[name] = int(value)
    return row


# ---------------------------------------------------------------------------
# Query parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageParams:
    """The usage page's validated query parameters.

    `thread_filter` already contains the dates the period resolves to, so links built
    from it select exactly the threads the page sums. `problems` lists the invalid
    input as messages for the page, each led by its field's label.
    """

    thread_filter: ThreadFilter
    form: ThreadFilterForm
    period: str
    breakdown: str
    sort: str
    chart: str
    problems: tuple[str, ...] = ()


def usage_params_from_query(query, *, today: date) -> UsageParams:
    """Validate the usage page's query parameters (a QueryDict) into UsageParams.

    Without `created_from` or `created_to`, `period` (7d, 30d, 90d or all; 30d by
    default) sets the dates, counted back from `today` inclusive. Archived threads
    are included unless `archived` is given, because archiving does not undo spend.
    Unknown values of `breakdown`, `sort` and `chart` fall back to their defaults.

    An invalid `period` falls back to 30d. An invalid date, or a start after the end,
    drops both dates, so the range cannot open on one side, and `period` applies
    instead. Each adds a message to `problems`.
    """
    thread_filter, form = thread_filter_from_query(query)
    problems = thread_filter_problems(thread_filter=thread_filter, form=form)

    if "archived" not in query:
        thread_filter = replace(thread_filter, archived="all")

    period = query.get("period") or DEFAULT_PERIOD
    if period not in PERIOD_DAYS:
        problems.append("Period: %r is invalid. Choose one of %s." % (period, ", ".join(PERIOD_DAYS)))
        period = DEFAULT_PERIOD

    date_errors = {"created_from", "created_to", NON_FIELD_ERRORS} & thread_filter.errors.keys()
    if date_errors:
        thread_filter = replace(thread_filter, created_from=None, created_to=None)
    if (query.get("created_from") or query.get("created_to")) and not date_errors:
        period = "custom"
    elif PERIOD_DAYS[period] is not None:
        start = today - timedelta(days=PERIOD_DAYS[period] - 1)
        thread_filter = replace(thread_filter, created_from=start, created_to=today)

    breakdown = query.get("breakdown") if query.get("breakdown") in BREAKDOWNS else "agent"
    sort = query.get("sort") if query.get("sort") in BREAKDOWN_SORTS else "cost"
    chart = query.get("chart") if query.get("chart") in CHARTS else "tokens"
    return UsageParams(
        thread_filter=thread_filter,
        form=form,
        period=period,
        breakdown=breakdown,
        sort=sort,
        chart=chart,
        problems=tuple(problems),
    )


# ---------------------------------------------------------------------------
# Totals
# ---------------------------------------------------------------------------


def usage_totals(
    *, thread_filter: ThreadFilter, dirty_days: list[date] | None = None, session_count: bool = True
) -> dict:
    """Return token, cost and time sums over the threads the filter selects.

    Adds `session_count`, the number of sessions those threads belong to, which
    needs the thread rows, unless `session_count` is False (`usage_session_totals`
    returns it too). `dirty_days` is `usage_rollup_dirty_days()` when the caller has
    it already.
    """
    [totals] = _usage_rows(thread_filter=thread_filter, group="total", dirty_days=dirty_days) or [
        _empty_usage_row()
    ]
    if not session_count:
        return totals
    selected = thread_list_filtered(thread_filter=thread_filter)
    return {**totals, **selected.aggregate(session_count=Count("session_id", distinct=True))}


# One statement: the CTE of selected session ids is computed once (PostgreSQL
# materialises a CTE that is referenced twice) and feeds the distinct count, the
# sessions' own figures and the sums over all their threads (`thread_sums`, one of
# the two forms below).
SESSION_TOTALS_SQL = """
WITH selected AS ({selected}),
session_sums AS (
    SELECT
        COUNT(*),
        COUNT(session.id),
        COUNT(CASE WHEN {session_usage_unknown} THEN 1 END),
        COUNT(CASE WHEN NOT ({session_cost_known}) THEN 1 END),
        SUM(CASE WHEN {session_cost_known} THEN session.list_cost_amount END),
        SUM(session.active_seconds),
        SUM(CASE WHEN NOT ({session_usage_unknown}) THEN {session_total_tokens} END)
    FROM selected LEFT JOIN {session_table} AS session ON session.id = selected.session_id
),
thread_sums AS ({thread_sums})
SELECT * FROM session_sums CROSS JOIN thread_sums
"""
# Sums over the rows of `threads` (the thread table, or a subquery of its rows)
# that belong to a selected session, or over all of them when `where` is empty.
THREAD_SUMS_SQL = """
    SELECT
        COUNT(thread.id),
        COUNT(CASE WHEN NOT ({cost_known}) THEN 1 END),
        SUM(CASE WHEN {cost_known} THEN thread.list_cost_amount END),
        SUM(CASE WHEN NOT ({usage_unknown}) THEN {total_tokens} END)
    FROM {threads} AS thread
    {where}
"""
SELECTED_SESSIONS_WHERE = "WHERE {alias}.session_id IN (SELECT session_id FROM selected)"
# The same sums from session-day rollups of clean days, plus the thread rows that
# no clean rollup covers (`live_sums`: dirty days and threads without a creation time).
ROLLUP_THREAD_SUMS_SQL = """
    SELECT
        COALESCE(SUM(part.thread_count), 0),
        COALESCE(SUM(part.cost_unknown_count), 0),
        SUM(part.list_cost_amount),
        SUM(part.total_tokens)
    FROM (
        SELECT
            SUM(rollup.thread_count) AS thread_count,
            SUM(rollup.cost_unknown_count) AS cost_unknown_count,
            SUM(rollup.list_cost_amount) AS list_cost_amount,
            SUM(rollup.total_tokens) AS total_tokens
        FROM ({rollups}) AS rollup
        {where}
        UNION ALL
        {live_sums}
    ) AS part
"""
SESSION_TOTALS_KEYS = (
    "selected_session_count",
    "session_count",
    "session_usage_unknown_count",
    "session_cost_unknown_count",
    "session_list_cost_amount",
    "session_active_seconds",
    "session_total_tokens",
    "threads_thread_count",
    "threads_cost_unknown_count",
    "threads_list_cost_amount",
    "threads_total_tokens",
)


def usage_session_rollup_supported(thread_filter: ThreadFilter) -> bool:
    """Return True when the filter selects threads by creation date alone, as session-day rollups can."""
    return thread_filter == ThreadFilter(
        archived="all", created_from=thread_filter.created_from, created_to=thread_filter.created_to
    )


def usage_session_totals(*, thread_filter: ThreadFilter, dirty_days: list[date] | None = None) -> dict:
    """Return the sessions' own usage next to the sum over all their threads.

    Covers every session that contains at least one selected thread. Such a session
    counts whole, so threads the filter leaves out count in both figures. The
    session figure includes session runtime and is rounded once, so it differs from
    the thread sum; it is the authoritative cost. Keys: `session_*` for the
    sessions' own figures (`session_count` counts synced sessions only),
    `threads_*` for the sums over their threads, and `selected_session_count`, the
    number of distinct session ids among the selected threads (as
    `usage_totals()["session_count"]`). One query. A filter by creation date alone
    reads the session-day rollups for clean days; `dirty_days` is
    `usage_rollup_dirty_days()` when the caller has it already.
    """

    def on(alias: str, sql: str) -> str:
        return sql.replace("thread.", alias + ".")

    expressions = {
        "usage_unknown": _TREE_USAGE_UNKNOWN,
        "cost_known": _TREE_COST_KNOWN,
        "total_tokens": _TREE_TOTAL_TOKENS,
    }
    if usage_session_rollup_supported(thread_filter):
        selected_sql, thread_sums, params = _session_totals_rollup_parts(
            thread_filter=thread_filter, dirty_days=dirty_days
        )
    else:
        selected = (
            thread_list_filtered(thread_filter=thread_filter).values("session_id").distinct().order_by()
        )
        selected_sql, params = selected.query.sql_with_params()
        thread_sums = THREAD_SUMS_SQL.format(
            threads=connection.ops.quote_name(Thread._meta.db_table),
            where=SELECTED_SESSIONS_WHERE.format(alias="thread"),
            **expressions,
        )

    sql = SESSION_TOTALS_SQL.format(
        selected=selected_sql,
        thread_sums=thread_sums,
        session_table=connection.ops.quote_name(Session._meta.db_table),
        session_usage_unknown=on("session", _TREE_USAGE_UNKNOWN),
        session_cost_known=on("session", _TREE_COST_KNOWN),
        session_total_tokens=on("session", _TREE_TOTAL_TOKENS),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        values = cursor.fetchone()

    totals = dict(zip(SESSION_TOTALS_KEYS, values, strict=True))
    for name, value in totals.items():
        if name != "session_active_seconds":
            totals[name] = _optional_int(value)
    if totals["session_active_seconds"] is not None:
        totals["session_active_seconds"] = float(totals["session_active_seconds"])
    for name in ("selected_session_count", "session_count", "threads_thread_count"):
        totals[name] = totals[name] or 0
    return totals


def _session_totals_rollup_parts(
    *, thread_filter: ThreadFilter, dirty_days: list[date] | None
) -> tuple[str, str, tuple]:
    """Return the selected-sessions SQL, the thread sums SQL and their parameters, from rollups.

    Clean days come from the session-day rollups. Thread rows are read for dirty
    days and for threads without a creation time, which are in no rollup day. The
    filter's dates keep such threads out of the selection, but they still count in
    their sessions' sums.
    """
    if dirty_days is None:
        dirty_days = usage_rollup_dirty_days()
    live = day_ranges_q(dirty_days) | Q(created_at__isnull=True)

    rollups = UsageSessionDayRollup.objects.exclude(day__in=dirty_days)
    in_period = rollups
    if thread_filter.created_from:
        in_period = in_period.filter(day__gte=thread_filter.created_from)
    if thread_filter.created_to:
        in_period = in_period.filter(day__lte=thread_filter.created_to)
    live_selected = thread_list_filtered(thread_filter=thread_filter).filter(live)
    selected = in_period.values("session_id").order_by().union(live_selected.values("session_id").order_by())
    rollup_rows = rollups.values(
        "session_id", "thread_count", "cost_unknown_count", "list_cost_amount", "total_tokens"
    ).order_by()
    live_rows = (
        Thread.objects.filter(live)
        .values("id", "session_id", *TOKEN_FIELDS, "list_cost_amount", "list_cost_currency")
        .order_by()
    )

    # Without dates every thread is selected, so every session with a thread is, and
    # the sums cover all rows: no need to match each row against the selection.
    dated = thread_filter.created_from is not None or thread_filter.created_to is not None
    selected_sql, selected_params = selected.query.sql_with_params()
    rollup_sql, rollup_params = rollup_rows.query.sql_with_params()
    live_sql, live_params = live_rows.query.sql_with_params()
    live_sums = THREAD_SUMS_SQL.format(
        threads="(%s)" % live_sql,
        where=SELECTED_SESSIONS_WHERE.format(alias="thread") if dated else "",
        usage_unknown=_TREE_USAGE_UNKNOWN,
        cost_known=_TREE_COST_KNOWN,
        total_tokens=_TREE_TOTAL_TOKENS,
    )
    thread_sums = ROLLUP_THREAD_SUMS_SQL.format(
        rollups=rollup_sql,
        where=SELECTED_SESSIONS_WHERE.format(alias="rollup") if dated else "",
        live_sums=live_sums,
    )
    return selected_sql, thread_sums, (*selected_params, *rollup_params, *live_params)


# ---------------------------------------------------------------------------
# Daily series
# ---------------------------------------------------------------------------


def usage_daily(*, thread_filter: ThreadFilter, dirty_days: list[date] | None = None) -> list[dict]:
    """Return one row of usage sums per UTC day of thread creation, oldest first.

    Days without threads are left out; threads with no creation time are not in
    any day.
    """
    rows = _usage_rows(thread_filter=thread_filter, group="day", dirty_days=dirty_days)
    return sorted((row for row in rows if row["day"] is not None), key=operator.itemgetter("day"))


# ---------------------------------------------------------------------------
# Breakdowns by agent, model and session
# ---------------------------------------------------------------------------

BREAKDOWN_ORDER = {
    "cost": ("-list_cost_amount", "-total_tokens"),
    "tokens": ("-total_tokens", "-list_cost_amount"),
    "threads": ("-thread_count", "-list_cost_amount"),
}


def _breakdown_order(*, key: str, sort: str) -> list:
    if sort == "name":
        return [F(key).asc(nulls_last=True)]
    order = [F(name.lstrip("-")).desc(nulls_last=True) for name in BREAKDOWN_ORDER[sort]]
    return [*order, F(key).asc(nulls_last=True)]


def _breakdown_sorted(rows: list[dict], *, sort: str) -> list[dict]:
    """Sort merged breakdown rows as `_breakdown_order` sorts in SQL: unknown figures last, then by key.

    Keys compare by code point, like PostgreSQL under the C collation the project's
    databases use.
    """
    rows = sorted(rows, key=operator.itemgetter("key"))
    if sort == "name":
        return rows
    for name in reversed(BREAKDOWN_ORDER[sort]):
        column = name.lstrip("-")
        # Stable sorts, least significant first; None sorts after every number.
        rows.sort(key=lambda row, column=column: (row[column] is None, -(row[column] or 0)))
    return rows


class UsageRows(Sequence):
    """Breakdown rows already summed and sorted, with the slicing and counting of a queryset.

    Callers written for the queryset `usage_breakdown_rows` used to return keep
    working: `count()`, slices and `iterator(chunk_size=...)`.
    """

    def __init__(self, rows: list[dict]):
        self._rows = rows

    def __getitem__(self, index):
        return self._rows[index]

    def __len__(self) -> int:
        return len(self._rows)

    def count(self, *args) -> int:
        """Return the number of rows (with no argument, like QuerySet.count)."""
        if args:
            return self._rows.count(*args)
        return len(self._rows)

    def iterator(self, chunk_size: int | None = None) -> Iterator[dict]:
        return iter(self._rows)


def usage_breakdown_rows(
    *, thread_filter: ThreadFilter, breakdown: str, sort: str = "cost", dirty_days: list[date] | None = None
) -> "UsageRows | QuerySet":
    """Return usage sums grouped by agent, model or session, sorted.

    Each row has `key` (the value to filter the thread list by: an agent id or, for
    agents without one, the agent name; a model id; a session id) next to the sums.
    Agent rows are grouped by key and agent type and add `agent_name`; advisor
    threads have neither id nor name, so they share one row with an empty key, which
    the thread filter `agent_type=advisor` selects.
    Agent and model rows come summed in a UsageRows; session rows are a queryset
    over the thread table and carry only thread sums (`usage_session_figures` adds
    the sessions' own figures).
    """
    if breakdown in ("agent", "model"):
        rows = _usage_rows(thread_filter=thread_filter, group=breakdown, dirty_days=dirty_days)
        return UsageRows(_breakdown_sorted(rows, sort=sort))
    if breakdown != "session":
        raise ValueError("Unknown breakdown %r: expected one of %s." % (breakdown, ", ".join(BREAKDOWNS)))

    threads = thread_list_filtered(thread_filter=thread_filter)
    rows = threads.annotate(key=Coalesce("session_id", Value(""))).values("key")
    return rows.annotate(**_usage_aggregates()).order_by(*_breakdown_order(key="key", sort=sort))


def usage_breakdown_page(
    *, thread_filter: ThreadFilter, breakdown: str, sort: str = "cost", dirty_days: list[date] | None = None
) -> dict:
    """Return the first rows of a breakdown and the number of rows in all.

    Session rows also get the sessions' own figures (see `usage_session_figures`).
    """
    rows_all = usage_breakdown_rows(
        thread_filter=thread_filter, breakdown=breakdown, sort=sort, dirty_days=dirty_days
    )
    rows = list(rows_all[:BREAKDOWN_PAGE_ROWS])
    row_count = len(rows) if len(rows) < BREAKDOWN_PAGE_ROWS else rows_all.count()

    if breakdown == "session":
        rows = usage_session_figures(rows=rows)
    return {"rows": rows, "row_count": row_count}


def usage_session_figures(*, rows: list[dict], sessions: Iterable[Session] | None = None) -> list[dict]:
    """Add each session's own usage and the sum over all its threads to session rows.

    Rows come from the session breakdown (`key` is the session id). Adds `session`
    (the Session, or None when the session has not been synced) and `all_threads`
    (sums over every thread of the session, selected or not). Two queries, or one
    when the caller passes the `sessions` it has loaded already.
    """
    session_ids = [row["key"] for row in rows]
    if sessions is None:
        sessions = Session.objects.in_bulk(session_ids)
    else:
        sessions = {session.id: session for session in sessions}
    all_threads = {
        row["session_id"]: row
        for row in Thread.objects.filter(session_id__in=session_ids)
        .values("session_id")
        .annotate(**_usage_aggregates())
        .order_by()
    }
    return [
        {**row, "session": sessions.get(row["key"]), "all_threads": all_threads.get(row["key"], {})}
        for row in rows
    ]


def usage_session_figures_iter(*, rows: Iterable[dict], chunk_size: int = 2000) -> Iterator[dict]:
    """Yield session rows with their sessions' figures added, two queries per chunk."""
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == chunk_size:
            yield from usage_session_figures(rows=chunk)
            chunk = []
    if chunk:
        yield from usage_session_figures(rows=chunk)


# ---------------------------------------------------------------------------
# Top threads and top sessions
# ---------------------------------------------------------------------------


def usage_top_threads(
    *, thread_filter: ThreadFilter, by: str, limit: int = TOP_PAGE_ROWS
) -> QuerySet[Thread]:
    """Return the selected threads with the most tokens (`by="tokens"`) or cost (`by="cost"`).

    Threads whose figure is unknown are left out, not ranked as zero.
    """
    threads = thread_list_filtered(thread_filter=thread_filter)
    return _ranked(threads, by=by)[:limit]


def _ranked(rows: QuerySet, *, by: str) -> QuerySet:
    """Order sessions or threads by known tokens or cost, most first, leaving out unknown figures.

    The order uses the browse lists' sort expressions, which rank the same here
    because unknown figures are filtered out, so PostgreSQL walks their (key, id)
    indexes backwards and stops after `limit` rows.
    """
    if by == "tokens":
        rows = rows.exclude(USAGE_UNKNOWN)
        key = sort_key_total_tokens()
    elif by == "cost":
        rows = rows.filter(COST_KNOWN)
        key = sort_key_number("list_cost_amount")
    else:
        raise ValueError("Unknown ranking %r: expected tokens or cost." % by)
    return rows.annotate(row_total_tokens=_row_total_tokens()).order_by(key.desc(), F("id").desc())


def usage_top_sessions(*, thread_filter: ThreadFilter, by: str, limit: int = TOP_PAGE_ROWS) -> list[dict]:
    """Return the sessions with the most tokens or cost by their own, authoritative figures.

    Ranks every session that contains at least one selected thread. Each item has
    `session` and `all_threads` (sums over all of the session's threads), so a page
    can show both figures. Two queries.
    """
    session_ids = thread_list_filtered(thread_filter=thread_filter).values("session_id")
    top = list(_ranked(Session.objects.filter(id__in=session_ids), by=by)[:limit])
    return usage_session_figures(rows=[{"key": session.id} for session in top], sessions=top)


def _top_sessions_both(*, thread_filter: ThreadFilter) -> tuple[list[dict], list[dict]]:
    """Return `usage_top_sessions` by tokens and by cost, with one figures query for both."""
    session_ids = thread_list_filtered(thread_filter=thread_filter).values("session_id")
    sessions = Session.objects.filter(id__in=session_ids)
    by_tokens = list(_ranked(sessions, by="tokens")[:TOP_PAGE_ROWS])
    by_cost = list(_ranked(sessions, by="cost")[:TOP_PAGE_ROWS])

    top = {session.id: session for session in by_tokens + by_cost}
    figures = usage_session_figures(rows=[{"key": session_id} for session_id in top], sessions=top.values())
    by_id = {row["key"]: row for row in figures}
    return [by_id[session.id] for session in by_tokens], [by_id[session.id] for session in by_cost]


# ---------------------------------------------------------------------------
# Thread trees
# ---------------------------------------------------------------------------

# UNION (not UNION ALL) drops rows already reached, so a parent cycle in bad data
# ends the recursion instead of looping. The walk carries the summed columns itself:
# joining its result back to the thread table made PostgreSQL guess thousands of
# rows and merge-join the whole primary key index (0.8 s at 1,000,000 threads).
# PostgreSQL and SQLite both run this.
_TREE_COLUMNS = (
    "id, parent_id, input_tokens, output_tokens, cache_read_input_tokens, cache_creation_5m_input_tokens,"
    " cache_creation_1h_input_tokens, list_cost_amount, list_cost_currency, active_seconds"
)
THREAD_TREE_SQL = """
WITH RECURSIVE tree(root_id, {columns}) AS (
    SELECT id, {columns} FROM {table} WHERE id IN ({placeholders})
    UNION
    SELECT tree.root_id, {child_columns} FROM {table} AS child JOIN tree ON child.parent_id = tree.id
)
SELECT
    thread.root_id,
    COUNT(thread.id),
    COUNT(CASE WHEN {usage_unknown} THEN 1 END),
    COUNT(CASE WHEN NOT ({cost_known}) THEN 1 END),
    SUM(thread.input_tokens),
    SUM(thread.output_tokens),
    SUM(thread.cache_read_input_tokens),
    SUM(thread.cache_creation_5m_input_tokens),
    SUM(thread.cache_creation_1h_input_tokens),
    SUM(CASE WHEN NOT ({usage_unknown}) THEN {total_tokens} END),
    SUM(CASE WHEN {cost_known} THEN thread.list_cost_amount END),
    SUM(thread.active_seconds)
FROM tree AS thread
GROUP BY thread.root_id
"""
# The SQL forms of USAGE_UNKNOWN, COST_KNOWN and _row_total_tokens, over the alias "thread".
_TREE_USAGE_UNKNOWN = " AND ".join("thread.%s IS NULL" % name for name in TOKEN_FIELDS)
_TREE_COST_KNOWN = (
    "thread.list_cost_amount IS NOT NULL AND (thread.list_cost_currency IS NULL"
    " OR thread.list_cost_currency IN ('', 'USD'))"
)
_TREE_TOTAL_TOKENS = " + ".join("COALESCE(thread.%s, 0)" % name for name in TOKEN_FIELDS)


@dataclass(frozen=True)
class ThreadTreeUsage:
    """Usage sums over a thread and all its descendants.

    Token, cost and time fields are None when no thread in the tree has reported
    them. `list_cost_amount` is in minor units (cents). It is a sum of thread
    figures, so it leaves out session runtime and differs from the session's own
    list cost by rounding.
    """

    thread_id: str
    thread_count: int = 0
    usage_unknown_count: int = 0
    cost_unknown_count: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_5m_input_tokens: int | None = None
    cache_creation_1h_input_tokens: int | None = None
    total_tokens: int | None = None
    list_cost_amount: int | None = None
    active_seconds: float | None = None

    @property
    def list_cost(self) -> Decimal | None:
        """Return the list cost in dollars, or None when unknown."""
        return None if self.list_cost_amount is None else Decimal(self.list_cost_amount) / 100


def _optional_int(value) -> int | None:
    # PostgreSQL's SUM over bigint returns numeric, which psycopg reads as Decimal.
    return None if value is None else int(value)


def thread_tree_usage_many(*, thread_ids: Iterable[str]) -> dict[str, ThreadTreeUsage]:
    """Return usage sums over each thread and all its descendants, at any depth, by thread id.

    One query: a recursive CTE walks `parent_id` links down from every given thread.
    Ids with no row map to a tree of zero threads.
    """
    thread_ids = list(dict.fromkeys(thread_ids))
    if not thread_ids:
        return {}

    sql = THREAD_TREE_SQL.format(
        table=connection.ops.quote_name(Thread._meta.db_table),
        columns=_TREE_COLUMNS,
        child_columns=", ".join("child.%s" % name.strip() for name in _TREE_COLUMNS.split(",")),
        placeholders=", ".join(["%s"] * len(thread_ids)),
        usage_unknown=_TREE_USAGE_UNKNOWN,
        cost_known=_TREE_COST_KNOWN,
        total_tokens=_TREE_TOTAL_TOKENS,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, thread_ids)
        rows = cursor.fetchall()

    trees = {thread_id: ThreadTreeUsage(thread_id=thread_id) for thread_id in thread_ids}
    for root_id, count, usage_unknown, cost_unknown, *token_sums, total, cost, seconds in rows:
        trees[root_id] = ThreadTreeUsage(
            thread_id=root_id,
            thread_count=count,
            usage_unknown_count=usage_unknown,
            cost_unknown_count=cost_unknown,
            **{name: _optional_int(value) for name, value in zip(TOKEN_FIELDS, token_sums, strict=True)},
            total_tokens=_optional_int(total),
            list_cost_amount=_optional_int(cost),
            active_seconds=None if seconds is None else float(seconds),
        )
    return trees


def thread_tree_usage(*, thread_id: str) -> ThreadTreeUsage:
    """Return usage sums over a thread and all its descendants, at any depth.

    One query (see `thread_tree_usage_many`). A thread id with no row gives a tree
    of zero threads.
    """
    return thread_tree_usage_many(thread_ids=[thread_id])[thread_id]


# ---------------------------------------------------------------------------
# The whole page
# ---------------------------------------------------------------------------


def usage_overview(*, params: UsageParams) -> dict:
    """Return every figure the usage page shows, in a fixed number of queries.

    Keys: `totals`, `session_totals`, `daily`, `breakdown` (rows and row count),
    `top_threads_by_tokens`, `top_threads_by_cost` (lists of Thread), their tree
    sums in `thread_trees` (by thread id), and `top_sessions_by_tokens`,
    `top_sessions_by_cost`.
    """
    thread_filter = params.thread_filter
    dirty_days = usage_rollup_dirty_days() if usage_rollup_supported(thread_filter) else []

    totals = usage_totals(thread_filter=thread_filter, dirty_days=dirty_days, session_count=False)
    session_totals = usage_session_totals(thread_filter=thread_filter, dirty_days=dirty_days)
    totals["session_count"] = session_totals.pop("selected_session_count")
    daily = usage_daily(thread_filter=thread_filter, dirty_days=dirty_days)
    breakdown = usage_breakdown_page(
        thread_filter=thread_filter, breakdown=params.breakdown, sort=params.sort, dirty_days=dirty_days
    )
    top_threads_by_tokens = list(usage_top_threads(thread_filter=thread_filter, by="tokens"))
    top_threads_by_cost = list(usage_top_threads(thread_filter=thread_filter, by="cost"))
    thread_trees = thread_tree_usage_many(
        thread_ids=[thread.id for thread in top_threads_by_tokens + top_threads_by_cost]
    )
    top_sessions_by_tokens, top_sessions_by_cost = _top_sessions_both(thread_filter=thread_filter)

    return {
        "totals": totals,
        "session_totals": session_totals,
        "daily": daily,
        "breakdown": breakdown,
        "top_threads_by_tokens": top_threads_by_tokens,
        "top_threads_by_cost": top_threads_by_cost,
        "thread_trees": thread_trees,
        "top_sessions_by_tokens": top_sessions_by_tokens,
        "top_sessions_by_cost": top_sessions_by_cost,
    }
