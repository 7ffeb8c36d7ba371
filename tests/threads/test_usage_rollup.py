"""Daily usage rollups: equal to direct sums for every filter, marked and refreshed by writers."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from tests.factories import SessionFactory, ThreadFactory
from tests.threads.archive_helpers import job_wait_finished, snapshots_seed
from threads.filters import ThreadFilter
from threads.models import Thread, UsageDailyRollup, UsageRollupDirtyDay
from threads.selectors_usage import (
    TOKEN_FIELDS,
    usage_breakdown_rows,
    usage_daily,
    usage_overview,
    usage_params_from_query,
    usage_totals,
)
from threads.services.archive_jobs import archive_job_create, archive_selection_build
from threads.services.snapshot_parse import ParsedSnapshot
from threads.services.snapshot_write import SnapshotCandidate, snapshot_batch_write
from threads.services.sync import sync_full
from threads.services.usage_rollup import (
    usage_rollup_dirty_days,
    usage_rollup_mark_dirty,
    usage_rollup_rebuild,
    usage_rollup_refresh_dirty,
)

TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
ROLLUP_TABLE = UsageDailyRollup._meta.db_table
AGENTS = [("agent_a", "Alpha"), ("agent_b", "Beta"), (None, "Nameless"), (None, None), ("agent_c", None)]
MODELS = ["claude-opus-4-5", "claude-sonnet-4-5", None]
STATUSES = ["idle", "running", "terminated", "rescheduling"]


def threads_seed(*, seed: int, count: int = 120) -> None:
    """Create threads over 12 days with every kind of key value and unknown figure."""
    rng = random.Random(seed)
    sessions = [SessionFactory(created_at=TODAY - timedelta(days=index)) for index in range(8)]
    primaries = {}
    for index in range(count):
        session = rng.choice(sessions)
        agent_id, agent_name = rng.choice(AGENTS)
        created_at = TODAY - timedelta(days=rng.randrange(12), hours=rng.randrange(-11, 11))
        if rng.random() < 0.04:
            created_at = None
        usage_known = rng.random() > 0.15
        tokens = {name: rng.randrange(0, 5000) if usage_known else None for name in TOKEN_FIELDS}
        if usage_known and rng.random() < 0.2:
            tokens["cache_creation_1h_input_tokens"] = None
        currency = rng.choice(["USD", "USD", "USD", None, "", "EUR"])
        cost = rng.randrange(0, 900) if usage_known and rng.random() > 0.2 else None
        parent = primaries.get(session.id)
        thread = ThreadFactory(
            id="sthr_rollup_%d_%04d" % (seed, index),
            session=session,
            parent=parent,
            is_primary=parent is None,
            agent_type=rng.choice(["agent", "agent", "advisor", "inline", ""]),
            status=rng.choice(STATUSES),
            created_at=created_at,
            archived_at=TODAY if rng.random() < 0.3 else None,
            agent_id=agent_id,
            agent_name=agent_name,
            model=rng.choice(MODELS),
            list_cost_amount=cost,
            list_cost_currency=currency if cost is not None else None,
            active_seconds=round(rng.uniform(0, 100), 3) if usage_known else None,
            **tokens,
        )
        primaries.setdefault(session.id, thread)


def filters_every_kind() -> list[ThreadFilter]:
    start = (TODAY - timedelta(days=6)).date()
    end = (TODAY - timedelta(days=1)).date()
    return [
        ThreadFilter(archived="all"),
        ThreadFilter(archived="no"),
        ThreadFilter(archived="yes"),
        ThreadFilter(archived="all", created_from=start),
        ThreadFilter(archived="all", created_to=end),
        ThreadFilter(archived="all", created_from=start, created_to=end),
        ThreadFilter(archived="all", statuses=("idle", "rescheduling")),
        ThreadFilter(archived="all", agent="agent_a"),
        ThreadFilter(archived="all", agent="Nameless"),
        ThreadFilter(archived="all", agent_type="advisor"),
        ThreadFilter(archived="all", model="claude-opus-4-5"),
        ThreadFilter(archived="all", kind="primary"),
        ThreadFilter(archived="no", kind="child", statuses=("idle",), created_from=start),
    ]


def _thread_figures(thread: Thread) -> dict:
    usage_unknown = all(getattr(thread, name) is None for name in TOKEN_FIELDS)
    cost_known = thread.list_cost_amount is not None and thread.list_cost_currency in (None, "", "USD")
    return {
        **{name: getattr(thread, name) for name in TOKEN_FIELDS},
        "usage_unknown": usage_unknown,
        "cost_known": cost_known,
        "list_cost_amount": thread.list_cost_amount,
        "active_seconds": thread.active_seconds,
    }


def expected_sums(threads: list[Thread]) -> dict:
    """Add up figures in Python, with None for a sum that no thread reported."""
    sums = {"thread_count": len(threads), "usage_unknown_count": 0, "cost_unknown_count": 0}
    for name in (*TOKEN_FIELDS, "total_tokens", "list_cost_amount", "active_seconds"):
        sums[name] = None
    for thread in threads:
        figures = _thread_figures(thread)
        for name in (*TOKEN_FIELDS, "active_seconds"):
            if figures[name] is not None:
                sums[name] = (sums[name] or 0) + figures[name]
        if figures["usage_unknown"]:
            sums["usage_unknown_count"] += 1
        else:
            total = sum(figures[name] or 0 for name in TOKEN_FIELDS)
            sums["total_tokens"] = (sums["total_tokens"] or 0) + total
        if figures["cost_known"]:
            sums["list_cost_amount"] = (sums["list_cost_amount"] or 0) + figures["list_cost_amount"]
        else:
            sums["cost_unknown_count"] += 1
    return sums


def figures_of(row: dict) -> dict:
    """Return the sums of a usage row, with active seconds rounded against float reordering."""
    names = ("thread_count", "usage_unknown_count", "cost_unknown_count", *TOKEN_FIELDS, "total_tokens")
    figures = {name: row[name] for name in (*names, "list_cost_amount")}
    figures["active_seconds"] = None if row["active_seconds"] is None else round(row["active_seconds"], 6)
    return figures


def threads_selected(thread_filter: ThreadFilter) -> list[Thread]:
    """Return the threads a filter selects, chosen in Python, not with the selectors' queries."""
    selected = []
    for thread in Thread.objects.all():
        day = thread.created_at.astimezone(UTC).date() if thread.created_at else None
        if thread_filter.statuses and thread.status not in thread_filter.statuses:
            continue
        if thread_filter.agent and thread_filter.agent not in (thread.agent_id, thread.agent_name):
            continue
        if thread_filter.agent_type and thread.agent_type != thread_filter.agent_type:
            continue
        if thread_filter.model and thread.model != thread_filter.model:
            continue
        if thread_filter.created_from and (day is None or day < thread_filter.created_from):
            continue
        if thread_filter.created_to and (day is None or day > thread_filter.created_to):
            continue
        if thread_filter.archived == "no" and thread.archived_at is not None:
            continue
        if thread_filter.archived == "yes" and thread.archived_at is None:
            continue
        if thread_filter.kind == "primary" and not thread.is_primary:
            continue
        if thread_filter.kind == "child" and thread.is_primary:
            continue
        if thread_filter.session and thread.session_id != thread_filter.session:
            continue
        selected.append(thread)
    return selected


def expected_groups(threads: list[Thread], key) -> dict:
    groups = defaultdict(list)
    for thread in threads:
        groups[key(thread)].append(thread)
    return {group: figures_of(expected_sums(members)) for group, members in groups.items()}


def assert_figures_exact(thread_filter: ThreadFilter) -> None:
    """Check totals, the daily series and the agent and model breakdowns against Python sums."""
    threads = threads_selected(thread_filter)

    totals = usage_totals(thread_filter=thread_filter)
    assert figures_of(totals) == figures_of(expected_sums(threads)), thread_filter
    assert totals["session_count"] == len({thread.session_id for thread in threads})

    daily = {row["day"]: figures_of(row) for row in usage_daily(thread_filter=thread_filter)}
    dated = [thread for thread in threads if thread.created_at is not None]
    assert daily == expected_groups(dated, lambda thread: thread.created_at.astimezone(UTC).date())

    by_model = usage_breakdown_rows(thread_filter=thread_filter, breakdown="model")
    assert {row["key"]: figures_of(row) for row in by_model} == expected_groups(
        threads, lambda thread: thread.model or ""
    )

    by_agent = usage_breakdown_rows(thread_filter=thread_filter, breakdown="agent")
    assert {(row["key"], row["agent_type"]): figures_of(row) for row in by_agent} == expected_groups(
        threads, lambda thread: (thread.agent_id or thread.agent_name or "", thread.agent_type)
    )


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollup_figures_exact_for_every_filter(seed):
    threads_seed(seed=seed)
    usage_rollup_rebuild()

    assert usage_rollup_dirty_days() == []
    for thread_filter in filters_every_kind():
        assert_figures_exact(thread_filter)


@pytest.mark.postgres
@pytest.mark.django_db
def test_rollup_stale_days_read_exact_while_dirty():
    threads_seed(seed=4)
    usage_rollup_rebuild()
    # Writes that bypass the ORM's signals, as a batched writer's would.
    moved = Thread.objects.filter(created_at__isnull=False).order_by("id")[:10]
    days = {thread.created_at.astimezone(UTC).date() for thread in moved}
    Thread.objects.filter(pk__in=[thread.pk for thread in moved]).update(
        created_at=TODAY - timedelta(days=30), status="terminated", input_tokens=7
    )
    usage_rollup_mark_dirty(days=[*days, (TODAY - timedelta(days=30)).date()])

    for thread_filter in filters_every_kind():
        assert_figures_exact(thread_filter)
    assert usage_rollup_refresh_dirty() == len(days) + 1
    assert usage_rollup_dirty_days() == []
    for thread_filter in filters_every_kind():
        assert_figures_exact(thread_filter)


@pytest.mark.postgres
@pytest.mark.django_db
def test_rollup_rebuild_equals_refresh_of_every_day():
    threads_seed(seed=5)
    usage_rollup_rebuild()
    rebuilt = sorted(UsageDailyRollup.objects.values_list(*_rollup_columns()), key=repr)

    days = set(UsageDailyRollup.objects.values_list("day", flat=True))
    UsageDailyRollup.objects.all().delete()
    usage_rollup_mark_dirty(days=days)
    usage_rollup_refresh_dirty()

    assert sorted(UsageDailyRollup.objects.values_list(*_rollup_columns()), key=repr) == rebuilt


def _rollup_columns() -> list[str]:
    return [field.attname for field in UsageDailyRollup._meta.concrete_fields if field.attname != "id"]


@pytest.mark.django_db
def test_factory_thread_marks_its_day():
    thread = ThreadFactory(created_at=TODAY - timedelta(days=3))

    assert usage_rollup_dirty_days() == [thread.created_at.date()]


@pytest.mark.django_db
def test_thread_save_marks_old_and_new_day():
    thread = ThreadFactory(created_at=TODAY - timedelta(days=3))
    usage_rollup_refresh_dirty()

    thread.created_at = TODAY - timedelta(days=5)
    thread.save()

    assert usage_rollup_dirty_days() == [
        (TODAY - timedelta(days=5)).date(),
        (TODAY - timedelta(days=3)).date(),
    ]


@pytest.mark.django_db
def test_snapshot_write_marks_old_and_new_day():
    thread = ThreadFactory(created_at=TODAY - timedelta(days=3))
    usage_rollup_refresh_dirty()
    values = {
        field.attname: getattr(thread, field.attname)
        for field in Thread._meta.concrete_fields
        if field.attname not in ("id", "fetched_at", "parse_error", "gone_at")
    }
    values.update(created_at=TODAY - timedelta(days=7), raw_sha256="1" * 64)
    snapshot = ParsedSnapshot(id=thread.id, values=values)
    candidate = SnapshotCandidate(id=thread.id, raw_sha256="1" * 64, parse=lambda: snapshot)

    counts = snapshot_batch_write(model=Thread, candidates=[candidate], fetched_at=TODAY)

    assert counts.updated == 1
    assert usage_rollup_dirty_days() == [
        (TODAY - timedelta(days=7)).date(),
        (TODAY - timedelta(days=3)).date(),
    ]


@pytest.mark.postgres
@pytest.mark.django_db
def test_refresh_skips_when_another_refresh_holds_lock():
    ThreadFactory(created_at=TODAY)
    with connection.cursor() as cursor:
        # A second connection takes the lock, as a concurrent refresh would.
        from django.db import connections

        other = connections.create_connection("default")
        try:
            with other.cursor() as other_cursor:
                other_cursor.execute("SELECT pg_advisory_lock(%s)", [0x7573616765726F6C])
                refreshed = usage_rollup_refresh_dirty()
                other_cursor.execute("SELECT pg_advisory_unlock(%s)", [0x7573616765726F6C])
        finally:
            other.close()
        cursor.execute("SELECT 1")

    assert refreshed == 0
    assert usage_rollup_dirty_days() == [TODAY.date()]


@pytest.mark.postgres
@pytest.mark.django_db
def test_fallback_path_for_free_text_and_session():
    threads_seed(seed=6)
    usage_rollup_rebuild()
    session_id = Thread.objects.order_by("id").first().session_id
    for thread_filter in (
        ThreadFilter(archived="all", session=session_id),
        ThreadFilter(archived="all", q="0"),
    ):
        with CaptureQueriesContext(connection) as queries:
            totals = usage_totals(thread_filter=thread_filter)
            list(usage_breakdown_rows(thread_filter=thread_filter, breakdown="agent"))

        assert not any(ROLLUP_TABLE in query["sql"] for query in queries.captured_queries)
        assert totals["thread_count"] > 0
    assert_figures_exact(ThreadFilter(archived="all", session=session_id))


@pytest.mark.postgres
@pytest.mark.django_db
def test_rollup_path_reads_rollups():
    threads_seed(seed=7)
    usage_rollup_rebuild()
    thread_filter = ThreadFilter(archived="all", created_from=(TODAY - timedelta(days=6)).date())

    with CaptureQueriesContext(connection) as queries:
        usage_totals(thread_filter=thread_filter)

    rollup_queries = [query for query in queries.captured_queries if ROLLUP_TABLE in query["sql"]]
    assert len(rollup_queries) == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_overview_query_count_bounded():
    def count_queries(query: str) -> int:
        params = usage_params_from_query(QueryDict(query), today=TODAY.date())
        with CaptureQueriesContext(connection) as queries:
            usage_overview(params=params)
        return len(queries)

    threads_seed(seed=8, count=20)
    usage_rollup_rebuild()
    few = {query: count_queries(query) for query in ("", "period=all", "q=sthr", "breakdown=session")}
    threads_seed(seed=9, count=150)
    usage_rollup_rebuild()
    many = {query: count_queries(query) for query in few}

    assert many == few
    assert max(many.values()) <= 16


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sync_leaves_rollups_fresh(api_settings):
    run = sync_full()

    assert run.status == "succeeded", run.errors
    assert usage_rollup_dirty_days() == []
    assert (
        sum(UsageDailyRollup.objects.values_list("thread_count", flat=True))
        == Thread.objects.filter(created_at__isnull=False).count()
    )
    assert_figures_exact(ThreadFilter(archived="all"))


@pytest.mark.worker
def test_archive_marks_day_then_refresh_counts_it(api_settings, emulator, celery_worker_factory):
    snapshots_seed()
    assert usage_rollup_dirty_days() == []
    child = Thread.objects.filter(is_primary=False, archived_at__isnull=True, status="idle").order_by("id")
    child = next(
        thread
        for thread in child
        if any(
            state["id"] == thread.id and state["workflow_run_id"] is None
            for state in emulator.state_threads()
        )
    )
    celery_worker_factory(concurrency=2)

    selection = archive_selection_build(scope="selected", thread_ids=[child.id])
    job = job_wait_finished(archive_job_create(selection=selection, interrupt_running=False).pk, timeout=90)

    child.refresh_from_db()
    assert job.status == "finished"
    assert child.archived_at is not None
    assert usage_rollup_dirty_days() == [child.created_at.astimezone(UTC).date()]
    assert UsageRollupDirtyDay.objects.count() == 1
    assert usage_rollup_refresh_dirty() == 1
    assert_figures_exact(ThreadFilter(archived="yes"))
