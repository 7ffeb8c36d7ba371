"""The shared token bucket, on the database store and on Redis."""

import threading
import time

import pytest

from threads.rate_limit import (
    BucketConfig,
    DatabaseBucketStore,
    Priority,
    RateLimiter,
    RateLimitWaitTimeout,
    RedisBucketStore,
)

# Worker threads use their own connections, so the bucket row must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def store(request):
    """A fresh bucket store of each kind."""
    if request.param == "database":
        return DatabaseBucketStore()

    store = RedisBucketStore(request.getfixturevalue("redis_url"))
    store.reset()
    return store


def _limiter(store, *, rate: float, burst: int) -> RateLimiter:
    return RateLimiter(store=store, config=BucketConfig(rate_per_second=rate, burst=burst))


def _drain(limiter: RateLimiter, priority: Priority) -> int:
    """Take tokens at this priority until none is free at once; return how many."""
    taken = 0
    while True:
        ok, _ = limiter.store.try_take(limiter.config, limiter.config.reserve_for(priority))
        if not ok:
            return taken
        taken += 1


def test_rate_limit_reserves_by_priority(store):
    limiter = _limiter(store, rate=0.01, burst=10)

    background = _drain(limiter, Priority.BACKGROUND)
    bulk = _drain(limiter, Priority.BULK)
    interactive = _drain(limiter, Priority.INTERACTIVE)

    # Reserves of 4 and 2 tokens out of 10.
    assert background == 6
    assert bulk == 2
    assert interactive == 2


def test_rate_limit_interactive_served_while_bulk_waits(store):
    from django.db import connection

    if isinstance(store, DatabaseBucketStore) and connection.vendor == "sqlite":
        pytest.skip("SQLite's shared in-memory test database fails writes from a second thread")
    limiter = _limiter(store, rate=2.0, burst=10)
    _drain(limiter, Priority.BULK)
    bulk_done = threading.Event()

    def bulk_call():
        from django.db import connections

        try:
            limiter.acquire(priority=Priority.BULK, max_wait_seconds=30)
            bulk_done.set()
        finally:
            connections.close_all()

    worker = threading.Thread(target=bulk_call)
    worker.start()
    started = time.monotonic()
    limiter.acquire(priority=Priority.INTERACTIVE, max_wait_seconds=5)
    interactive_wait = time.monotonic() - started
    interactive_first = not bulk_done.is_set()
    worker.join(timeout=30)

    assert interactive_wait < 0.2
    assert interactive_first
    assert bulk_done.is_set()


def test_rate_limit_pause_blocks_every_priority(store):
    limiter = _limiter(store, rate=100.0, burst=10)
    # Measured from before the pause: under load, pause() itself can take most of it.
    pause_ends = time.time() + 1.0
    limiter.pause(seconds=1.0)

    limiter.acquire(priority=Priority.INTERACTIVE, max_wait_seconds=5)

    assert time.time() >= pause_ends


def test_rate_limit_pause_keeps_longer_pause(store):
    limiter = _limiter(store, rate=100.0, burst=10)
    longer_pause_ends = time.time() + 1.0
    limiter.pause(seconds=1.0)
    limiter.pause(seconds=0.1)

    limiter.acquire(priority=Priority.INTERACTIVE, max_wait_seconds=5)

    assert time.time() >= longer_pause_ends


def test_rate_limit_rate_over_short_window(store):
    limiter = _limiter(store, rate=20.0, burst=1)
    _drain(limiter, Priority.INTERACTIVE)

    started = time.monotonic()
    for _ in range(10):
        limiter.acquire(priority=Priority.INTERACTIVE, max_wait_seconds=5)
    elapsed = time.monotonic() - started

    # Ten tokens at 20 per second take about half a second; jitter adds up to 30%.
    assert elapsed >= 0.45
    assert elapsed < 1.5


def test_rate_limit_wait_timeout_raised(store):
    limiter = _limiter(store, rate=0.1, burst=1)
    _drain(limiter, Priority.INTERACTIVE)

    with pytest.raises(RateLimitWaitTimeout):
        limiter.acquire(priority=Priority.INTERACTIVE, max_wait_seconds=0.5)


@pytest.mark.redis
def test_rate_limit_redis_shared_between_limiters(redis_url):
    first = _limiter(RedisBucketStore(redis_url), rate=0.01, burst=5)
    second = _limiter(RedisBucketStore(redis_url), rate=0.01, burst=5)

    taken = _drain(first, Priority.INTERACTIVE)

    assert taken == 5
    assert _drain(second, Priority.INTERACTIVE) == 0


class _CountingStore:
    """A real store that counts the polls made through it."""

    def __init__(self, store) -> None:
        self.store = store
        self.polls = 0
        self._lock = threading.Lock()

    def try_take(self, config, reserve):
        with self._lock:
            self.polls += 1
        return self.store.try_take(config, reserve)


@pytest.mark.redis
def test_rate_limit_waiting_threads_poll_in_turn(redis_url):
    # Sixteen threads of one process take 50 bulk tokens at 100 per second. A failed
    # poll returns the time until the next token, so when every thread polls, about
    # every thread polls again for each token (9 polls per token without turns).
    store = RedisBucketStore(redis_url)
    store.reset()
    counting = _CountingStore(store)
    limiter = RateLimiter(store=counting, config=BucketConfig(rate_per_second=100.0, burst=10))
    _drain(limiter, Priority.BULK)
    counting.polls = 0
    tickets = iter(range(50))
    acquired = []
    lock = threading.Lock()

    def take_tokens():
        while True:
            with lock:
                if next(tickets, None) is None:
                    return
            limiter.acquire(priority=Priority.BULK, max_wait_seconds=10)
            with lock:
                acquired.append(1)

    threads = [threading.Thread(target=take_tokens) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(acquired) == 50
    assert counting.polls <= 50 * 3
