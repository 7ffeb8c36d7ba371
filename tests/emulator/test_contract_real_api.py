"""Read-only checks against the real Anthropic API, so the emulator's shapes can be compared with it.

Runs only when ANTHROPIC_API_KEY is set and ANTHROPIC_BASE_URL is not, so it never runs by
accident against the emulator, and it only reads: it lists and retrieves sessions,
threads and events and validates each body strictly with the SDK models.
"""

import os

import anthropic
import pytest

from tests.emulator.helpers import MODELS, strict

pytestmark = pytest.mark.skipif(
    not os.environ.get("ANTHROPIC_API_KEY") or bool(os.environ.get("ANTHROPIC_BASE_URL")),
    reason="contract tests need the real API: set ANTHROPIC_API_KEY and leave ANTHROPIC_BASE_URL unset",
)


@pytest.fixture(scope="module")
def real_client():
    return anthropic.Anthropic(max_retries=2, timeout=30)


@pytest.fixture(scope="module")
def real_session_id(real_client):
    page = real_client.beta.sessions.list(limit=1, include_archived=True)
    if not page.data:
        pytest.skip("the account behind ANTHROPIC_API_KEY has no sessions to read")
    return page.data[0].id


def test_real_sessions_list_page_strict(real_client):
    raw = real_client.beta.sessions.with_raw_response.list(limit=5, include_archived=True)

    page = strict(MODELS["session_page"], raw.http_response.text)

    assert "prev_page" in raw.http_response.json()
    assert len(page.data) <= 5


def test_real_session_retrieve_strict(real_client, real_session_id):
    raw = real_client.beta.sessions.with_raw_response.retrieve(real_session_id)

    assert strict(MODELS["session"], raw.http_response.text).id == real_session_id


def test_real_threads_list_strict(real_client, real_session_id):
    raw = real_client.beta.sessions.threads.with_raw_response.list(real_session_id)

    page = strict(MODELS["thread_page"], raw.http_response.text)

    assert "prev_page" not in raw.http_response.json()
    assert sum(1 for thread in page.data if thread.parent_thread_id is None) <= 1


def test_real_thread_retrieve_strict(real_client, real_session_id):
    threads = real_client.beta.sessions.threads.list(real_session_id).data
    if not threads:
        pytest.skip("the session has no threads")

    raw = real_client.beta.sessions.threads.with_raw_response.retrieve(threads[0].id, session_id=real_session_id)

    assert strict(MODELS["thread"], raw.http_response.text).id == threads[0].id


def test_real_session_events_strict(real_client, real_session_id):
    raw = real_client.beta.sessions.events.with_raw_response.list(real_session_id, limit=20)

    strict(MODELS["event_page"], raw.http_response.text)


def test_real_not_found_error_strict(real_client):
    raw = real_client.with_options(max_retries=0).beta.sessions.with_raw_response

    with pytest.raises(anthropic.NotFoundError) as caught:
        raw.retrieve("sesn_011CNOTEXISTING000000000")

    assert strict(MODELS["error"], caught.value.response.text).error.type == "not_found_error"
