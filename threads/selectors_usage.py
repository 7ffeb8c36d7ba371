"""Read queries for the token usage page: totals, daily series, breakdowns and top lists.

Every figure is summed in the database. Token and cost columns are null while the
API has not reported them, and null stays unknown here: sums skip it and separate
counts report how many threads were left out, so an unknown is never shown as zero.

A thread is counted on the day it was created, because the API reports one running
total per thread and no per-day split.

Costs are minor units of USD (cents), the only currency the API reports. A cost in
any other currency is counted as unknown instead of being added to dollars.
"""

import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, timedelta
from decimal import Decimal
from functools import reduce

from django.db import connection
from django.db.models import Count, F, Max, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from threads.filters import ThreadFilter, ThreadFilterForm, thread_filter_from_query
from threads.models import Session, Thread
from threads.selectors import thread_list_filtered

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
# Query parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageParams:
    """The usage page's validated query parameters.

    `thread_filter` already contains the dates the period resolves to, so links built
    from it select exactly the threads the page sums.
    """

    thread_filter: ThreadFilter
    form: ThreadFilterForm
    period: str
    breakdown: str
    sort: str
    chart: str


def usage_params_from_query(query, *, today: date) -> UsageParams:
    """Validate the usage page's query parameters (a QueryDict) into UsageParams.

    Without `created_from` or `created_to`, `period` (7d, 30d, 90d or all; 30d by
    default) sets the dates, counted back from `today` inclusive. Archived threads
    are included unless `archived` is given, because archiving does not undo spend.
    Unknown values of `breakdown`, `sort` and `chart` fall back to their defaults.
    """
    thread_filter, form = thread_filter_from_query(query)

    if "archived" not in query:
        thread_filter = replace(thread_filter, archived="all")

    if query.get("created_from") or query.get("created_to"):
        period = "custom"
    else:
        period = query.get("period") if query.get("period") in PERIOD_DAYS else DEFAULT_PERIOD
        days = PERIOD_DAYS[period]
        if days is not None:
            start = today - timedelta(days=days - 1)
            thread_filter = replace(thread_filter, created_from=start, created_to=today)

    breakdown = query.get("breakdown") if query.get("breakdown") in BREAKDOWNS else "agent"
    sort = query.get("sort") if query.get("sort") in BREAKDOWN_SORTS else "cost"
    chart = query.get("chart") if query.get("chart") in CHARTS else "tokens"
    return UsageParams(
        thread_filter=thread_filter, form=form, period=period, breakdown=breakdown, sort=sort, chart=chart
    )


# ---------------------------------------------------------------------------
# Totals
# ---------------------------------------------------------------------------


def usage_totals(*, thread_filter: ThreadFilter) -> dict:
    """Return token, cost and time sums over the threads the filter selects.

    Adds `session_count`, the number of sessions those threads belong to.
    """
    threads = thread_list_filtered(thread_filter=thread_filter)
    return threads.aggregate(**_usage_aggregates(), session_count=Count("session_id", distinct=True))


def usage_session_totals(*, thread_filter: ThreadFilter) -> dict:
    """Return the sessions' own usage next to the sum over all their threads.

    Covers every session that contains at least one selected thread. Such a session
    counts whole, so threads the filter leaves out count in both figures. The session figure includes session
    runtime and is rounded once, so it differs from the thread sum; it is the
    authoritative cost. Keys: `session_*` for the sessions' own figures,
    `threads_*` for the sums over their threads.
    """
    session_ids = thread_list_filtered(thread_filter=thread_filter).values("session_id")

    sessions = Session.objects.filter(id__in=session_ids).aggregate(
        session_count=Count("id"),
        session_usage_unknown_count=Count("id", filter=USAGE_UNKNOWN),
        session_cost_unknown_count=Count("id", filter=~COST_KNOWN),
        session_list_cost_amount=Sum("list_cost_amount", filter=COST_KNOWN),
        session_active_seconds=Sum("active_seconds"),
        session_total_tokens=Sum(_row_total_tokens(), filter=~USAGE_UNKNOWN),
    )
    threads = Thread.objects.filter(session_id__in=session_ids).aggregate(
        threads_thread_count=Count("id"),
        threads_cost_unknown_count=Count("id", filter=~COST_KNOWN),
        threads_list_cost_amount=Sum("list_cost_amount", filter=COST_KNOWN),
        threads_total_tokens=Sum(_row_total_tokens(), filter=~USAGE_UNKNOWN),
    )
    return {**sessions, **threads}


# ---------------------------------------------------------------------------
# Daily series
# ---------------------------------------------------------------------------


def usage_daily(*, thread_filter: ThreadFilter) -> list[dict]:
    """Return one row of usage sums per UTC day of thread creation, oldest first.

    Days without threads are left out; threads with no creation time are not in
    any day.
    """
    threads = thread_list_filtered(thread_filter=thread_filter).filter(created_at__isnull=False)
    rows = (
        threads.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(**_usage_aggregates())
        .order_by("day")
    )
    return list(rows)


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


def usage_breakdown_rows(*, thread_filter: ThreadFilter, breakdown: str, sort: str = "cost") -> QuerySet:
    """Return a queryset of usage sums grouped by agent, model or session, sorted.

    Each row has `key` (the value to filter the thread list by: an agent id or, for
    agents without one, the agent name; a model id; a session id) next to the sums.
    Agent rows are grouped by key and agent type and add `agent_name`; advisor
    threads have neither id nor name, so they share one row with an empty key. Session rows carry only thread
    sums; `usage_session_figures` adds the sessions' own figures.
    """
    threads = thread_list_filtered(thread_filter=thread_filter)
    if breakdown == "agent":
        rows = (
            threads.annotate(key=Coalesce("agent_id", "agent_name", Value("")))
            .values("key", "agent_type")
            .annotate(agent_name=Max("agent_name"))
        )
    elif breakdown == "model":
        rows = threads.annotate(key=Coalesce("model", Value(""))).values("key")
    elif breakdown == "session":
        rows = threads.annotate(key=Coalesce("session_id", Value(""))).values("key")
    else:
        raise ValueError("Unknown breakdown %r: expected one of %s." % (breakdown, ", ".join(BREAKDOWNS)))

    return rows.annotate(**_usage_aggregates()).order_by(*_breakdown_order(key="key", sort=sort))


def usage_breakdown_page(*, thread_filter: ThreadFilter, breakdown: str, sort: str = "cost") -> dict:
    """Return the first rows of a breakdown and the number of rows in all.

    Session rows also get the sessions' own figures (see `usage_session_figures`).
    """
    rows_queryset = usage_breakdown_rows(thread_filter=thread_filter, breakdown=breakdown, sort=sort)
    rows = list(rows_queryset[:BREAKDOWN_PAGE_ROWS])
    row_count = len(rows) if len(rows) < BREAKDOWN_PAGE_ROWS else rows_queryset.count()

    if breakdown == "session":
        rows = usage_session_figures(rows=rows)
    return {"rows": rows, "row_count": row_count}


def usage_session_figures(*, rows: list[dict]) -> list[dict]:
    """Add each session's own usage and the sum over all its threads to session rows.

    Rows come from the session breakdown (`key` is the session id). Adds `session`
    (the Session, or None when the session has not been synced) and `all_threads`
    (sums over every thread of the session, selected or not). Two queries.
    """
    session_ids = [row["key"] for row in rows]
    sessions = Session.objects.in_bulk(session_ids)
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
    if by == "tokens":
        threads = threads.exclude(USAGE_UNKNOWN).annotate(row_total_tokens=_row_total_tokens())
        order = ["-row_total_tokens", "-id"]
    elif by == "cost":
        threads = threads.filter(COST_KNOWN).annotate(row_total_tokens=_row_total_tokens())
        order = ["-list_cost_amount", "-id"]
    else:
        raise ValueError("Unknown ranking %r: expected tokens or cost." % by)
    return threads.order_by(*order)[:limit]


def usage_top_sessions(*, thread_filter: ThreadFilter, by: str, limit: int = TOP_PAGE_ROWS) -> list[dict]:
    """Return the sessions with the most tokens or cost by their own, authoritative figures.

    Ranks every session that contains at least one selected thread. Each item has
    `session` and `all_threads` (sums over all of the session's threads), so a page
    can show both figures. Three queries.
    """
    session_ids = thread_list_filtered(thread_filter=thread_filter).values("session_id")
    sessions = Session.objects.filter(id__in=session_ids)
    if by == "tokens":
        sessions = sessions.exclude(USAGE_UNKNOWN).annotate(row_total_tokens=_row_total_tokens())
        order = ["-row_total_tokens", "-id"]
    elif by == "cost":
        sessions = sessions.filter(COST_KNOWN).annotate(row_total_tokens=_row_total_tokens())
        order = ["-list_cost_amount", "-id"]
    else:
        raise ValueError("Unknown ranking %r: expected tokens or cost." % by)

    top = list(sessions.order_by(*order)[:limit])
    rows = usage_session_figures(rows=[{"key": session.id} for session in top])
    return rows


# ---------------------------------------------------------------------------
# Thread trees
# ---------------------------------------------------------------------------

# UNION (not UNION ALL) drops pairs already reached, so a parent cycle in bad data
# ends the recursion instead of looping. PostgreSQL and SQLite both run this.
THREAD_TREE_SQL = """
WITH RECURSIVE tree(root_id, id) AS (
    SELECT id, id FROM {table} WHERE id IN ({placeholders})
    UNION
    SELECT tree.root_id, child.id FROM {table} AS child JOIN tree ON child.parent_id = tree.id
)
SELECT
    tree.root_id,
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
FROM tree JOIN {table} AS thread ON thread.id = tree.id
GROUP BY tree.root_id
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

    totals = usage_totals(thread_filter=thread_filter)
    session_totals = usage_session_totals(thread_filter=thread_filter)
    daily = usage_daily(thread_filter=thread_filter)
    breakdown = usage_breakdown_page(
        thread_filter=thread_filter, breakdown=params.breakdown, sort=params.sort
    )
    top_threads_by_tokens = list(usage_top_threads(thread_filter=thread_filter, by="tokens"))
    top_threads_by_cost = list(usage_top_threads(thread_filter=thread_filter, by="cost"))
    thread_trees = thread_tree_usage_many(
        thread_ids=[thread.id for thread in top_threads_by_tokens + top_threads_by_cost]
    )
    top_sessions_by_tokens = usage_top_sessions(thread_filter=thread_filter, by="tokens")
    top_sessions_by_cost = usage_top_sessions(thread_filter=thread_filter, by="cost")

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
