"""Every endpoint's responses validate strictly against the anthropic 2.10.0 SDK models."""

import json

import anthropic
from anthropic.types.beta import BetaManagedAgentsAdvisor, BetaManagedAgentsSession, BetaManagedAgentsSessionThreadAgent
from anthropic.types.beta.sessions import BetaManagedAgentsInlineAgent, BetaManagedAgentsSessionThread

import pydantic
import pytest

from tests.emulator.helpers import MODELS, raw_request, strict


def all_session_ids(emulator) -> list[str]:
    return [row["id"] for row in emulator.state_sessions()]


def walk_pages(emulator, path: str, model: str, query: dict) -> list:
    """Follow next_page from the first page, validating each page strictly; return all items."""
    items = []
    page_query = dict(query)
    while True:
        response = raw_request(emulator, "GET", path, query=page_query)
        assert response.status == 200, response.text
        page = strict(MODELS[model], response.text)
        items.extend(page.data)
        if not page.next_page:
            return items
        page_query = dict(query, page=page.next_page)


def test_sessions_list_every_page_strict(fresh):
    items = walk_pages(fresh, "/v1/sessions", "session_page", {"limit": 7, "include_archived": "true"})

    assert len(items) == 40
    assert len({item.id for item in items}) == 40


def test_sessions_list_page_has_prev_page_key(fresh):
    body = raw_request(fresh, "GET", "/v1/sessions", query={"limit": 3}).json()

    assert "prev_page" in body
    assert body["prev_page"] is None
    assert body["next_page"]


def test_session_retrieve_strict_for_every_session(fresh):
    for session_id in all_session_ids(fresh):
        response = raw_request(fresh, "GET", "/v1/sessions/%s" % session_id)

        assert response.status == 200
        assert strict(MODELS["session"], response.text).id == session_id


def test_threads_list_every_page_strict_for_every_session(fresh):
    expected = {}
    for row in fresh.state_threads():
        expected.setdefault(row["session_id"], []).append(row["id"])

    for session_id in all_session_ids(fresh):
        items = walk_pages(fresh, "/v1/sessions/%s/threads" % session_id, "thread_page", {"limit": 3})

        assert [item.id for item in items] == expected[session_id]


def test_threads_list_has_no_prev_page_key(fresh):
    session_id = all_session_ids(fresh)[0]

    body = raw_request(fresh, "GET", "/v1/sessions/%s/threads" % session_id).json()

    assert "prev_page" not in body
    assert body["next_page"] is None


def test_threads_list_primary_first_then_created_order(fresh):
    for session_id in all_session_ids(fresh):
        data = raw_request(fresh, "GET", "/v1/sessions/%s/threads" % session_id).json()["data"]

        assert data[0]["parent_thread_id"] is None
        assert sum(1 for thread in data if thread["parent_thread_id"] is None) == 1
        keys = [(thread["created_at"], thread["id"]) for thread in data]
        assert keys == sorted(keys)


def test_thread_retrieve_strict_for_every_thread(fresh):
    for row in fresh.state_threads():
        response = raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (row["session_id"], row["id"]))

        assert response.status == 200
        thread = strict(MODELS["thread"], response.text)
        assert thread.status == row["status"]


def test_thread_agent_variants_all_present(fresh):
    classes = set()
    for row in fresh.state_threads():
        response = raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (row["session_id"], row["id"]))
        classes.add(type(strict(MODELS["thread"], response.text).agent))

    assert BetaManagedAgentsSessionThreadAgent in classes
    assert BetaManagedAgentsAdvisor in classes
    assert BetaManagedAgentsInlineAgent in classes


def test_inline_workflow_threads_have_run_ids(fresh):
    rows = [row for row in fresh.state_threads() if row["workflow_run_id"]]

    assert rows, "no workflow-run threads generated"
    assert {row["agent_type"] for row in rows} == {"inline"}
    assert {row["run_open"] for row in rows} == {True, False}


def test_generated_data_covers_every_thread_status(fresh):
    statuses = {row["status"] for row in fresh.state_threads()}

    assert statuses == {"running", "idle", "rescheduling", "terminated"}


def test_generated_data_covers_every_session_status(fresh):
    statuses = {row["status"] for row in fresh.state_sessions()}

    assert statuses == {"running", "idle", "rescheduling", "terminated"}


def test_null_usage_and_null_stats_validate(fresh):
    rows = fresh.state_threads()
    null_usage = [row for row in rows if row["usage"] is None]
    assert null_usage, "no thread with null usage"

    null_stats = None
    for row in null_usage:
        body = raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (row["session_id"], row["id"]))
        thread = strict(MODELS["thread"], body.text)
        assert thread.usage is None
        if thread.stats is None:
            null_stats = thread

    assert null_stats is not None, "no thread with null stats"


def test_archived_sessions_and_threads_present(fresh):
    assert any(row["archived_at"] for row in fresh.state_sessions())
    assert any(row["archived_at"] for row in fresh.state_threads())


def test_usage_has_cost_strings_and_cache_split(fresh):
    usages = [row["usage"] for row in fresh.state_threads() if row["usage"] and "list_cost" in row["usage"]]

    assert usages
    for usage in usages:
        assert isinstance(usage["list_cost"]["amount"], str)
        assert usage["list_cost"]["amount"] == str(int(usage["list_cost"]["amount"]))
        assert usage["list_cost"]["currency"] == "USD"
        assert set(usage["cache_creation"]) == {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"}


def test_some_usage_leaves_out_list_cost(fresh):
    usages = [row["usage"] for row in fresh.state_threads() if row["usage"]]

    assert any("list_cost" not in usage for usage in usages)


def test_session_cost_differs_from_thread_cost_sum(fresh):
    differing = 0
    for session in fresh.state_sessions():
        threads = [row for row in fresh.state_threads() if row["session_id"] == session["id"]]
        thread_sum = sum(int(row["usage"]["list_cost"]["amount"]) for row in threads if row["usage"] and "list_cost" in row["usage"])
        if int(session["usage"]["list_cost"]["amount"]) != thread_sum:
            differing += 1

    assert differing > 0


def test_hostile_strings_present_in_titles_metadata_and_agents(fresh):
    sessions = [raw_request(fresh, "GET", "/v1/sessions/%s" % session_id).json() for session_id in all_session_ids(fresh)]
    titles = [session["title"] for session in sessions]
    metadata_values = [value for session in sessions for value in session["metadata"].values()]
    systems = [session["agent"]["system"] or "" for session in sessions]
    names = [session["agent"]["name"] for session in sessions]

    assert "<script>alert(1)</script>" in titles
    assert any("onerror=alert(1)" in (title or "") for title in titles)
    assert any(len(title or "") >= 10_000 for title in titles)
    assert any("\u202e" in (title or "") for title in titles)
    assert None in titles
    assert "<script>alert(1)</script>" in metadata_values
    assert any(len(value) == 512 for value in metadata_values)
    assert any("<script>" in system for system in systems)
    assert any("onerror" in name or "\u202e" in name for name in names)


def test_session_events_every_page_strict(fresh):
    for session_id in all_session_ids(fresh):
        items = walk_pages(fresh, "/v1/sessions/%s/events" % session_id, "event_page", {"limit": 4})

        assert items
        times = [item.processed_at for item in items]
        assert times == sorted(times)


def test_thread_events_every_page_strict(fresh):
    for row in fresh.state_threads():
        path = "/v1/sessions/%s/threads/%s/events" % (row["session_id"], row["id"])

        items = walk_pages(fresh, path, "event_page", {"limit": 2})

        assert items, "thread %s has no events" % row["id"]


def test_child_thread_events_follow_thread_state(fresh):
    row = next(row for row in fresh.state_threads() if row["parent_thread_id"] and row["status"] == "idle" and row["usage"])
    path = "/v1/sessions/%s/threads/%s/events" % (row["session_id"], row["id"])

    types = [event["type"] for event in raw_request(fresh, "GET", path).json()["data"]]

    assert types[0] == "session.thread_created"
    assert types[1] == "session.thread_status_running"
    assert "agent.message" in types
    assert types[-1] == "session.thread_status_idle"


def test_sdk_walks_every_endpoint(client, fresh):
    sessions = list(client.beta.sessions.list(limit=10, include_archived=True))
    assert len(sessions) == 40
    assert all(isinstance(session, BetaManagedAgentsSession) for session in sessions)

    session = client.beta.sessions.retrieve(sessions[0].id)
    threads = list(client.beta.sessions.threads.list(session.id, limit=2))
    assert all(isinstance(thread, BetaManagedAgentsSessionThread) for thread in threads)

    thread = client.beta.sessions.threads.retrieve(threads[0].id, session_id=session.id)
    assert thread.id == threads[0].id

    events = list(client.beta.sessions.events.list(session.id, limit=3))
    assert events
    thread_events = list(client.beta.sessions.threads.events.list(thread.id, session_id=session.id, limit=3))
    assert thread_events


def test_sdk_archive_send_and_delete_parse(client, fresh):
    idle = next(
        row
        for row in fresh.state_threads()
        if row["parent_thread_id"] and row["status"] == "idle" and not row["archived_at"] and not row["run_open"]
        and next(s for s in fresh.state_sessions() if s["id"] == row["session_id"])["archived_at"] is None
    )
    archived = client.beta.sessions.threads.archive(idle["id"], session_id=idle["session_id"])
    assert archived.status == "terminated"

    running = next(row for row in fresh.state_threads() if row["status"] == "running")
    sent = client.beta.sessions.events.send(running["session_id"], events=[{"type": "user.interrupt", "session_thread_id": running["id"]}])
    assert sent.data[0].type == "user.interrupt"

    idle_session = next(row for row in fresh.state_sessions() if row["status"] == "idle" and not row["archived_at"])
    assert client.beta.sessions.archive(idle_session["id"]).status == "terminated"
    assert client.beta.sessions.delete(idle_session["id"]).type == "session_deleted"


def test_send_events_response_strict(fresh):
    running = next(row for row in fresh.state_threads() if row["status"] == "running")

    response = raw_request(
        fresh,
        "POST",
        "/v1/sessions/%s/events" % running["session_id"],
        body={"events": [{"type": "user.interrupt", "session_thread_id": running["id"]}]},
    )

    assert response.status == 200
    sent = strict(MODELS["events_sent"], response.text)
    assert sent.data[0].id.startswith("sevt_")
    assert sent.data[0].processed_at is not None


def test_delete_response_strict(fresh):
    idle_session = next(row for row in fresh.state_sessions() if row["status"] == "idle")

    response = raw_request(fresh, "DELETE", "/v1/sessions/%s" % idle_session["id"])

    assert response.status == 200
    assert strict(MODELS["session_deleted"], response.text).id == idle_session["id"]


def test_error_bodies_strict_for_each_status(fresh):
    session_id = all_session_ids(fresh)[0]
    primary = next(row for row in fresh.state_threads() if row["session_id"] == session_id and row["parent_thread_id"] is None)
    running = next(row for row in fresh.state_threads() if row["status"] == "running" and row["parent_thread_id"])
    cases = [
        (400, raw_request(fresh, "GET", "/v1/sessions", query={"limit": 0})),
        (401, raw_request(fresh, "GET", "/v1/sessions", auth=False)),
        (404, raw_request(fresh, "GET", "/v1/sessions/sesn_011CMISSING")),
        (400, raw_request(fresh, "POST", "/v1/sessions/%s/threads/%s/archive" % (session_id, primary["id"]))),
        (409, raw_request(fresh, "POST", "/v1/sessions/%s/threads/%s/archive" % (running["session_id"], running["id"]))),
    ]
    fresh.force(429, 1)
    cases.append((429, raw_request(fresh, "GET", "/v1/sessions")))
    fresh.force(500, 1)
    cases.append((500, raw_request(fresh, "GET", "/v1/sessions")))
    fresh.force(529, 1)
    cases.append((529, raw_request(fresh, "GET", "/v1/sessions")))

    for status, response in cases:
        assert response.status == status
        error = strict(MODELS["error"], response.text)
        assert error.request_id == response.headers["request-id"]
        assert error.error.type != "conflict_error"
        assert "details" not in response.json()["error"]


def test_sdk_maps_errors_to_exception_classes(client, fresh):
    running = next(row for row in fresh.state_threads() if row["status"] == "running" and row["parent_thread_id"])

    try:
        client.beta.sessions.retrieve("sesn_011CMISSING")
    except anthropic.NotFoundError as exc:
        assert exc.request_id.startswith("req_")
    else:
        raise AssertionError("expected NotFoundError")

    try:
        client.beta.sessions.threads.archive(running["id"], session_id=running["session_id"])
    except anthropic.ConflictError as exc:
        assert exc.status_code == 409
    else:
        raise AssertionError("expected ConflictError")


def test_strict_check_rejects_misspelt_key(fresh):
    row = fresh.state_threads()[0]
    body = raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (row["session_id"], row["id"])).json()
    body["archivedAt"] = body.pop("archived_at")

    with pytest.raises(AssertionError):
        strict(MODELS["thread"], json.dumps(body))


def test_strict_check_rejects_missing_required_key(fresh):
    row = fresh.state_threads()[0]
    body = raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (row["session_id"], row["id"])).json()
    del body["agent"]["execution_identity"]

    with pytest.raises(pydantic.ValidationError):
        strict(MODELS["thread"], json.dumps(body))
