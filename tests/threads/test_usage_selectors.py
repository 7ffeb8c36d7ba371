"""Usage selectors: thread trees, breakdown keys, ordering of unknowns."""

from datetime import UTC, date, datetime

import pytest
from django.http import QueryDict

from tests.factories import SessionFactory, ThreadFactory
from threads.filters import ThreadFilter
from threads.selectors_usage import (
    thread_tree_usage,
    thread_tree_usage_many,
    usage_breakdown_rows,
    usage_params_from_query,
    usage_top_threads,
)

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
ALL = ThreadFilter(archived="all")


def test_thread_tree_usage_sums_every_depth():
    session = SessionFactory()
    root = ThreadFactory(session=session, input_tokens=1, list_cost_amount=100)
    child = ThreadFactory(session=session, parent=root, input_tokens=10, list_cost_amount=20)
    grandchild = ThreadFactory(session=session, parent=child, input_tokens=100, list_cost_amount=3)
    ThreadFactory(session=session, parent=grandchild, input_tokens=1000, list_cost_amount=None)
    ThreadFactory(session=session, input_tokens=5000)

    tree = thread_tree_usage(thread_id=root.id)

    assert tree.thread_count == 4
    assert tree.input_tokens == 1111
    assert tree.list_cost_amount == 123
    assert tree.cost_unknown_count == 1
    assert str(tree.list_cost) == "1.23"


def test_thread_tree_usage_of_subtree():
    session = SessionFactory()
    root = ThreadFactory(session=session, input_tokens=1)
    child = ThreadFactory(session=session, parent=root, input_tokens=10)
    ThreadFactory(session=session, parent=child, input_tokens=100)

    assert thread_tree_usage(thread_id=child.id).input_tokens == 110


def test_thread_tree_usage_survives_cycle():
    session = SessionFactory()
    first = ThreadFactory(session=session, input_tokens=1)
    second = ThreadFactory(session=session, parent=first, input_tokens=10)
    first.parent = second
    first.save()

    tree = thread_tree_usage(thread_id=first.id)

    assert tree.thread_count == 2
    assert tree.input_tokens == 11


def test_thread_tree_usage_unknown_thread():
    tree = thread_tree_usage(thread_id="sthr_missing")

    assert tree.thread_count == 0
    assert tree.input_tokens is None
    assert tree.list_cost is None


def test_thread_tree_usage_many_one_query(django_assert_num_queries):
    session = SessionFactory()
    roots = [ThreadFactory(session=session, list_cost_amount=10) for _ in range(3)]
    for root in roots:
        ThreadFactory(session=session, parent=root, list_cost_amount=1)

    with django_assert_num_queries(1):
        trees = thread_tree_usage_many(thread_ids=[root.id for root in roots])

    assert [trees[root.id].list_cost_amount for root in roots] == [11, 11, 11]


def test_breakdown_agent_key_falls_back_to_name():
    session = SessionFactory()
    ThreadFactory(session=session, agent_id=None, agent_name="inline-planner", agent_type="inline")
    ThreadFactory(session=session, agent_id=None, agent_name=None, agent_type="advisor")

    rows = list(usage_breakdown_rows(thread_filter=ALL, breakdown="agent", sort="name"))

    assert [(row["key"], row["agent_type"]) for row in rows] == [
        ("", "advisor"),
        ("inline-planner", "inline"),
    ]


def test_breakdown_cost_sort_puts_unknown_last():
    session = SessionFactory()
    ThreadFactory(session=session, model="unknown-cost", list_cost_amount=None, list_cost_currency=None)
    ThreadFactory(session=session, model="cheap", list_cost_amount=1)

    rows = list(usage_breakdown_rows(thread_filter=ALL, breakdown="model", sort="cost"))

    assert [row["key"] for row in rows] == ["cheap", "unknown-cost"]


def test_non_usd_cost_counted_unknown():
    session = SessionFactory()
    ThreadFactory(session=session, model="m", list_cost_amount=100, list_cost_currency="EUR")
    ThreadFactory(session=session, model="m", list_cost_amount=7)

    [row] = usage_breakdown_rows(thread_filter=ALL, breakdown="model")

    assert row["list_cost_amount"] == 7
    assert row["cost_unknown_count"] == 1


def test_top_threads_leave_out_unknown():
    session = SessionFactory()
    ThreadFactory(session=session, list_cost_amount=None, list_cost_currency=None)
    known = ThreadFactory(session=session, list_cost_amount=1)

    assert list(usage_top_threads(thread_filter=ALL, by="cost")) == [known]


def test_params_period_resolves_dates():
    params = usage_params_from_query(QueryDict("period=7d"), today=date(2026, 3, 10))

    assert params.thread_filter.created_from == date(2026, 3, 4)
    assert params.thread_filter.created_to == date(2026, 3, 10)
    assert params.thread_filter.archived == "all"


def test_params_bad_values_fall_back():
    params = usage_params_from_query(
        QueryDict("period=1y&breakdown=x&sort=y&chart=z&archived=no"), today=date(2026, 3, 10)
    )

    assert params.period == "30d"
    assert params.breakdown == "agent"
    assert params.sort == "cost"
    assert params.chart == "tokens"
    assert params.thread_filter.archived == "no"
