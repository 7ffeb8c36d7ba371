"""Read queries for the pages, the REST API, archive jobs and usage.

Every query reads snapshots only; nothing here calls the API.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.db import connection
from django.db.models import BooleanField, F, Func, Q, QuerySet, Subquery

from threads.filters import ThreadFilter
from threads.models import Session, SyncRun, SyncRunKind, Thread
from threads.models.snapshots import (
    sort_key_datetime,
    sort_key_float,
    sort_key_number,
    sort_key_text,
    sort_key_total_tokens,
)
from threads.pagination import Cursor, KeysetPage, Sort, SortKey, keyset_page


class ColumnInSubquery(Func):
    """`column IN (subquery)`, written `column = ANY(ARRAY(subquery))` on PostgreSQL.

    PostgreSQL runs the ARRAY subquery once and can then read the column's index,
    also inside an OR, where it would otherwise check every row against a hashed
    subquery. Other databases get a plain IN.
    """

    arity = 2
    output_field = BooleanField()

    def as_sql(self, compiler, connection, **extra_context):
        column, subquery = self.source_expressions
        column_sql, column_params = compiler.compile(column)
        subquery_sql, subquery_params = compiler.compile(subquery)
        if connection.vendor == "postgresql":
            return "%s = ANY(ARRAY%s)" % (column_sql, subquery_sql), (*column_params, *subquery_params)
        return "%s IN %s" % (column_sql, subquery_sql), (*column_params, *subquery_params)


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _snapshot_filter_q(thread_filter: ThreadFilter) -> Q:
    """Return the conditions that sessions and threads share."""
    condition = Q()
    if thread_filter.statuses:
        condition &= Q(status__in=thread_filter.statuses)
    if thread_filter.agent:
        condition &= Q(agent_id=thread_filter.agent) | Q(agent_name=thread_filter.agent)
    if thread_filter.model:
        condition &= Q(model=thread_filter.model)
    if thread_filter.created_from:
        condition &= Q(created_at__gte=_day_start(thread_filter.created_from))
    if thread_filter.created_to:
        condition &= Q(created_at__lt=_day_start(thread_filter.created_to + timedelta(days=1)))
    if thread_filter.archived == "no":
        condition &= Q(archived_at__isnull=True)
    elif thread_filter.archived == "yes":
        condition &= Q(archived_at__isnull=False)
    return condition


def session_list_filtered(*, thread_filter: ThreadFilter) -> QuerySet[Session]:
    """Return the sessions the filter selects, unordered."""
    condition = _snapshot_filter_q(thread_filter)
    if thread_filter.q:
        condition &= Q(search_text__contains=thread_filter.q.lower())
    return Session.objects.filter(condition)


def thread_list_filtered(*, thread_filter: ThreadFilter) -> QuerySet[Thread]:
    """Return the threads the filter selects, unordered.

    Free text matches the thread's id or agent name, or its session's title, id or
    metadata.
    """
    condition = _snapshot_filter_q(thread_filter)
    if thread_filter.agent_type:
        condition &= Q(agent_type=thread_filter.agent_type)
    if thread_filter.kind == "primary":
        condition &= Q(is_primary=True)
    elif thread_filter.kind == "child":
        condition &= Q(is_primary=False)
    if thread_filter.session:
        condition &= Q(session_id=thread_filter.session)
    if thread_filter.q:
        needle = thread_filter.q.lower()
        matching_sessions = Session.objects.filter(search_text__contains=needle).order_by().values("id")
        condition &= (
            Q(id__icontains=needle)
            | Q(agent_name__icontains=needle)
            | Q(ColumnInSubquery(F("session_id"), Subquery(matching_sessions)))
        )
    return Thread.objects.filter(condition)


# ---------------------------------------------------------------------------
# Sorted, keyset-paginated lists for the browse pages
# ---------------------------------------------------------------------------

# Sort keys are never null, so keyset comparisons see every row: a missing value
# sorts below every real one. The key expressions come from the models, whose
# indexes on (key, id) let PostgreSQL walk any page of any sort without a full scan.
DEFAULT_SORT = "-created"
MAX_CHOICES = 500


def _datetime_key(column: str):
    return lambda: sort_key_datetime(column)


def _number_key(column: str):
    return lambda: sort_key_number(column)


def _float_key(column: str):
    return lambda: sort_key_float(column)


def _text_key(column: str):
    return lambda: sort_key_text(column)


def _status_key():
    return F("status")


SESSION_SORT_KEYS = {
    key.name: key
    for key in [
        SortKey("title", "Title", _text_key("title"), "text"),
        SortKey("agent", "Agent", _text_key("agent_name"), "text"),
        SortKey("status", "Status", _status_key, "text"),
        SortKey("created", "Created", _datetime_key("created_at"), "datetime"),
        SortKey("updated", "Updated", _datetime_key("updated_at"), "datetime"),
        SortKey("threads", "Threads", lambda: F("thread_count"), "number"),
        SortKey("tokens", "Tokens", sort_key_total_tokens, "number"),
        SortKey("cost", "List cost", _number_key("list_cost_amount"), "number"),
        SortKey("archived", "Archived", _datetime_key("archived_at"), "datetime"),
    ]
}

THREAD_SORT_KEYS = {
    key.name: key
    for key in [
        SortKey("agent", "Agent", _text_key("agent_name"), "text"),
        SortKey("model", "Model", _text_key("model"), "text"),
        SortKey("status", "Status", _status_key, "text"),
        SortKey("created", "Created", _datetime_key("created_at"), "datetime"),
        SortKey("updated", "Updated", _datetime_key("updated_at"), "datetime"),
        SortKey("tokens", "Tokens", sort_key_total_tokens, "number"),
        SortKey("cost", "List cost", _number_key("list_cost_amount"), "number"),
        SortKey("active", "Active", _float_key("active_seconds"), "number"),
        SortKey("archived", "Archived", _datetime_key("archived_at"), "datetime"),
    ]
}


def session_list_page(
    *, thread_filter: ThreadFilter, sort: Sort, cursor: Cursor | None, page_size: int
) -> KeysetPage:
    """Return one page of the sessions the filter selects, in `sort` order (one query)."""
    queryset = session_list_filtered(thread_filter=thread_filter)
    return keyset_page(queryset=queryset, sort=sort, cursor=cursor, page_size=page_size)


def thread_list_page(
    *, thread_filter: ThreadFilter, sort: Sort, cursor: Cursor | None, page_size: int
) -> KeysetPage:
    """Return one page of the threads the filter selects, with their sessions (one query)."""
    queryset = thread_list_filtered(thread_filter=thread_filter).select_related("session")
    return keyset_page(queryset=queryset, sort=sort, cursor=cursor, page_size=page_size)


def queryset_count_capped(*, queryset: QuerySet, cap: int) -> int:
    """Count the rows of `queryset`, stopping at `cap` + 1 so a large table costs little.

    A result above `cap` means "more than cap".
    """
    return queryset.order_by()[: cap + 1].count()


# Distinct values by a loose index scan: each step reads from the index the smallest
# value above the last one, so the cost grows with the number of distinct values,
# not with the table. NOTE: PostgreSQL 15 has no skip scan, and a plain DISTINCT
# reads every row. Both queries run on PostgreSQL and SQLite. The agent query walks
# (name, id) pairs with null as '', the key of the *_agent_choice indexes.
MODEL_CHOICES_SQL = """
WITH RECURSIVE found(value) AS (
    SELECT MIN(model) FROM {table} WHERE model > ''
    UNION ALL
    SELECT (SELECT MIN(model) FROM {table} WHERE model > found.value) FROM found WHERE found.value IS NOT NULL
)
SELECT value FROM found WHERE value IS NOT NULL LIMIT %s
"""
_AGENT_NAME = "COALESCE(agent_name, '')"
_AGENT_ID = "COALESCE(agent_id, '')"
# The smallest id above the last one under the same name, and the smallest name above it.
_NEXT_ID_SAME_NAME = (
    "(SELECT MIN({agent_id}) FROM {table} WHERE {agent_name} = found.name AND {agent_id} > found.agent_id)"
)
_NEXT_NAME = "(SELECT MIN({agent_name}) FROM {table} WHERE {agent_name} > found.name)"
AGENT_CHOICES_SQL = """
WITH RECURSIVE found(name, agent_id) AS (
    SELECT first.name, (SELECT MIN({agent_id}) FROM {table} WHERE {agent_name} = first.name)
    FROM (SELECT MIN({agent_name}) AS name FROM {table}) AS first
    UNION ALL
    SELECT
        CASE WHEN %(next_id)s IS NOT NULL THEN found.name ELSE %(next_name)s END,
        COALESCE(%(next_id)s, (SELECT MIN({agent_id}) FROM {table} WHERE {agent_name} = %(next_name)s))
    FROM found WHERE found.name IS NOT NULL
)
SELECT name, agent_id FROM found WHERE name IS NOT NULL AND NOT (name = '' AND agent_id = '') LIMIT %%s
""" % {"next_id": _NEXT_ID_SAME_NAME, "next_name": _NEXT_NAME}


def _distinct_rows(sql: str, *, model: type[Session] | type[Thread]) -> list[tuple]:
    statement = sql.format(
        table=connection.ops.quote_name(model._meta.db_table), agent_name=_AGENT_NAME, agent_id=_AGENT_ID
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [MAX_CHOICES])
        return cursor.fetchall()


def agent_choices(*, model: type[Session] | type[Thread]) -> list[tuple[str, str]]:
    """Return (filter value, label) pairs for the agents seen in snapshots of `model`.

    The value is the agent id for saved agents and the name for inline agents, which
    have no id; both are what `ThreadFilter.agent` matches. Sorted by name, agents
    without a name last; at most MAX_CHOICES pairs.
    """
    pairs = _distinct_rows(AGENT_CHOICES_SQL, model=model)
    pairs.sort(key=lambda pair: (pair[0] == "", pair[0], pair[1]))

    choices = []
    for agent_name, agent_id in pairs:
        if agent_id:
            label = "%s (%s)" % (agent_name, agent_id) if agent_name else agent_id
            choices.append((agent_id, label))
        else:
            choices.append((agent_name, "%s (inline)" % agent_name))
    return choices


def model_choices(*, model: type[Session] | type[Thread]) -> list[str]:
    """Return the distinct model ids seen in snapshots of `model`, sorted; at most MAX_CHOICES."""
    return [value for (value,) in _distinct_rows(MODEL_CHOICES_SQL, model=model)]


# ---------------------------------------------------------------------------
# Detail pages
# ---------------------------------------------------------------------------


def session_get(*, session_id: str) -> Session:
    """Return the session snapshot; raises Session.DoesNotExist for an unknown id."""
    return Session.objects.get(id=session_id)


def thread_get(*, session_id: str, thread_id: str) -> Thread:
    """Return the thread snapshot with its session and parent loaded.

    Raises Thread.DoesNotExist when the id is unknown or belongs to another session.
    """
    return Thread.objects.select_related("session", "parent").get(id=thread_id, session_id=session_id)


def thread_children(*, thread: Thread) -> list[Thread]:
    return list(Thread.objects.filter(parent_id=thread.id).order_by("created_at", "id"))


@dataclass(frozen=True)
class ThreadTreeRow:
    thread: Thread
    depth: int


@dataclass(frozen=True)
class ThreadTree:
    """A session's threads in depth-first order, and their summed usage.

    Sums cover the threads whose usage is known; `*_known` says how many that was.
    """

    rows: list[ThreadTreeRow]
    total_tokens: int | None
    list_cost_amount: int | None
    list_cost_known: int
    active_seconds: float | None


def session_thread_tree(*, session: Session) -> ThreadTree:
    """Return the session's thread tree, built from one query.

    Roots are the primary thread and any thread whose parent is not stored (the API no
    longer returns it, or it was not synced yet), so no thread is left out. A parent
    chain that loops is cut where it returns to a thread already placed.
    """
    threads = list(Thread.objects.filter(session_id=session.id).order_by("created_at", "id"))

    by_id = {thread.id: thread for thread in threads}
    children: dict[str, list[Thread]] = {}
    roots: list[Thread] = []
    for thread in threads:
        if thread.parent_id and thread.parent_id in by_id and thread.parent_id != thread.id:
            children.setdefault(thread.parent_id, []).append(thread)
        else:
            roots.append(thread)
    roots.sort(key=lambda thread: (not thread.is_primary,))

    rows: list[ThreadTreeRow] = []
    placed: set[str] = set()
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        thread, depth = stack.pop()
        if thread.id in placed:
            continue
        placed.add(thread.id)
        rows.append(ThreadTreeRow(thread=thread, depth=depth))
        for child in reversed(children.get(thread.id, [])):
            stack.append((child, depth + 1))
    # Threads only reachable through a loop get no root above; list them flat.
    rows.extend(ThreadTreeRow(thread=thread, depth=0) for thread in threads if thread.id not in placed)

    return ThreadTree(
        rows=rows,
        total_tokens=_sum_known(thread.total_tokens for thread in threads),
        list_cost_amount=_sum_known(thread.list_cost_amount for thread in threads),
        list_cost_known=sum(1 for thread in threads if thread.list_cost_amount is not None),
        active_seconds=_sum_known(thread.active_seconds for thread in threads),
    )


def _sum_known(values):
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def thread_refresh_run_finished(*, thread_id: str, since: datetime) -> SyncRun | None:
    """Return the newest finished one-thread sync run for the thread started at or after `since`."""
    return (
        SyncRun.objects.filter(
            kind=SyncRunKind.THREAD, target_id=thread_id, started_at__gte=since, finished_at__isnull=False
        )
        .order_by("-started_at")
        .first()
    )
