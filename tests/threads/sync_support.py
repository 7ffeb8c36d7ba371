"""Fixtures and helpers shared by the sync tests."""

import math

import pytest
from django.db import connection

from threads.services.sync_pages import SESSIONS_PAGE_SIZE

ACTIVE_STATUSES = {"running", "rescheduling"}


@pytest.fixture
def sync_settings(api_settings):
    """Point the API client at the emulator; sync with several workers and small batches.

    SQLite's shared in-memory test database cannot take writes from several threads,
    so on SQLite the sync runs its sessions inline.
    """
    api_settings.SYNC_CONCURRENCY = 1 if connection.vendor == "sqlite" else 4
    api_settings.SYNC_BATCH_SIZE = 7
    return api_settings


def expected_full_sync_calls(emulator) -> int:
    """Return the fewest API calls a full sync needs: session pages plus one list per session."""
    sessions = emulator.state_sessions()
    return session_page_count(len(sessions)) + len(sessions)


def session_page_count(session_count: int) -> int:
    return max(1, math.ceil(session_count / SESSIONS_PAGE_SIZE))


def active_session_ids(emulator) -> set[str]:
    return {row["id"] for row in emulator.state_sessions() if row["status"] in ACTIVE_STATUSES}


def idle_session_id(emulator) -> str:
    """Return the id of an idle, unarchived session."""
    for row in emulator.state_sessions():
        if row["status"] == "idle" and row["archived_at"] is None:
            return row["id"]
    raise AssertionError("the emulator's seed data has no idle unarchived session")
