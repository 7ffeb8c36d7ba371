"""Request accounting and injected trouble: the request log, the rate limiter and faults."""

import math
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass

from .timefmt import format_us, now_us

FORCEABLE = (429, 500, 529, "drop")


@dataclass(slots=True)
class TrafficConfig:
    """Settings that ``POST /_emulator/config`` may change at run time.

    Rates are probabilities from 0 to 1 per API request; ``rate_limit`` is requests per
    second across the API, 0 for no limit.
    """

    latency_ms: int = 0
    rate_limit: float = 0.0
    fault_500: float = 0.0
    fault_529: float = 0.0
    fault_drop: float = 0.0
    fault_slow: float = 0.0
    slow_seconds: float = 30.0
    interrupt_delay_ms: int = 200

    def as_dict(self) -> dict:
        return asdict(self)


def config_update(config: TrafficConfig, changes: dict) -> list[str]:
    """Validate ``changes`` and apply them to ``config``; return the problems found, applying nothing if any."""
    problems = []
    fields = config.as_dict()
    for key, value in changes.items():
        if key not in fields:
            problems.append("unknown key %r; allowed: %s" % (key, ", ".join(sorted(fields))))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append("%s: must be a number, got %r" % (key, value))
            continue
        if key.startswith("fault_") and not 0 <= value <= 1:
            problems.append("%s: must be a fraction from 0 to 1, got %r" % (key, value))
        elif value < 0:
            problems.append("%s: must not be negative, got %r" % (key, value))
    if problems:
        return problems
    for key, value in changes.items():
        setattr(config, key, int(value) if isinstance(getattr(config, key), int) else float(value))
    return []


class RequestLog:
    """Counts of API requests by route template and of responses by status (``drop`` for dropped)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            # A request that began before the reset must not add its status after it.
            self.generation += 1
            self.total = 0
            self.endpoints: Counter = Counter()
            self.statuses: Counter = Counter()
            self.thread_archive_calls: Counter = Counter()
            self.thread_archive_changes: Counter = Counter()
            self.session_archive_calls: Counter = Counter()

    def record_request(self, route: str, params: dict[str, str]) -> int:
        """Count one request; return the log generation to pass to `record_status`."""
        with self.lock:
            self.total += 1
            self.endpoints[route] += 1
            if route.endswith("/threads/{thread_id}/archive"):
                self.thread_archive_calls[params["thread_id"]] += 1
            elif route.endswith("/sessions/{session_id}/archive"):
                self.session_archive_calls[params["session_id"]] += 1
            return self.generation

    def record_status(self, status: int | str, *, generation: int) -> None:
        """Count one response, unless its request was counted before the last reset."""
        with self.lock:
            if generation == self.generation:
                self.statuses[str(status)] += 1

    def record_archive_change(self, thread_id: str) -> None:
        with self.lock:
            self.thread_archive_changes[thread_id] += 1

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "total": self.total,
                "endpoints": dict(sorted(self.endpoints.items())),
                "statuses": dict(sorted(self.statuses.items())),
                "thread_archive_calls": dict(self.thread_archive_calls),
                "thread_archive_changes": dict(self.thread_archive_changes),
                "session_archive_calls": dict(self.session_archive_calls),
            }


class RateLimiter:
    """A token bucket holding up to one second of requests, refilled at ``rate`` per second."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = 0.0
        self.rate = 0.0
        self.updated = time.monotonic()

    def reset(self) -> None:
        with self.lock:
            self.rate = 0.0

    def acquire(self, rate: float) -> tuple[bool, int, dict[str, str]]:
        """Take one token; return (allowed, whole seconds to wait, rate-limit headers)."""
        with self.lock:
            clock = time.monotonic()
            if rate != self.rate:
                self.rate = rate
                self.tokens = rate
                self.updated = clock
            self.tokens = min(rate, self.tokens + (clock - self.updated) * rate)
            self.updated = clock
            if self.tokens >= 1:
                self.tokens -= 1
                return True, 0, {}
            wait = max(1, math.ceil((1 - self.tokens) / rate))
            return False, wait, rate_limit_headers(rate, 0, wait)


def rate_limit_headers(limit: float, remaining: int, wait_seconds: int) -> dict[str, str]:
    """Build ``retry-after`` (whole seconds) and the ``anthropic-ratelimit-requests-*`` headers."""
    return {
        "retry-after": str(wait_seconds),
        "anthropic-ratelimit-requests-limit": str(int(limit)),
        "anthropic-ratelimit-requests-remaining": str(remaining),
        "anthropic-ratelimit-requests-reset": format_us(now_us() + wait_seconds * 1_000_000),
    }


class Faults:
    """Forced responses queued by tests and random faults drawn from a seeded RNG."""

    def __init__(self, seed: int):
        self.seed = seed
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.rng = random.Random("faults-%d" % self.seed)
            self.forced: list[int | str] = []

    def force(self, status: int | str, count: int) -> int:
        with self.lock:
            self.forced.extend([status] * count)
            return len(self.forced)

    def pending(self) -> list:
        with self.lock:
            return list(self.forced)

    def draw(self, config: TrafficConfig) -> int | str | None:
        """Return the fault for the next API request: a forced one first, else a random one, else None.

        ``slow`` means hold the response for ``slow_seconds`` and then respond normally.
        """
        with self.lock:
            if self.forced:
                return self.forced.pop(0)
            roll = self.rng.random()
            for fault, rate in (("drop", config.fault_drop), (500, config.fault_500), (529, config.fault_529), ("slow", config.fault_slow)):
                if roll < rate:
                    return fault
                roll -= rate
            return None
