"""Session-day usage rollups: session totals equal direct sums, and writers keep the rows in step."""

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ThreadFactory
from tests.threads.test_usage_rollup import TODAY, expected_sums, threads_seed, threads_selected
from threads.filters import ThreadFilter
from threads.models import Session, Thread, UsageSessionDayRollup
from threads.selectors_usage import TOKEN_FIELDS, usage_session_totals
from threads.services.snapshot_parse import ParsedSnapshot
from threads.services.snapshot_write import SnapshotCandidate, snapshot_batch_write
from threads.services.usage_rollup import (
    usage_rollup_dirty_days,
    usage_rollup_mark_dirty,
    usage_rollup_rebuild,
    usage_rollup_refresh_dirty,
)

SESSION_DAY_TABLE = UsageSessionDayRollup._meta.db_table


def date_filters() -> list[ThreadFilter]:
    """Return filters by creation date alone, the ones the session-day rollups serve."""
    start = (TODAY - timedelta(days=6)).date()
    end = (TODAY - timedelta(days=1)).date()
    return [
        ThreadFilter(archived="all"),
        ThreadFilter(archived="all", created_from=start),
        ThreadFilter(archived="all", created_to=end),
        ThreadFilter(archived="all", created_from=start, created_to=end),
        ThreadFilter(archived="all", created_from=TODAY.date() + timedelta(days=30)),
    ]


def expected_session_totals(thread_filter: ThreadFilter) -> dict:
    """Compute `usage_session_totals` in Python from the selected threads and their sessions."""
    session_ids = {thread.session_id for thread in threads_selected(thread_filter)}
    all_threads = expected_sums(
        [thread for thread in Thread.objects.all() if thread.session_id in session_ids]
    )
    sessions = list(Session.objects.filter(id__in=session_ids))
    return {
        "selected_session_count": len(session_ids),
        "session_count": len(sessions),
        "session_list_cost_amount": sum(session.list_cost_amount for session in sessions)
        if sessions
        else None,
        "threads_thread_count": all_threads["thread_count"],
        "threads_cost_unknown_count": all_threads["cost_unknown_count"],
        "threads_list_cost_amount": all_threads["list_cost_amount"],
        "threads_total_tokens": all_threads["total_tokens"],
    }


def session_totals_of(thread_filter: ThreadFilter) -> dict:
    totals = usage_session_totals(thread_filter=thread_filter)
    return {name: totals[name] for name in expected_session_totals(ThreadFilter(archived="all"))}


def session_day_rows() -> list[tuple]:
    columns = [
        field.attname for field in UsageSessionDayRollup._meta.concrete_fields if field.attname != "id"
    ]
    return sorted(UsageSessionDayRollup.objects.values_list(*columns), key=repr)


def expected_session_day_rows() -> list[tuple]:
    """Compute the session-day rollup rows in Python from the thread table."""
    groups: dict[tuple, list[Thread]] = {}
    for thread in Thread.objects.filter(created_at__isnull=False):
        groups.setdefault((thread.created_at.astimezone(UTC).date(), thread.session_id), []).append(thread)
    rows = []
    for (day, session_id), threads in groups.items():
        sums = expected_sums(threads)
        rows.append(
            (
                day,
                session_id,
                sums["thread_count"],
                sums["cost_unknown_count"],
                sums["total_tokens"],
                sums["list_cost_amount"],
            )
        )
    return sorted(rows, key=repr)


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [11, 12])
def test_session_day_rebuild_equals_python_sums(seed):
    threads_seed(seed=seed)

    usage_rollup_rebuild()

    assert session_day_rows() == expected_session_day_rows()


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [13, 14, 15])
def test_session_totals_exact_from_rollups(seed):
    threads_seed(seed=seed)
    usage_rollup_rebuild()

    for thread_filter in date_filters():
        assert session_totals_of(thread_filter) == expected_session_totals(thread_filter), thread_filter


@pytest.mark.django_db
def test_session_totals_exact_while_days_dirty():
    threads_seed(seed=16)
    usage_rollup_rebuild()
    # Writes that bypass the ORM's signals, as a batched writer's would: they move
    # threads to another day and change their figures before any refresh.
    moved = Thread.objects.filter(created_at__isnull=False).order_by("id")[:10]
    days = {thread.created_at.astimezone(UTC).date() for thread in moved}
    Thread.objects.filter(pk__in=[thread.pk for thread in moved]).update(
        created_at=TODAY - timedelta(days=30), list_cost_amount=7, list_cost_currency="USD", input_tokens=9
    )
    usage_rollup_mark_dirty(days=[*days, (TODAY - timedelta(days=30)).date()])

    for thread_filter in date_filters():
        assert session_totals_of(thread_filter) == expected_session_totals(thread_filter), thread_filter
    usage_rollup_refresh_dirty()
    assert session_day_rows() == expected_session_day_rows()
    for thread_filter in date_filters():
        assert session_totals_of(thread_filter) == expected_session_totals(thread_filter), thread_filter


@pytest.mark.django_db
def test_session_totals_read_rollups_for_date_filter():
    threads_seed(seed=17)
    usage_rollup_rebuild()

    with CaptureQueriesContext(connection) as queries:
        usage_session_totals(thread_filter=ThreadFilter(archived="all", created_from=TODAY.date()))

    assert SESSION_DAY_TABLE in queries.captured_queries[-1]["sql"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "thread_filter",
    [
        ThreadFilter(archived="no"),
        ThreadFilter(archived="all", statuses=("idle",)),
        ThreadFilter(archived="all", agent="agent_a"),
        ThreadFilter(archived="all", kind="child"),
        ThreadFilter(archived="all", q="0"),
    ],
    ids=["archived", "status", "agent", "kind", "free-text"],
)
def test_session_totals_other_filters_read_threads(thread_filter):
    threads_seed(seed=18)
    usage_rollup_rebuild()

    with CaptureQueriesContext(connection) as queries:
        totals = usage_session_totals(thread_filter=thread_filter)

    assert not any(SESSION_DAY_TABLE in query["sql"] for query in queries.captured_queries)
    assert {name: totals[name] for name in expected_session_totals(thread_filter)} == expected_session_totals(
        thread_filter
    )


@pytest.mark.django_db
def test_snapshot_write_then_refresh_updates_session_days():
    thread = ThreadFactory(
        created_at=TODAY - timedelta(days=3), list_cost_amount=10, list_cost_currency="USD"
    )
    usage_rollup_refresh_dirty()
    values = {
        field.attname: getattr(thread, field.attname)
        for field in Thread._meta.concrete_fields
        if field.attname not in ("id", "fetched_at", "parse_error", "gone_at")
    }
    values.update(created_at=TODAY - timedelta(days=7), list_cost_amount=25, raw_sha256="1" * 64)
    snapshot = ParsedSnapshot(id=thread.id, values=values)
    candidate = SnapshotCandidate(id=thread.id, raw_sha256="1" * 64, parse=lambda: snapshot)

    snapshot_batch_write(model=Thread, candidates=[candidate], fetched_at=TODAY)
    usage_rollup_refresh_dirty()

    assert usage_rollup_dirty_days() == []
    assert session_day_rows() == [
        ((TODAY - timedelta(days=7)).date(), thread.session_id, 1, 0, 1100, 25),
    ]


@pytest.mark.django_db
def test_session_day_sums_unknown_as_null():
    ThreadFactory(
        created_at=TODAY,
        list_cost_amount=None,
        list_cost_currency=None,
        **{name: None for name in TOKEN_FIELDS},
    )

    usage_rollup_refresh_dirty()

    assert session_day_rows() == expected_session_day_rows()
    assert UsageSessionDayRollup.objects.get().total_tokens is None
