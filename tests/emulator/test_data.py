"""Consistency of the generated data itself."""

from tests.emulator.helpers import raw_request


def _all_sessions(emulator) -> list[dict]:
    sessions, page = [], None
    for _ in range(100):
        query = {"limit": 100, "include_archived": "true"}
        if page:
            query["page"] = page
        body = raw_request(emulator, "GET", "/v1/sessions", query=query).json()
        sessions += body["data"]
        page = body["next_page"]
        if not page:
            return sessions
    raise AssertionError("sessions list did not end within 100 pages")


def test_session_active_time_within_duration(emulator):
    emulator.reset()

    sessions = _all_sessions(emulator)
    too_long = [
        session["id"]
        for session in sessions
        if session["stats"].get("active_seconds", 0) > session["stats"].get("duration_seconds", 0) + 0.001
    ]

    assert sessions
    assert too_long == []


def test_session_active_time_equals_usage_runtime(emulator):
    emulator.reset()

    sessions = _all_sessions(emulator)
    different = [
        session["id"]
        for session in sessions
        if session["stats"].get("active_seconds") != session["usage"].get("active_seconds")
    ]

    assert different == []
