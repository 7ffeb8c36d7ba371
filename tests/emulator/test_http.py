"""Transport rules: authentication, required headers, request ids, faults, rate limit, latency and the log."""

import http.client
import threading
import time

import anthropic
import pytest

from tests.emulator.helpers import raw_request, sdk_client


def first_session_id(emulator) -> str:
    return emulator.state_sessions()[0]["id"]


def test_auth_accepts_x_api_key(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions")

    assert response.status == 200


def test_auth_accepts_bearer_token(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", auth=False, headers={"authorization": "Bearer %s" % fresh.api_key})

    assert response.status == 200


def test_auth_missing_key_is_401(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", auth=False)

    assert response.status == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_auth_wrong_key_is_401(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", headers={"x-api-key": "sk-ant-wrong"})

    assert response.status == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_auth_wrong_key_raises_sdk_authentication_error(fresh):
    client = anthropic.Anthropic(api_key="sk-ant-wrong", base_url=fresh.base_url, max_retries=0)

    with pytest.raises(anthropic.AuthenticationError):
        client.beta.sessions.list()


def test_custom_api_key_option(emulator_factory):
    emulator = emulator_factory("--sessions", "3", api_key="sk-ant-custom")

    assert raw_request(emulator, "GET", "/v1/sessions").status == 200
    assert raw_request(emulator, "GET", "/v1/sessions", headers={"x-api-key": "sk-ant-emulator"}).status == 401


def test_missing_version_header_is_400(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", headers={"anthropic-version": None})

    assert response.status == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_any_version_value_accepted(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", headers={"anthropic-version": "2026-10-21"})

    assert response.status == 200


def test_missing_beta_header_is_400(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", headers={"anthropic-beta": None})

    assert response.status == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_beta_header_without_managed_agents_token_is_400(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", headers={"anthropic-beta": "files-api-2025-04-14"})

    assert response.status == 400


def test_beta_token_found_in_comma_list(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions", headers={"anthropic-beta": "files-api-2025-04-14, managed-agents-2026-04-01"})

    assert response.status == 200


def test_sdk_extra_betas_accepted(fresh):
    client = sdk_client(fresh)

    page = client.beta.sessions.list(betas=["files-api-2025-04-14"], limit=1)

    assert len(page.data) == 1


def test_beta_query_parameter_ignored(fresh):
    plain = raw_request(fresh, "GET", "/v1/sessions", query={"limit": 5})
    flagged = raw_request(fresh, "GET", "/v1/sessions", query={"limit": 5, "beta": "true"})

    assert flagged.status == 200
    assert flagged.json() == plain.json()


def test_request_id_on_success_error_and_fault(fresh):
    responses = [
        raw_request(fresh, "GET", "/v1/sessions"),
        raw_request(fresh, "GET", "/v1/sessions", auth=False),
        raw_request(fresh, "GET", "/v1/sessions/sesn_011CMISSING"),
        raw_request(fresh, "GET", "/v1/nothing-here"),
    ]
    fresh.force(500, 1)
    responses.append(raw_request(fresh, "GET", "/v1/sessions"))

    for response in responses:
        assert response.headers["request-id"].startswith("req_")
    assert len({response.headers["request-id"] for response in responses}) == len(responses)


def test_request_id_on_control_responses(fresh):
    response = raw_request(fresh, "GET", "/_emulator/log", auth=False)

    assert response.headers["request-id"].startswith("req_")


def test_sdk_exposes_request_id(client):
    page = client.beta.sessions.list(limit=1)

    assert page._request_id.startswith("req_")


def test_unknown_session_is_404(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions/sesn_011CMISSING")

    assert response.status == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_unknown_thread_is_404(fresh):
    response = raw_request(fresh, "GET", "/v1/sessions/%s/threads/sthr_011CMISSING" % first_session_id(fresh))

    assert response.status == 404


def test_thread_under_wrong_session_is_404(fresh):
    sessions = fresh.state_sessions()
    thread = next(row for row in fresh.state_threads() if row["session_id"] == sessions[1]["id"])

    for method, suffix in (("GET", ""), ("GET", "/events"), ("POST", "/archive")):
        response = raw_request(fresh, method, "/v1/sessions/%s/threads/%s%s" % (sessions[0]["id"], thread["id"], suffix))
        assert response.status == 404


def test_unknown_session_for_each_endpoint_is_404(fresh):
    cases = [
        ("GET", "/v1/sessions/sesn_011CMISSING/threads", None),
        ("GET", "/v1/sessions/sesn_011CMISSING/events", None),
        ("POST", "/v1/sessions/sesn_011CMISSING/archive", None),
        ("DELETE", "/v1/sessions/sesn_011CMISSING", None),
        ("POST", "/v1/sessions/sesn_011CMISSING/events", {"events": [{"type": "user.interrupt"}]}),
    ]

    for method, path, body in cases:
        assert raw_request(fresh, method, path, body=body).status == 404


def test_unknown_route_is_404(fresh):
    response = raw_request(fresh, "GET", "/v1/agents")

    assert response.status == 404


def test_workspace_mismatch_is_403(emulator_factory):
    emulator = emulator_factory("--sessions", "3", "--workspace-id", "wrkspc_011CEMULATOR")

    response = raw_request(emulator, "GET", "/v1/sessions", headers={"anthropic-workspace-id": "wrkspc_011COTHER"})

    assert response.status == 403
    assert response.json()["error"]["type"] == "permission_error"


def test_workspace_match_and_absent_header_allowed(emulator_factory):
    emulator = emulator_factory("--sessions", "3", "--workspace-id", "wrkspc_011CEMULATOR")

    matching = raw_request(emulator, "GET", "/v1/sessions", headers={"anthropic-workspace-id": "wrkspc_011CEMULATOR"})
    absent = raw_request(emulator, "GET", "/v1/sessions")

    assert matching.status == 200
    assert absent.status == 200


def test_sdk_workspace_mismatch_raises_permission_denied(emulator_factory):
    emulator = emulator_factory("--sessions", "3", "--workspace-id", "wrkspc_011CEMULATOR")
    client = sdk_client(emulator)

    with pytest.raises(anthropic.PermissionDeniedError):
        client.beta.sessions.list(workspace_id="wrkspc_011COTHER")


def test_forced_429_has_retry_after_and_ratelimit_headers(fresh):
    fresh.force(429, 1)

    response = raw_request(fresh, "GET", "/v1/sessions")

    assert response.status == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert int(response.headers["retry-after"]) >= 1
    assert "anthropic-ratelimit-requests-limit" in response.headers
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert response.headers["anthropic-ratelimit-requests-reset"].endswith("Z")


def test_forced_count_applies_to_next_n_only(fresh):
    fresh.force(500, 2)

    statuses = [raw_request(fresh, "GET", "/v1/sessions").status for _ in range(3)]

    assert statuses == [500, 500, 200]


def test_forced_529_is_overloaded(fresh):
    fresh.force(529, 1)

    response = raw_request(fresh, "GET", "/v1/sessions")

    assert response.status == 529
    assert response.json()["error"]["type"] == "overloaded_error"


def test_forced_faults_raise_sdk_exceptions(client, fresh):
    expected = {429: anthropic.RateLimitError, 500: anthropic.InternalServerError, 529: anthropic.OverloadedError}

    for status, exception in expected.items():
        fresh.force(status, 1)
        with pytest.raises(exception):
            client.beta.sessions.list()


def test_forced_drop_raises_connection_error(client, fresh):
    fresh.force("drop", 1)

    with pytest.raises(anthropic.APIConnectionError):
        client.beta.sessions.list()

    assert client.beta.sessions.list(limit=1).data


def test_sdk_retries_through_forced_500(fresh):
    fresh.force(500, 1)
    client = sdk_client(fresh, max_retries=2)

    page = client.beta.sessions.list(limit=1)

    assert page.data
    assert fresh.log()["statuses"] == {"200": 1, "500": 1}


def test_random_fault_rate_one_always_fails(emulator_factory):
    emulator = emulator_factory("--sessions", "3", "--fault-500", "1")

    statuses = {raw_request(emulator, "GET", "/v1/sessions").status for _ in range(5)}

    assert statuses == {500}


def test_random_drop_rate_one_drops(emulator_factory):
    emulator = emulator_factory("--sessions", "3", "--fault-drop", "1")
    client = sdk_client(emulator)

    with pytest.raises(anthropic.APIConnectionError):
        client.beta.sessions.list()


def test_random_faults_seeded_and_partial(emulator_factory):
    first = emulator_factory("--sessions", "3", "--fault-529", "0.5")
    second = emulator_factory("--sessions", "3", "--fault-529", "0.5")

    sequence_one = [raw_request(first, "GET", "/v1/sessions").status for _ in range(30)]
    sequence_two = [raw_request(second, "GET", "/v1/sessions").status for _ in range(30)]

    assert sequence_one == sequence_two
    assert set(sequence_one) == {200, 529}


def test_slow_fault_holds_response(fresh):
    fresh.configure(fault_slow=1, slow_seconds=0.5)

    started = time.monotonic()
    response = raw_request(fresh, "GET", "/v1/sessions")
    elapsed = time.monotonic() - started

    assert response.status == 200
    assert elapsed >= 0.5


def test_slow_fault_times_out_sdk(fresh):
    fresh.configure(fault_slow=1, slow_seconds=3)
    client = sdk_client(fresh, timeout=0.5)

    with pytest.raises(anthropic.APITimeoutError):
        client.beta.sessions.list()


def test_rate_limit_returns_429_over_limit(emulator_factory):
    emulator = emulator_factory("--sessions", "3", "--rate-limit", "2")

    responses = [raw_request(emulator, "GET", "/v1/sessions") for _ in range(6)]
    limited = [response for response in responses if response.status == 429]

    assert limited
    assert limited[0].json()["error"]["type"] == "rate_limit_error"
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].headers["anthropic-ratelimit-requests-limit"] == "2"


def test_rate_limit_recovers_after_retry_after(emulator_factory):
    emulator = emulator_factory("--sessions", "3", "--rate-limit", "2")
    for _ in range(6):
        last = raw_request(emulator, "GET", "/v1/sessions")
    assert last.status == 429

    time.sleep(int(last.headers["retry-after"]))

    assert raw_request(emulator, "GET", "/v1/sessions").status == 200


def test_rate_limit_set_at_run_time(fresh):
    fresh.configure(rate_limit=1)

    statuses = [raw_request(fresh, "GET", "/v1/sessions").status for _ in range(4)]

    assert 429 in statuses


def test_control_endpoints_skip_rate_limit_and_faults(fresh):
    fresh.configure(rate_limit=1, fault_500=1)

    for _ in range(5):
        assert isinstance(fresh.state_sessions(), list)


def test_latency_option_delays_api_responses(emulator_factory):
    emulator = emulator_factory("--sessions", "3", "--latency-ms", "300")

    started = time.monotonic()
    raw_request(emulator, "GET", "/v1/sessions")
    elapsed = time.monotonic() - started

    assert elapsed >= 0.3


def test_latency_not_applied_to_controls(fresh):
    fresh.configure(latency_ms=1000)

    started = time.monotonic()
    fresh.log()
    elapsed = time.monotonic() - started

    assert elapsed < 0.9


def test_config_rejects_unknown_key_and_bad_fraction(fresh):
    assert raw_request(fresh, "POST", "/_emulator/config", body={"latency": 5}, auth=False).status == 400
    assert raw_request(fresh, "POST", "/_emulator/config", body={"fault_500": 2}, auth=False).status == 400


def test_reset_restores_startup_config(fresh):
    fresh.configure(latency_ms=50, fault_529=0.5)

    fresh.reset()

    config = raw_request(fresh, "GET", "/_emulator/config", auth=False).json()
    assert config["latency_ms"] == 0
    assert config["fault_529"] == 0


def test_log_counts_by_route_template(fresh):
    sessions = fresh.state_sessions()
    raw_request(fresh, "GET", "/v1/sessions")
    raw_request(fresh, "GET", "/v1/sessions")
    raw_request(fresh, "GET", "/v1/sessions/%s" % sessions[0]["id"])
    raw_request(fresh, "GET", "/v1/sessions/%s/threads" % sessions[1]["id"])

    log = fresh.log()

    assert log["endpoints"] == {
        "GET /v1/sessions": 2,
        "GET /v1/sessions/{session_id}": 1,
        "GET /v1/sessions/{session_id}/threads": 1,
    }
    assert log["total"] == 4
    assert log["statuses"] == {"200": 4}


def test_log_counts_statuses_including_drop(fresh):
    fresh.force("drop", 1)
    client = sdk_client(fresh)
    with pytest.raises(anthropic.APIConnectionError):
        client.beta.sessions.list()
    raw_request(fresh, "GET", "/v1/sessions/sesn_011CMISSING")

    log = fresh.log()

    assert log["statuses"] == {"drop": 1, "404": 1}


def test_log_counts_thread_archive_calls_and_changes(fresh):
    idle = next(
        row for row in fresh.state_threads()
        if row["parent_thread_id"] and row["status"] == "idle" and not row["archived_at"] and not row["run_open"]
        and not next(s for s in fresh.state_sessions() if s["id"] == row["session_id"])["archived_at"]
    )
    path = "/v1/sessions/%s/threads/%s/archive" % (idle["session_id"], idle["id"])
    raw_request(fresh, "POST", path)
    raw_request(fresh, "POST", path)

    log = fresh.log()

    assert log["endpoints"]["POST /v1/sessions/{session_id}/threads/{thread_id}/archive"] == 2
    assert log["thread_archive_calls"] == {idle["id"]: 2}
    assert log["thread_archive_changes"] == {idle["id"]: 1}


def test_log_ignores_control_requests(fresh):
    fresh.state_threads()
    fresh.configure(latency_ms=0)

    assert fresh.log()["total"] == 0


def test_log_reset_clears_counts(fresh):
    raw_request(fresh, "GET", "/v1/sessions")

    fresh.reset_log()

    assert fresh.log() == {
        "total": 0,
        "endpoints": {},
        "statuses": {},
        "thread_archive_calls": {},
        "thread_archive_changes": {},
        "session_archive_calls": {},
    }


def test_keep_alive_serves_many_requests_on_one_connection(fresh):
    host, port = fresh.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"x-api-key": fresh.api_key, "anthropic-version": "2023-06-01", "anthropic-beta": "managed-agents-2026-04-01"}
    sockets = set()

    for _ in range(5):
        connection.request("GET", "/v1/sessions?limit=1", headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert response.getheader("content-length")
        sockets.add(id(connection.sock))
    connection.close()

    assert len(sockets) == 1


def test_keep_alive_requests_not_held_by_delayed_ack(fresh):
    # With Nagle's algorithm on, each response body after the second waited for the
    # client's delayed ACK: 40 ms or more per request. Unstalled, one takes a few ms.
    host, port = fresh.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"x-api-key": fresh.api_key, "anthropic-version": "2023-06-01", "anthropic-beta": "managed-agents-2026-04-01"}
    durations = []

    for _ in range(9):
        started = time.perf_counter()
        connection.request("GET", "/v1/sessions?limit=1", headers=headers)
        connection.getresponse().read()
        durations.append(time.perf_counter() - started)
    connection.close()

    assert sorted(durations)[len(durations) // 2] < 0.035, durations


def test_log_reset_drops_status_of_earlier_request(fresh):
    fresh.configure(fault_slow=1.0, slow_seconds=1.0)
    slow_request = threading.Thread(target=raw_request, args=(fresh, "GET", "/v1/sessions"))
    slow_request.start()
    time.sleep(0.3)

    fresh.reset_log()
    slow_request.join(timeout=10)

    assert fresh.log()["statuses"] == {}
