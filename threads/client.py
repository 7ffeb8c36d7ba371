"""The only place that builds `anthropic` SDK clients.

Every client carries two middlewares, which the SDK runs once per HTTP attempt
(retries included): the shared rate limiter, at the priority the caller asks for,
and a log line per response with its request id. Clients are cached per process
by (priority, max_retries) and are safe to share between threads.
"""

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx2
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from threads.rate_limit import Priority, get_rate_limiter

logger = logging.getLogger(__name__)

# How long a call may wait for a rate-limit token, by priority. A person waits on an
# interactive call, so it gives up sooner.
MAX_TOKEN_WAIT_SECONDS = {
    Priority.INTERACTIVE: 20.0,
    Priority.BULK: 600.0,
    Priority.BACKGROUND: 600.0,
}


class ApiCallCounter:
    """Thread-safe count of HTTP attempts made while it is active."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.rate_limited = 0

    def add(self, *, status_code: int | None) -> None:
        with self._lock:
            self.calls += 1
            if status_code == 429:
                self.rate_limited += 1


_active_counter: contextvars.ContextVar[ApiCallCounter | None] = contextvars.ContextVar(
    "active_api_call_counter", default=None
)
# Monotonic time after which a call in this context waits for no rate-limit token.
_token_wait_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "token_wait_deadline", default=None
)


@contextmanager
def counting_api_calls() -> Iterator[ApiCallCounter]:
    """Count every API attempt made in this context (copy the context into worker threads)."""
    counter = ApiCallCounter()
    token = _active_counter.set(counter)
    try:
        yield counter
    finally:
        _active_counter.reset(token)


@contextmanager
def token_wait_deadline(*, deadline: float) -> Iterator[None]:
    """Make calls in this context raise RateLimitWaitTimeout instead of waiting past `deadline`.

    `deadline` is a `time.monotonic()` value. It shortens the priority's usual maximum
    wait and never lengthens it. Copy the context into worker threads to apply it there.
    """
    token = _token_wait_deadline.set(deadline)
    try:
        yield
    finally:
        _token_wait_deadline.reset(token)


def _max_token_wait_seconds(priority: Priority) -> float:
    deadline = _token_wait_deadline.get()
    if deadline is None:
        return MAX_TOKEN_WAIT_SECONDS[priority]
    return max(0.0, min(MAX_TOKEN_WAIT_SECONDS[priority], deadline - time.monotonic()))


def _retry_after_seconds(headers: Any) -> float:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return 1.0


class RateLimitAndLogMiddleware(anthropic.Middleware):
    """Meter each attempt through the shared limiter and log its outcome."""

    def __init__(self, priority: Priority) -> None:
        self.priority = priority

    def handle(self, request, call_next):
        limiter = get_rate_limiter()
        waited = limiter.acquire(
            priority=self.priority, max_wait_seconds=_max_token_wait_seconds(self.priority)
        )

        started = time.monotonic()
        counter = _active_counter.get()
        try:
            response = call_next(request)
        except Exception as exc:
            if counter is not None:
                counter.add(status_code=None)
            logger.warning(
                "API request failed without a response",
                extra={
                    "method": request.method,
                    "path": _path_of(request),
                    "error_type": type(exc).__name__,
                    "attempt": request.retries_taken + 1,
                    "elapsed_ms": round((time.monotonic() - started) * 1000),
                },
            )
            raise

        if counter is not None:
            counter.add(status_code=response.status_code)
        if response.status_code == 429:
            limiter.pause(seconds=_retry_after_seconds(response.headers))
        logger.log(
            logging.DEBUG if response.status_code < 400 else logging.INFO,
            "API response",
            extra={
                "method": request.method,
                "path": _path_of(request),
                "status": response.status_code,
                "request_id": response.headers.get("request-id", ""),
                "attempt": request.retries_taken + 1,
                "token_wait_ms": round(waited * 1000),
                "elapsed_ms": round((time.monotonic() - started) * 1000),
                "priority": self.priority.name.lower(),
            },
        )
        return response


def _path_of(request) -> str:
    # The URL has no credentials in it; the key travels in a header.
    try:
        return httpx2.URL(request.url).path
    except Exception:  # noqa: BLE001 - a log field must never break the call
        return "?"


_clients: dict[tuple[Priority, int], anthropic.Anthropic] = {}
_clients_lock = threading.Lock()


def api_client(*, priority: Priority, max_retries: int | None = None) -> anthropic.Anthropic:
    """Return the SDK client for calls of this priority, built from settings.

    `max_retries=None` takes `ANTHROPIC_MAX_RETRIES`; archive calls pass 0 and schedule
    their own retries. Raises ImproperlyConfigured when `ANTHROPIC_API_KEY` is unset.
    """
    if max_retries is None:
        max_retries = settings.ANTHROPIC_MAX_RETRIES
    key = (priority, max_retries)

    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _build_client(priority=priority, max_retries=max_retries)
            _clients[key] = client
    return client


def api_clients_prepare() -> None:
    """Build the clients that worker tasks use, so the first task does not wait for them.

    A client takes tens of milliseconds of CPU to build, mostly for its TLS context.
    Makes no network call. Does nothing when ANTHROPIC_API_KEY is unset, so the first
    call raises ImproperlyConfigured as usual.
    """
    if not settings.ANTHROPIC_API_KEY:
        return
    api_client(priority=Priority.BULK, max_retries=0)
    api_client(priority=Priority.BACKGROUND)


def _build_client(*, priority: Priority, max_retries: int) -> anthropic.Anthropic:
    if not settings.ANTHROPIC_API_KEY:
        raise ImproperlyConfigured(
            "ANTHROPIC_API_KEY is not set. Set it to an API key, or to the emulator's key "
            "(sk-ant-emulator) together with ANTHROPIC_BASE_URL."
        )

    default_headers = {}
    if settings.ANTHROPIC_WORKSPACE_ID:
        default_headers["anthropic-workspace-id"] = settings.ANTHROPIC_WORKSPACE_ID

    return anthropic.Anthropic(
        api_key=settings.ANTHROPIC_API_KEY,
        base_url=settings.ANTHROPIC_BASE_URL,
        timeout=httpx2.Timeout(
            settings.ANTHROPIC_READ_TIMEOUT_SECONDS,
            connect=settings.ANTHROPIC_CONNECT_TIMEOUT_SECONDS,
        ),
        max_retries=max_retries,
        default_headers=default_headers,
        middleware=[RateLimitAndLogMiddleware(priority)],
        open_telemetry=False,
    )


def reset_api_clients() -> None:
    """Close and forget the cached clients, so the next call reads settings again."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
