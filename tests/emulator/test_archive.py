"""The archive state machine for threads and sessions, interrupts, and the test controls that change state."""

import time

from tests.emulator.helpers import MODELS, raw_request, strict


def session_row(emulator, session_id: str) -> dict:
    return next(row for row in emulator.state_sessions() if row["id"] == session_id)


def thread_row(emulator, thread_id: str) -> dict:
    return next(row for row in emulator.state_threads() if row["id"] == thread_id)


def live_session_ids(emulator) -> set[str]:
    return {row["id"] for row in emulator.state_sessions() if not row["archived_at"]}


def pick(emulator, description: str, **conditions) -> dict:
    """Return the first child thread in a non-archived session matching ``conditions``."""
    live = live_session_ids(emulator)
    for row in emulator.state_threads():
        if row["parent_thread_id"] is None or row["session_id"] not in live:
            continue
        if all(row[key] == value for key, value in conditions.items()):
            return row
    raise AssertionError("generated data has no %s" % description)


def archive(emulator, row: dict):
    return raw_request(emulator, "POST", "/v1/sessions/%s/threads/%s/archive" % (row["session_id"], row["id"]))


def events_of(emulator, row: dict) -> list[dict]:
    path = "/v1/sessions/%s/threads/%s/events" % (row["session_id"], row["id"])
    return raw_request(emulator, "GET", path, query={"limit": 1000}).json()["data"]


def session_events(emulator, session_id: str) -> list[dict]:
    return raw_request(emulator, "GET", "/v1/sessions/%s/events" % session_id, query={"limit": 1000}).json()["data"]


def wait_for_status(emulator, thread_id: str, status: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = thread_row(emulator, thread_id)
        if row["status"] == status:
            return row
        time.sleep(0.05)
    raise AssertionError("thread %s did not become %s within %.1f s" % (thread_id, status, timeout))


# Thread archive: idle child


def test_archive_idle_child_terminates_and_stamps(fresh):
    row = pick(fresh, "idle child", status="idle", archived_at=None, run_open=False)
    before = raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (row["session_id"], row["id"])).json()

    response = archive(fresh, row)

    assert response.status == 200
    thread = strict(MODELS["thread"], response.text)
    assert thread.status == "terminated"
    assert thread.archived_at is not None
    assert thread.updated_at == thread.archived_at
    assert response.json()["updated_at"] > before["updated_at"]


def test_archive_idle_child_freezes_duration(fresh):
    row = pick(fresh, "idle child with stats", status="idle", archived_at=None, run_open=False)

    body = archive(fresh, row).json()
    time.sleep(0.05)
    again = raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (row["session_id"], row["id"])).json()

    if body["stats"] is not None:
        assert again["stats"]["duration_seconds"] == body["stats"]["duration_seconds"]
    assert again["archived_at"] == body["archived_at"]


def test_archive_idle_child_appends_one_terminated_event(fresh):
    row = pick(fresh, "idle child", status="idle", archived_at=None, run_open=False)
    before = [event for event in events_of(fresh, row) if event["type"] == "session.thread_status_terminated"]

    archive(fresh, row)
    after = [event for event in events_of(fresh, row) if event["type"] == "session.thread_status_terminated"]
    on_session = [event for event in session_events(fresh, row["session_id"]) if event.get("session_thread_id") == row["id"] and event["type"] == "session.thread_status_terminated"]

    assert len(before) == 0
    assert len(after) == 1
    assert len(on_session) == 1


def test_archive_bumps_session_updated_at(fresh):
    row = pick(fresh, "idle child", status="idle", archived_at=None, run_open=False)
    before = session_row(fresh, row["session_id"])["updated_at"]

    body = archive(fresh, row).json()
    after = session_row(fresh, row["session_id"])["updated_at"]

    assert after > before
    assert after == body["updated_at"]


def test_archive_again_returns_200_unchanged_without_event(fresh):
    row = pick(fresh, "idle child", status="idle", archived_at=None, run_open=False)
    first = archive(fresh, row).json()
    events_before = events_of(fresh, row)

    second = archive(fresh, row)

    assert second.status == 200
    assert second.json() == first
    assert events_of(fresh, row) == events_before


def test_archive_generated_archived_thread_is_200_unchanged(fresh):
    live = live_session_ids(fresh)
    row = next(r for r in fresh.state_threads() if r["archived_at"] and r["parent_thread_id"] and r["session_id"] in live)
    before = raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (row["session_id"], row["id"])).json()

    response = archive(fresh, row)

    assert response.status == 200
    assert response.json() == before


def test_archive_terminated_never_archived_stamps_only(fresh):
    row = pick(fresh, "terminated, never archived child", status="terminated", archived_at=None)
    events_before = events_of(fresh, row)

    response = archive(fresh, row)

    assert response.status == 200
    assert response.json()["status"] == "terminated"
    assert response.json()["archived_at"] is not None
    assert events_of(fresh, row) == events_before


def test_archive_running_child_is_409(fresh):
    row = pick(fresh, "running child", status="running")

    response = archive(fresh, row)

    assert response.status == 409
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert thread_row(fresh, row["id"])["status"] == "running"


def test_archive_rescheduling_child_is_409(fresh):
    row = pick(fresh, "rescheduling child", status="rescheduling")

    response = archive(fresh, row)

    assert response.status == 409


def test_archive_open_workflow_run_thread_is_409(fresh):
    row = pick(fresh, "idle thread of an open workflow run", status="idle", run_open=True)

    response = archive(fresh, row)

    assert response.status == 409
    assert thread_row(fresh, row["id"])["archived_at"] is None


def test_archive_closed_workflow_run_idle_thread_is_200(fresh):
    live = live_session_ids(fresh)
    row = next(
        (r for r in fresh.state_threads() if r["workflow_run_id"] and not r["run_open"] and r["status"] == "idle" and not r["archived_at"] and r["session_id"] in live),
        None,
    )
    assert row is not None, "generated data has no idle thread of a closed workflow run"

    assert archive(fresh, row).status == 200


def test_archive_after_run_closed_succeeds(fresh):
    row = pick(fresh, "idle thread of an open workflow run", status="idle", run_open=True)
    fresh.set_thread(row["id"], run_open=False)

    response = archive(fresh, row)

    assert response.status == 200


def test_archive_primary_is_400_by_default(fresh):
    row = next(r for r in fresh.state_threads() if r["parent_thread_id"] is None)

    response = archive(fresh, row)

    assert response.status == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_archive_primary_status_switch_409(emulator_factory):
    emulator = emulator_factory("--sessions", "5", "--primary-archive-status", "409")
    row = next(r for r in emulator.state_threads() if r["parent_thread_id"] is None)

    response = archive(emulator, row)

    assert response.status == 409
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_archive_unknown_status_odd_record_is_409(emulator_factory):
    emulator = emulator_factory("--sessions", "5", "--odd-records", "1")
    row = next(r for r in emulator.state_threads() if r["status"] == "paused_for_review")

    response = archive(emulator, row)

    assert response.status == 409


# Interrupts


def test_interrupt_then_archive(fresh):
    row = pick(fresh, "running child", status="running", run_open=False)
    assert archive(fresh, row).status == 409

    sent = raw_request(fresh, "POST", "/v1/sessions/%s/events" % row["session_id"], body={"events": [{"type": "user.interrupt", "session_thread_id": row["id"]}]})
    assert sent.status == 200
    assert sent.json()["data"][0]["session_thread_id"] == row["id"]

    idle = wait_for_status(fresh, row["id"], "idle")
    assert idle["usage"] is not None
    idle_events = [event for event in events_of(fresh, row) if event["type"] == "session.thread_status_idle"]
    assert idle_events[-1]["stop_reason"] == {"type": "end_turn"}

    assert archive(fresh, row).status == 200


def test_interrupt_waits_for_delay(emulator_factory):
    emulator = emulator_factory("--sessions", "20", "--interrupt-delay-ms", "1500")
    row = pick(emulator, "running child", status="running")

    raw_request(emulator, "POST", "/v1/sessions/%s/events" % row["session_id"], body={"events": [{"type": "user.interrupt", "session_thread_id": row["id"]}]})

    assert thread_row(emulator, row["id"])["status"] == "running"
    wait_for_status(emulator, row["id"], "idle", timeout=5)


def test_interrupt_terminated_thread_is_400(fresh):
    row = pick(fresh, "terminated child", status="terminated")

    response = raw_request(fresh, "POST", "/v1/sessions/%s/events" % row["session_id"], body={"events": [{"type": "user.interrupt", "session_thread_id": row["id"]}]})

    assert response.status == 400


def test_interrupt_without_thread_idles_every_running_thread(fresh):
    running = pick(fresh, "running child", status="running")
    session_id = running["session_id"]

    response = raw_request(fresh, "POST", "/v1/sessions/%s/events" % session_id, body={"events": [{"type": "user.interrupt"}]})
    assert response.status == 200

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        statuses = {row["status"] for row in fresh.state_threads() if row["session_id"] == session_id and not row["archived_at"]}
        if "running" not in statuses:
            break
        time.sleep(0.05)
    assert "running" not in statuses
    assert session_row(fresh, session_id)["status"] != "running"


def test_send_other_event_type_is_400(fresh):
    session_id = next(iter(live_session_ids(fresh)))

    response = raw_request(fresh, "POST", "/v1/sessions/%s/events" % session_id, body={"events": [{"type": "user.message", "content": []}]})

    assert response.status == 400


def test_send_to_archived_session_is_409(fresh):
    session = next(row for row in fresh.state_sessions() if row["archived_at"])

    response = raw_request(fresh, "POST", "/v1/sessions/%s/events" % session["id"], body={"events": [{"type": "user.interrupt"}]})

    assert response.status == 409
    assert response.json()["error"]["type"] == "invalid_request_error"


# Session archive and delete


def idle_session(emulator) -> dict:
    return next(row for row in emulator.state_sessions() if row["status"] == "idle" and not row["archived_at"] and row["thread_count"] > 2)


def test_session_archive_cascades_to_threads(fresh):
    session = idle_session(fresh)

    response = raw_request(fresh, "POST", "/v1/sessions/%s/archive" % session["id"])

    assert response.status == 200
    body = strict(MODELS["session"], response.text)
    assert body.status == "terminated"
    assert body.archived_at is not None
    rows = [row for row in fresh.state_threads() if row["session_id"] == session["id"]]
    assert {row["status"] for row in rows} == {"terminated"}
    assert all(row["archived_at"] for row in rows)


def test_session_archive_gives_threads_session_archived_at(fresh):
    session = idle_session(fresh)
    newly = [row["id"] for row in fresh.state_threads() if row["session_id"] == session["id"] and not row["archived_at"]]

    archived_at = raw_request(fresh, "POST", "/v1/sessions/%s/archive" % session["id"]).json()["archived_at"]

    for thread_id in newly:
        assert thread_row(fresh, thread_id)["archived_at"] == archived_at


def test_session_archive_again_is_200_unchanged(fresh):
    session = next(row for row in fresh.state_sessions() if row["archived_at"])
    before = raw_request(fresh, "GET", "/v1/sessions/%s" % session["id"]).json()

    response = raw_request(fresh, "POST", "/v1/sessions/%s/archive" % session["id"])

    assert response.status == 200
    assert response.json() == before


def test_session_archive_running_is_409(fresh):
    session = next(row for row in fresh.state_sessions() if row["status"] == "running")

    response = raw_request(fresh, "POST", "/v1/sessions/%s/archive" % session["id"])

    assert response.status == 409
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_session_delete_running_is_409(fresh):
    session = next(row for row in fresh.state_sessions() if row["status"] == "running")

    response = raw_request(fresh, "DELETE", "/v1/sessions/%s" % session["id"])

    assert response.status == 409


def test_session_delete_removes_session_and_threads(fresh):
    session = idle_session(fresh)

    assert raw_request(fresh, "DELETE", "/v1/sessions/%s" % session["id"]).status == 200

    assert raw_request(fresh, "GET", "/v1/sessions/%s" % session["id"]).status == 404
    assert not [row for row in fresh.state_threads() if row["session_id"] == session["id"]]


def test_thread_of_archived_session_already_archived_is_200(fresh):
    session = idle_session(fresh)
    raw_request(fresh, "POST", "/v1/sessions/%s/archive" % session["id"])
    row = next(r for r in fresh.state_threads() if r["session_id"] == session["id"] and r["parent_thread_id"])

    response = archive(fresh, row)

    assert response.status == 200


def test_no_cascade_leaves_threads(emulator_factory):
    emulator = emulator_factory("--sessions", "20", "--no-cascade")
    session = idle_session(emulator)
    before = {row["id"]: row for row in emulator.state_threads() if row["session_id"] == session["id"]}

    body = raw_request(emulator, "POST", "/v1/sessions/%s/archive" % session["id"]).json()

    assert body["status"] == "terminated"
    after = {row["id"]: row for row in emulator.state_threads() if row["session_id"] == session["id"]}
    assert {key: (row["status"], row["archived_at"]) for key, row in after.items()} == {key: (row["status"], row["archived_at"]) for key, row in before.items()}


def test_archived_session_thread_archive_default_409(emulator_factory):
    emulator = emulator_factory("--sessions", "20", "--no-cascade")
    session = idle_session(emulator)
    raw_request(emulator, "POST", "/v1/sessions/%s/archive" % session["id"])
    row = next(r for r in emulator.state_threads() if r["session_id"] == session["id"] and r["parent_thread_id"] and not r["archived_at"])

    response = archive(emulator, row)

    assert response.status == 409


def test_archived_session_thread_archive_switch_200(emulator_factory):
    emulator = emulator_factory("--sessions", "20", "--no-cascade", "--archived-session-thread-archive-status", "200")
    session = idle_session(emulator)
    raw_request(emulator, "POST", "/v1/sessions/%s/archive" % session["id"])
    row = next(
        r for r in emulator.state_threads()
        if r["session_id"] == session["id"] and r["parent_thread_id"] and not r["archived_at"] and r["status"] in ("idle", "terminated") and not r["run_open"]
    )

    response = archive(emulator, row)

    assert response.status == 200
    assert response.json()["archived_at"] is not None


def test_generated_archived_sessions_cascade(fresh):
    for session in fresh.state_sessions():
        if not session["archived_at"]:
            continue
        rows = [row for row in fresh.state_threads() if row["session_id"] == session["id"]]
        assert all(row["archived_at"] for row in rows)
        assert session["status"] == "terminated"


# Session status aggregate and test controls


def test_session_status_aggregates_threads(fresh):
    for session in fresh.state_sessions():
        rows = [row for row in fresh.state_threads() if row["session_id"] == session["id"]]
        live = {row["status"] for row in rows if not row["archived_at"]}
        if session["archived_at"]:
            assert session["status"] == "terminated"
        elif "running" in live:
            assert session["status"] == "running"
        else:
            assert session["status"] != "running"


def test_control_set_thread_running_makes_session_running(fresh):
    row = pick(fresh, "idle child", status="idle", archived_at=None)
    session_before = session_row(fresh, row["session_id"])

    fresh.set_thread(row["id"], status="running")

    session_after = session_row(fresh, row["session_id"])
    assert session_after["status"] == "running"
    assert session_after["updated_at"] > session_before["updated_at"]
    assert events_of(fresh, row)[-1]["type"] == "session.thread_status_running"


def test_control_set_thread_archive(fresh):
    row = pick(fresh, "idle child", status="idle", archived_at=None)

    body = fresh.set_thread(row["id"], archive=True)

    assert body["status"] == "terminated"
    assert body["archived_at"] is not None


def test_control_set_thread_unknown_is_error(fresh):
    response = raw_request(fresh, "POST", "/_emulator/threads/sthr_011CMISSING", body={"status": "idle"}, auth=False)

    assert response.status == 404


def test_control_touch_session_changes_title_and_updated_at(fresh):
    session = fresh.state_sessions()[0]

    body = fresh.touch_session(session["id"], title="Renamed by a test")

    assert body["title"] == "Renamed by a test"
    assert body["updated_at"] > session["updated_at"]


def test_control_add_thread_appears_in_list(fresh):
    session = idle_session(fresh)

    added = fresh.add_thread(session["id"])
    listed = raw_request(fresh, "GET", "/v1/sessions/%s/threads" % session["id"]).json()["data"]

    assert strict(MODELS["thread"], raw_request(fresh, "GET", "/v1/sessions/%s/threads/%s" % (session["id"], added["id"])).text).status == "running"
    assert listed[-1]["id"] == added["id"]
    assert session_row(fresh, session["id"])["status"] == "running"


def test_control_reset_restores_generated_state(fresh):
    before = fresh.state_threads()
    row = pick(fresh, "idle child", status="idle", archived_at=None, run_open=False)
    archive(fresh, row)

    fresh.reset()

    assert fresh.state_threads() == before
