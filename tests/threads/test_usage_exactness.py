"""Every usage figure equals sums computed from the emulator's own data.

The dashboard's side is a full sync over HTTP into PostgreSQL followed by the usage
selectors. The expected side reads the emulator's ground truth (`state_threads`,
`state_sessions`) and, for the agent and model of each thread, the emulator's thread
list over plain HTTP, and adds up in Python without any dashboard code.
"""

import json
import urllib.request
from collections import defaultdict

import pytest
from django.http import QueryDict

from threads.selectors_usage import (
    thread_tree_usage_many,
    usage_breakdown_rows,
    usage_daily,
    usage_params_from_query,
    usage_session_figures,
    usage_session_totals,
    usage_totals,
)
from threads.services.sync import sync_full

BETA_HEADER = "managed-agents-2026-04-01"
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
)


def emulator_threads_listed(emulator, session_id: str) -> list[dict]:
    request = urllib.request.Request(
        "%s/v1/sessions/%s/threads?limit=1000" % (emulator.base_url, session_id),
        headers={
            "x-api-key": emulator.api_key,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": BETA_HEADER,
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def usage_flat(usage: dict | None) -> dict:
    """Return one thread's raw usage as column-named figures; None where the API left a field out."""
    if not usage:
        return {name: None for name in (*TOKEN_FIELDS, "list_cost_amount")}
    cache = usage.get("cache_creation") or {}
    cost = usage.get("list_cost")
    return {
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "cache_read_input_tokens": usage.get("cache_read_input_tokens"),
        "cache_creation_5m_input_tokens": cache.get("ephemeral_5m_input_tokens"),
        "cache_creation_1h_input_tokens": cache.get("ephemeral_1h_input_tokens"),
        "list_cost_amount": int(cost["amount"]) if cost else None,
    }


def expected_sums(figures: list[dict]) -> dict:
    sums = {"thread_count": len(figures), "usage_unknown_count": 0, "cost_unknown_count": 0}
    for name in (*TOKEN_FIELDS, "list_cost_amount", "total_tokens"):
        sums[name] = None
    for figure in figures:
        if all(figure[name] is None for name in TOKEN_FIELDS):
            sums["usage_unknown_count"] += 1
        else:
            row_total = sum(figure[name] or 0 for name in TOKEN_FIELDS)
            sums["total_tokens"] = (sums["total_tokens"] or 0) + row_total
        if figure["list_cost_amount"] is None:
            sums["cost_unknown_count"] += 1
        for name in (*TOKEN_FIELDS, "list_cost_amount"):
            if figure[name] is not None:
                sums[name] = (sums[name] or 0) + figure[name]
    return sums


def comparable(row: dict) -> dict:
    names = (
        "thread_count",
        "usage_unknown_count",
        "cost_unknown_count",
        *TOKEN_FIELDS,
        "list_cost_amount",
        "total_tokens",
    )
    return {name: row[name] for name in names}


@pytest.fixture
def synced(api_settings, emulator, transactional_db):
    """Sync the emulator's data and return its ground truth, keyed by thread id."""
    run = sync_full()
    assert run.status == "succeeded", run.errors

    states = {state["id"]: state for state in emulator.state_threads()}
    sessions = {state["id"]: state for state in emulator.state_sessions()}
    listed = {}
    for session_id in sessions:
        for record in emulator_threads_listed(emulator, session_id):
            listed[record["id"]] = record
    assert set(listed) == set(states)
    return {"threads": states, "sessions": sessions, "listed": listed}


@pytest.mark.postgres
def test_usage_matches_emulator(synced):
    params = usage_params_from_query(QueryDict("period=all"), today=None)
    thread_filter = params.thread_filter
    threads = synced["threads"]
    figures = {thread_id: usage_flat(state["usage"]) for thread_id, state in threads.items()}

    # Totals.
    totals = usage_totals(thread_filter=thread_filter)
    assert comparable(totals) == expected_sums(list(figures.values()))
    assert totals["session_count"] == len({state["session_id"] for state in threads.values()})
    # The seed data must exercise both known and unknown figures, or the test proves little.
    assert totals["list_cost_amount"] > 0
    assert totals["usage_unknown_count"] > 0

    # Breakdown by session: the threads' sums and the sessions' own figures.
    by_session = defaultdict(list)
    for thread_id, state in threads.items():
        by_session[state["session_id"]].append(figures[thread_id])
    rows = list(usage_breakdown_rows(thread_filter=thread_filter, breakdown="session"))
    assert {row["key"]: comparable(row) for row in rows} == {
        session_id: expected_sums(items) for session_id, items in by_session.items()
    }
    for row in usage_session_figures(rows=rows):
        own = synced["sessions"][row["key"]]["usage"]
        assert row["session"].list_cost_amount == int(own["list_cost"]["amount"]), row["key"]
        assert row["session"].input_tokens == own["input_tokens"], row["key"]

    # Session totals: the authoritative sum of the sessions' own costs.
    session_totals = usage_session_totals(thread_filter=thread_filter)
    assert session_totals["session_list_cost_amount"] == sum(
        int(state["usage"]["list_cost"]["amount"]) for state in synced["sessions"].values()
    )
    assert (
        session_totals["threads_list_cost_amount"]
        == expected_sums(list(figures.values()))["list_cost_amount"]
    )

    # Breakdowns by agent and by model, keyed the way the API's records name them.
    by_agent = defaultdict(list)
    by_model = defaultdict(list)
    for thread_id, record in synced["listed"].items():
        agent = record["agent"]
        model = agent.get("model")
        model_id = model.get("id") if isinstance(model, dict) else model
        agent_key = agent.get("id") or agent.get("name") or ""
        by_agent[(agent_key, agent.get("type"))].append(figures[thread_id])
        by_model[model_id or ""].append(figures[thread_id])
    agent_rows = usage_breakdown_rows(thread_filter=thread_filter, breakdown="agent")
    assert {(row["key"], row["agent_type"]): comparable(row) for row in agent_rows} == {
        key: expected_sums(items) for key, items in by_agent.items()
    }
    model_rows = usage_breakdown_rows(thread_filter=thread_filter, breakdown="model")
    assert {row["key"]: comparable(row) for row in model_rows} == {
        key: expected_sums(items) for key, items in by_model.items()
    }

    # Daily series, by UTC day of thread creation.
    by_day = defaultdict(list)
    for thread_id, record in synced["listed"].items():
        by_day[record["created_at"][:10]].append(figures[thread_id])
    daily = usage_daily(thread_filter=thread_filter)
    assert {row["day"].isoformat(): comparable(row) for row in daily} == {
        day: expected_sums(items) for day, items in by_day.items()
    }

    # Thread trees: each primary thread's tree is its whole session.
    primaries = [thread_id for thread_id, state in threads.items() if state["parent_thread_id"] is None]
    trees = thread_tree_usage_many(thread_ids=primaries)
    for thread_id in primaries:
        session_id = threads[thread_id]["session_id"]
        expected = expected_sums(by_session[session_id])
        assert trees[thread_id].thread_count == expected["thread_count"], thread_id
        assert trees[thread_id].list_cost_amount == expected["list_cost_amount"], thread_id
        assert trees[thread_id].total_tokens == expected["total_tokens"], thread_id
