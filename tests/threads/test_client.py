"""The SDK client factory and its per-attempt middleware, against the emulator."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from threads.client import api_client, counting_api_calls
from threads.rate_limit import Priority, get_rate_limiter


def test_api_client_cached_per_priority(api_settings):
    first = api_client(priority=Priority.BACKGROUND)

    assert api_client(priority=Priority.BACKGROUND) is first
    assert api_client(priority=Priority.INTERACTIVE) is not first


def test_api_client_requires_key(settings):
    settings.ANTHROPIC_API_KEY = None

    with pytest.raises(ImproperlyConfigured, match="ANTHROPIC_API_KEY is not set"):
        api_client(priority=Priority.BACKGROUND)


@pytest.mark.django_db(transaction=True)
def test_counting_api_calls_counts_retries(api_settings, emulator):
    emulator.force(500, 2)

    with counting_api_calls() as counter:
        api_client(priority=Priority.BACKGROUND).beta.sessions.list(limit=1)

    assert counter.calls == 3


@pytest.mark.django_db(transaction=True)
def test_counting_api_calls_counts_429(api_settings, emulator):
    emulator.force(429, 1)

    with counting_api_calls() as counter:
        api_client(priority=Priority.BACKGROUND).beta.sessions.list(limit=1)

    assert counter.calls == 2
    assert counter.rate_limited == 1


@pytest.mark.django_db(transaction=True)
def test_api_client_429_pauses_limiter(api_settings, emulator):
    import anthropic

    emulator.force(429, 1)
    with pytest.raises(anthropic.RateLimitError):
        api_client(priority=Priority.BACKGROUND, max_retries=0).beta.sessions.list(limit=1)
    limiter = get_rate_limiter()

    taken, wait = limiter.store.try_take(limiter.config, 0)

    # The emulator's 429 carries retry-after: 1.
    assert not taken
    assert 0.5 < wait <= 1.0


@pytest.mark.django_db(transaction=True)
def test_api_client_logs_request_id(api_settings, emulator, caplog):
    caplog.set_level("DEBUG", logger="threads.client")

    api_client(priority=Priority.BACKGROUND).beta.sessions.list(limit=1)

    record = next(r for r in caplog.records if r.getMessage() == "API response")
    assert record.request_id.startswith("req_")
    assert record.status == 200
    assert record.priority == "background"


@pytest.mark.django_db(transaction=True)
def test_api_client_logs_no_api_key(api_settings, emulator, caplog):
    import anthropic

    caplog.set_level("DEBUG")
    emulator.force(500, 3)

    with pytest.raises(anthropic.InternalServerError):
        api_client(priority=Priority.BACKGROUND).beta.sessions.list(limit=1)

    assert api_settings.ANTHROPIC_API_KEY not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_token_wait_deadline_stops_waiting(api_settings, emulator):
    import time

    from threads.client import token_wait_deadline
    from threads.rate_limit import RateLimitWaitTimeout

    emulator.reset_log()
    limiter = get_rate_limiter()
    limiter.pause(seconds=5)
    started = time.monotonic()

    with token_wait_deadline(deadline=time.monotonic() + 0.3), pytest.raises(RateLimitWaitTimeout):
        api_client(priority=Priority.BULK, max_retries=0).beta.sessions.list(limit=1)
    elapsed = time.monotonic() - started

    # Without the deadline a bulk call waits out the pause; the limit is 600 s.
    assert elapsed < 1.0
    assert emulator.log()["total"] == 0


def test_api_clients_prepare_builds_archive_client(api_settings):
    from threads.client import _clients, api_clients_prepare

    api_clients_prepare()

    assert (Priority.BULK, 0) in _clients
    assert api_client(priority=Priority.BULK, max_retries=0) is _clients[(Priority.BULK, 0)]


def test_api_clients_prepare_without_key_builds_nothing(settings):
    from threads.client import _clients, api_clients_prepare

    settings.ANTHROPIC_API_KEY = None

    api_clients_prepare()

    assert _clients == {}
