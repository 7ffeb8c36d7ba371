"""One rate limiter for every API call the dashboard makes, across processes.

The API limits requests per organisation, so the web server, every worker, beat and
management commands draw from one token bucket: in Redis when `REDIS_URL` is set,
otherwise in a database row. The bucket refills at `ANTHROPIC_RATE_LIMIT_PER_SECOND`
up to `ANTHROPIC_RATE_LIMIT_BURST` tokens.

Priority works by reserves: an interactive call may take the last token, a bulk call
only while at least `reserve` tokens would remain for interactive calls, and a
background call only while more remain still. Under a steady bulk load the bucket
therefore hovers at the bulk reserve, so a user's refresh finds a token at once and
background sync waits until bulk work eases. Long-run throughput is still the refill
rate, whichever class uses it.

A 429 that gets through anyway pauses every class for its retry-after.
"""

import enum
import logging
import random
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

BUCKET_NAME = "anthropic-api"
REDIS_KEY = "dashboard:rate-limit:" + BUCKET_NAME


class Priority(enum.IntEnum):
    """Priority class of an API call; a lower value goes first."""

    INTERACTIVE = 0
    BULK = 1
    BACKGROUND = 2


class RateLimitWaitTimeout(Exception):
    """Raised when no token became free within the caller's maximum wait."""


class RateLimiterUnavailable(Exception):
    """Raised when the limiter's shared store (Redis) cannot be reached.

    No API call was made; the caller may retry once the store is back.
    """


@dataclass(frozen=True)
class BucketConfig:
    rate_per_second: float
    burst: int

    def reserve_for(self, priority: Priority) -> float:
        """Return the tokens that must remain after a call of this priority takes one."""
        step = max(1.0, self.burst * 0.2)
        return step * int(priority)


# Atomically refill, then take one token if `reserve` tokens would remain.
# Returns {taken (0/1), seconds to wait before trying again} as strings, because
# Redis truncates Lua numbers to integers. Time comes from the Redis server, so
# clocks of the calling machines do not matter.
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local reserve = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'refilled_at', 'paused_until')
local tokens = tonumber(state[1]) or burst
local refilled_at = tonumber(state[2]) or now
local paused_until = tonumber(state[3]) or 0
tokens = math.min(burst, tokens + math.max(0, now - refilled_at) * rate)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'refilled_at', tostring(now))
redis.call('EXPIRE', KEYS[1], 86400)
if now < paused_until then
  return {'0', tostring(paused_until - now)}
end
if tokens - 1 >= reserve then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1))
  return {'1', '0'}
end
return {'0', tostring((reserve + 1 - tokens) / rate)}
"""

_PAUSE_SCRIPT = """
local seconds = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if now + seconds > current then
  redis.call('HSET', KEYS[1], 'paused_until', tostring(now + seconds), 'tokens', '0', 'refilled_at', tostring(now + seconds))
end
redis.call('EXPIRE', KEYS[1], 86400)
return 1
"""


class RedisBucketStore:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._take = self._redis.register_script(_TAKE_SCRIPT)
        self._pause = self._redis.register_script(_PAUSE_SCRIPT)

    def try_take(self, config: BucketConfig, reserve: float) -> tuple[bool, float]:
        import redis

        try:
            taken, wait = self._take(keys=[REDIS_KEY], args=[config.rate_per_second, config.burst, reserve])
        except redis.RedisError as exc:
            raise RateLimiterUnavailable("Rate limiter store unavailable: %s" % type(exc).__name__) from exc
        return taken in (b"1", "1"), float(wait)

    def pause(self, seconds: float) -> None:
        import redis

        try:
            self._pause(keys=[REDIS_KEY], args=[seconds])
        except redis.RedisError as exc:
            raise RateLimiterUnavailable("Rate limiter store unavailable: %s" % type(exc).__name__) from exc

    def reset(self) -> None:
        self._redis.delete(REDIS_KEY)


class DatabaseBucketStore:
    """Bucket in one database row, locked for each take (select_for_update)."""

    def try_take(self, config: BucketConfig, reserve: float) -> tuple[bool, float]:
        from threads.models import RateLimitBucket

        now = time.time()
        with transaction.atomic():
            bucket, _ = RateLimitBucket.objects.select_for_update().get_or_create(
                name=BUCKET_NAME,
                defaults={"tokens": float(config.burst), "refilled_at": now},
            )
            tokens = min(
                float(config.burst),
                bucket.tokens + max(0.0, now - bucket.refilled_at) * config.rate_per_second,
            )
            if now < bucket.paused_until:
                wait, taken = bucket.paused_until - now, False
            elif tokens - 1 >= reserve:
                tokens, wait, taken = tokens - 1, 0.0, True
            else:
                wait, taken = (reserve + 1 - tokens) / config.rate_per_second, False
            bucket.tokens = tokens
            bucket.refilled_at = max(now, bucket.refilled_at)
            bucket.save(update_fields=["tokens", "refilled_at"])
        return taken, wait

    def pause(self, seconds: float) -> None:
        from threads.models import RateLimitBucket

        until = time.time() + seconds
        with transaction.atomic():
            bucket, _ = RateLimitBucket.objects.select_for_update().get_or_create(
                name=BUCKET_NAME, defaults={"tokens": 0.0, "refilled_at": until}
            )
            if until > bucket.paused_until:
                bucket.paused_until = until
                bucket.tokens = 0.0
                bucket.refilled_at = until
                bucket.save(update_fields=["paused_until", "tokens", "refilled_at"])

    def reset(self) -> None:
        from threads.models import RateLimitBucket

        RateLimitBucket.objects.filter(name=BUCKET_NAME).delete()


class RateLimiter:
    """Take tokens from the shared bucket before each API call."""

    def __init__(self, *, store, config: BucketConfig) -> None:
        self.store = store
        self.config = config
        # Threads of one process waiting at one priority take turns at polling the store.
        # A failed poll returns the time until the next token, so without turns every
        # waiting thread polls again for each token. In a local test with 32 threads at
        # 100 tokens/s, that was 17 polls per token, against 2 with turns.
        self._turns = {priority: threading.Lock() for priority in Priority}

    def acquire(self, *, priority: Priority, max_wait_seconds: float) -> float:
        """Block until a token of this priority is free; return the seconds waited.

        Raises RateLimitWaitTimeout when `max_wait_seconds` pass first, including time
        spent waiting for another thread of this process to take its token.
        """
        started = time.monotonic()
        if not self._turns[priority].acquire(timeout=max(0.0, max_wait_seconds)):
            raise self._timeout(priority=priority, max_wait_seconds=max_wait_seconds)
        try:
            return self._poll(priority=priority, max_wait_seconds=max_wait_seconds, started=started)
        finally:
            self._turns[priority].release()

    def _poll(self, *, priority: Priority, max_wait_seconds: float, started: float) -> float:
        reserve = self.config.reserve_for(priority)
        while True:
            taken, wait = self.store.try_take(self.config, reserve)
            waited = time.monotonic() - started
            if taken:
                return waited
            if waited + wait > max_wait_seconds:
                raise self._timeout(priority=priority, max_wait_seconds=max_wait_seconds)
            # Jitter spreads waiting callers so they do not retry in lockstep.
            time.sleep(min(wait, 1.0) * random.uniform(1.0, 1.3) + 0.001)

    @staticmethod
    def _timeout(*, priority: Priority, max_wait_seconds: float) -> RateLimitWaitTimeout:
        return RateLimitWaitTimeout(
            "No API rate-limit token free for a %s call within %.1f s."
            % (priority.name.lower(), max_wait_seconds)
        )

    def pause(self, *, seconds: float) -> None:
        """Stop every caller for `seconds`, the retry-after a 429 response carries."""
        logger.warning(
            "API rate limit hit; pausing all API calls",
            extra={"retry_after_seconds": round(seconds, 3)},
        )
        self.store.pause(seconds)

    def reset(self) -> None:
        self.store.reset()


_limiter: RateLimiter | None = None


def get_rate_limiter() -> RateLimiter:
    """Return this process's limiter, built from settings on first use."""
    global _limiter
    if _limiter is None:
        config = BucketConfig(
            rate_per_second=settings.ANTHROPIC_RATE_LIMIT_PER_SECOND,
            burst=settings.ANTHROPIC_RATE_LIMIT_BURST,
        )
        store = RedisBucketStore(settings.REDIS_URL) if settings.REDIS_URL else DatabaseBucketStore()
        _limiter = RateLimiter(store=store, config=config)
    return _limiter


def reset_rate_limiter() -> None:
    """Forget this process's limiter so the next call rebuilds it from settings."""
    global _limiter
    _limiter = None
