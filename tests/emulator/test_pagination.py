"""Cursor pagination and list filters on sessions, threads and events."""

import base64
import json

import pytest

from tests.emulator.helpers import raw_request, sdk_client


def sessions_page(emulator, **query):
    response = raw_request(emulator, "GET", "/v1/sessions", query=query)
    assert response.status == 200, response.text
    return response.json()


def ids(page) -> list[str]:
    return [item["id"] for item in page["data"]]


def visible_sessions(emulator, *, include_archived=False) -> list[dict]:
    return [row for row in emulator.state_sessions() if include_archived or not row["archived_at"]]


def test_sessions_default_order_newest_first(fresh):
    data = sessions_page(fresh, limit=100)["data"]
    keys = [(session["created_at"], session["id"]) for session in data]

    assert keys == sorted(keys, reverse=True)


def test_sessions_default_limit_is_20(fresh):
    assert len(sessions_page(fresh)["data"]) == 20


def test_sessions_order_asc(fresh):
    data = sessions_page(fresh, limit=100, order="asc")["data"]
    keys = [(session["created_at"], session["id"]) for session in data]

    assert keys == sorted(keys)


def test_sessions_forward_then_backward(fresh):
    first = sessions_page(fresh, limit=5)
    second = sessions_page(fresh, limit=5, page=first["next_page"])
    back = sessions_page(fresh, limit=5, page=second["prev_page"])

    assert first["prev_page"] is None
    assert second["prev_page"] is not None
    assert ids(back) == ids(first)
    assert back["prev_page"] is None
    assert back["next_page"] is not None


def test_sessions_walk_all_pages_both_directions(fresh):
    expected = [row["id"] for row in reversed(visible_sessions(fresh))]
    pages = [sessions_page(fresh, limit=4)]
    while pages[-1]["next_page"]:
        pages.append(sessions_page(fresh, limit=4, page=pages[-1]["next_page"]))

    assert [item for page in pages for item in ids(page)] == expected

    backwards = [pages[-1]]
    while backwards[-1]["prev_page"]:
        backwards.append(sessions_page(fresh, limit=4, page=backwards[-1]["prev_page"]))

    assert [ids(page) for page in reversed(backwards)] == [ids(page) for page in pages]


def test_sessions_walk_asc_matches_reverse_of_desc(fresh):
    asc = []
    page = sessions_page(fresh, limit=6, order="asc")
    asc += ids(page)
    while page["next_page"]:
        page = sessions_page(fresh, limit=6, order="asc", page=page["next_page"])
        asc += ids(page)

    assert asc == [row["id"] for row in visible_sessions(fresh)]


def test_sessions_last_page_has_null_next(fresh):
    page = sessions_page(fresh, limit=100)

    assert page["next_page"] is None


def test_sdk_auto_pagination_sessions(fresh):
    client = sdk_client(fresh)

    listed = [session.id for session in client.beta.sessions.list(limit=3)]

    assert listed == [row["id"] for row in reversed(visible_sessions(fresh))]


def test_cursor_is_base64url_json_with_order(fresh):
    cursor = sessions_page(fresh, limit=2)["next_page"]

    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))

    assert payload["o"] == "desc"
    assert len(payload["k"]) == 2


@pytest.mark.parametrize("cursor", ["not-a-cursor!!", base64.urlsafe_b64encode(b"[1,2]").decode(), base64.urlsafe_b64encode(b'{"k": 5, "o": "asc"}').decode()])
def test_bad_cursor_is_400(fresh, cursor):
    response = raw_request(fresh, "GET", "/v1/sessions", query={"page": cursor})

    assert response.status == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_cursor_with_other_order_is_400(fresh):
    cursor = sessions_page(fresh, limit=2)["next_page"]

    response = raw_request(fresh, "GET", "/v1/sessions", query={"page": cursor, "order": "asc"})

    assert response.status == 400


def test_prev_cursor_on_threads_is_400(fresh):
    prev = sessions_page(fresh, limit=2, page=sessions_page(fresh, limit=2)["next_page"])["prev_page"]
    session_id = fresh.state_sessions()[0]["id"]

    response = raw_request(fresh, "GET", "/v1/sessions/%s/threads" % session_id, query={"page": prev})

    assert response.status == 400


def test_bad_cursor_on_threads_and_events_is_400(fresh):
    session_id = fresh.state_sessions()[0]["id"]

    assert raw_request(fresh, "GET", "/v1/sessions/%s/threads" % session_id, query={"page": "%%%"}).status == 400
    assert raw_request(fresh, "GET", "/v1/sessions/%s/events" % session_id, query={"page": "%%%"}).status == 400


@pytest.mark.parametrize(
    "path_template, limit",
    [
        ("/v1/sessions", 0),
        ("/v1/sessions", 101),
        ("/v1/sessions", "ten"),
        ("/v1/sessions/{session_id}/threads", 0),
        ("/v1/sessions/{session_id}/threads", 1001),
        ("/v1/sessions/{session_id}/events", 0),
        ("/v1/sessions/{session_id}/events", 1001),
    ],
)
def test_limit_out_of_range_is_400(fresh, path_template, limit):
    path = path_template.format(session_id=fresh.state_sessions()[0]["id"])

    response = raw_request(fresh, "GET", path, query={"limit": limit})

    assert response.status == 400


def test_limit_maximums_accepted(fresh):
    session_id = fresh.state_sessions()[0]["id"]

    assert raw_request(fresh, "GET", "/v1/sessions", query={"limit": 100}).status == 200
    assert raw_request(fresh, "GET", "/v1/sessions/%s/threads" % session_id, query={"limit": 1000}).status == 200
    assert raw_request(fresh, "GET", "/v1/sessions/%s/events" % session_id, query={"limit": 1000}).status == 200


def test_filter_statuses_repeatable(fresh):
    data = sessions_page(fresh, limit=100, **{"statuses[]": ["idle", "running"]})["data"]
    expected = {row["id"] for row in visible_sessions(fresh) if row["status"] in ("idle", "running")}

    assert {session["id"] for session in data} == expected
    assert {session["status"] for session in data} == {"idle", "running"}


def test_filter_unknown_status_is_400(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", query={"statuses[]": "sleeping"})

    assert response.status == 400


def test_sdk_statuses_filter(fresh):
    client = sdk_client(fresh)

    listed = list(client.beta.sessions.list(statuses=["terminated"], include_archived=True, limit=100))

    assert listed
    assert {session.status for session in listed} == {"terminated"}


def test_archived_hidden_by_default(fresh):
    data = sessions_page(fresh, limit=100)["data"]

    assert all(session["archived_at"] is None for session in data)
    assert len(data) == len(visible_sessions(fresh))


def test_include_archived_true_lists_all(fresh):
    data = sessions_page(fresh, limit=100, include_archived="true")["data"]

    assert len(data) == 40
    assert any(session["archived_at"] for session in data)


def test_include_archived_invalid_is_400(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", query={"include_archived": "maybe"})

    assert response.status == 400


def test_created_at_ranges(fresh):
    all_sessions = sessions_page(fresh, limit=100, include_archived="true", order="asc")["data"]
    pivot = all_sessions[10]["created_at"]

    cases = {
        "gt": [s for s in all_sessions if s["created_at"] > pivot],
        "gte": [s for s in all_sessions if s["created_at"] >= pivot],
        "lt": [s for s in all_sessions if s["created_at"] < pivot],
        "lte": [s for s in all_sessions if s["created_at"] <= pivot],
    }
    for operator, expected in cases.items():
        query = {"limit": 100, "include_archived": "true", "order": "asc", "created_at[%s]" % operator: pivot}
        assert ids(sessions_page(fresh, **query)) == [session["id"] for session in expected], operator


def test_created_at_range_via_sdk_datetime(fresh):
    client = sdk_client(fresh)
    all_sessions = list(client.beta.sessions.list(limit=100, include_archived=True, order="asc"))
    pivot = all_sessions[20].created_at

    listed = list(client.beta.sessions.list(limit=100, include_archived=True, order="asc", created_at_gte=pivot))

    assert [session.id for session in listed] == [session.id for session in all_sessions[20:]]


def test_created_at_invalid_is_400(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", query={"created_at[gt]": "yesterday"})

    assert response.status == 400


def test_agent_id_filter(fresh):
    all_sessions = sessions_page(fresh, limit=100, include_archived="true")["data"]
    agent_id = all_sessions[0]["agent"]["id"]

    data = sessions_page(fresh, limit=100, include_archived="true", agent_id=agent_id)["data"]

    assert data
    assert {session["agent"]["id"] for session in data} == {agent_id}
    assert len(data) == sum(1 for session in all_sessions if session["agent"]["id"] == agent_id)


def test_agent_version_filter_with_agent_id(fresh):
    all_sessions = sessions_page(fresh, limit=100, include_archived="true")["data"]
    agent = all_sessions[0]["agent"]

    data = sessions_page(fresh, limit=100, include_archived="true", agent_id=agent["id"], agent_version=agent["version"])["data"]

    assert data
    assert {(s["agent"]["id"], s["agent"]["version"]) for s in data} == {(agent["id"], agent["version"])}


def test_filters_combined_with_paging(fresh):
    query = {"limit": 2, "statuses[]": "idle"}
    page = sessions_page(fresh, **query)
    collected = ids(page)
    while page["next_page"]:
        page = sessions_page(fresh, page=page["next_page"], **query)
        collected += ids(page)

    expected = [row["id"] for row in reversed(visible_sessions(fresh)) if row["status"] == "idle"]
    assert collected == expected


def test_threads_default_limit_returns_all(fresh):
    for session in fresh.state_sessions():
        body = raw_request(fresh, "GET", "/v1/sessions/%s/threads" % session["id"]).json()

        assert len(body["data"]) == session["thread_count"]
        assert body["next_page"] is None


def test_threads_statuses_filter(fresh):
    session = max(fresh.state_sessions(), key=lambda row: row["thread_count"])
    rows = [row for row in fresh.state_threads() if row["session_id"] == session["id"]]

    body = raw_request(fresh, "GET", "/v1/sessions/%s/threads" % session["id"], query={"statuses[]": ["terminated"]}).json()

    assert [thread["id"] for thread in body["data"]] == [row["id"] for row in rows if row["status"] == "terminated"]


def test_sdk_threads_auto_pagination(fresh):
    client = sdk_client(fresh)
    session = max(fresh.state_sessions(), key=lambda row: row["thread_count"])

    listed = [thread.id for thread in client.beta.sessions.threads.list(session["id"], limit=2)]

    assert listed == [row["id"] for row in fresh.state_threads() if row["session_id"] == session["id"]]


def test_session_events_types_filter(fresh):
    session_id = fresh.state_sessions()[0]["id"]

    data = raw_request(fresh, "GET", "/v1/sessions/%s/events" % session_id, query={"types[]": ["session.status_running"], "limit": 1000}).json()["data"]

    assert data
    assert {event["type"] for event in data} == {"session.status_running"}


def test_session_events_order_desc(fresh):
    session_id = max(fresh.state_sessions(), key=lambda row: row["thread_count"])["id"]
    path = "/v1/sessions/%s/events" % session_id

    asc = raw_request(fresh, "GET", path, query={"limit": 1000}).json()["data"]
    desc = raw_request(fresh, "GET", path, query={"limit": 1000, "order": "desc"}).json()["data"]

    assert [event["id"] for event in desc] == [event["id"] for event in reversed(asc)]


def test_session_events_desc_paging_matches_single_page(fresh):
    session_id = max(fresh.state_sessions(), key=lambda row: row["thread_count"])["id"]
    path = "/v1/sessions/%s/events" % session_id
    whole = raw_request(fresh, "GET", path, query={"limit": 1000, "order": "desc"}).json()["data"]

    collected = []
    query = {"limit": 3, "order": "desc"}
    body = raw_request(fresh, "GET", path, query=query).json()
    collected += body["data"]
    while body["next_page"]:
        body = raw_request(fresh, "GET", path, query=dict(query, page=body["next_page"])).json()
        collected += body["data"]

    assert [event["id"] for event in collected] == [event["id"] for event in whole]


def test_session_events_created_at_range(fresh):
    session_id = max(fresh.state_sessions(), key=lambda row: row["thread_count"])["id"]
    path = "/v1/sessions/%s/events" % session_id
    events = raw_request(fresh, "GET", path, query={"limit": 1000}).json()["data"]
    pivot = events[len(events) // 2]["processed_at"]

    later = raw_request(fresh, "GET", path, query={"limit": 1000, "created_at[gt]": pivot}).json()["data"]

    assert [event["id"] for event in later] == [event["id"] for event in events if event["processed_at"] > pivot]


def test_sdk_session_events_filters(fresh):
    client = sdk_client(fresh)
    session_id = fresh.state_sessions()[0]["id"]

    events = list(client.beta.sessions.events.list(session_id, types=["agent.message"], order="desc", limit=2))

    assert events
    assert {event.type for event in events} == {"agent.message"}


def test_thread_events_only_that_thread(fresh):
    row = next(row for row in fresh.state_threads() if row["parent_thread_id"])
    path = "/v1/sessions/%s/threads/%s/events" % (row["session_id"], row["id"])

    data = raw_request(fresh, "GET", path, query={"limit": 1000}).json()["data"]

    for event in data:
        assert event.get("session_thread_id", row["id"]) == row["id"]
