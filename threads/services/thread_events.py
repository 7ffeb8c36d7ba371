"""Fetch a thread's recent events from the API for the thread page.

The only API call a page makes while a person waits: it runs from a lazily loaded
fragment, at interactive priority, and turns every failure into a plain message.
"""

import logging
from dataclasses import dataclass
from typing import Any

import anthropic
from django.core.exceptions import ImproperlyConfigured

from threads.client import api_client
from threads.rate_limit import Priority, RateLimitWaitTimeout

logger = logging.getLogger(__name__)

RECENT_EVENTS_LIMIT = 50
MESSAGE_PREVIEW_CHARS = 300


class ThreadEventsUnavailable(Exception):
    """The events could not be fetched; `str(exc)` is safe to show to the user."""


@dataclass(frozen=True)
class EventRow:
    """One event as the thread page lists it; `raw` is the event's JSON."""

    id: str
    type: str
    processed_at: str | None
    summary: str
    raw: dict[str, Any]


def thread_events_recent(
    *, session_id: str, thread_id: str, limit: int = RECENT_EVENTS_LIMIT
) -> list[EventRow]:
    """Return the first `limit` events of the thread's stream, from one API request.

    Raises ThreadEventsUnavailable with a message fit for the page when the API
    rejects or fails the request, or the rate limiter cannot grant a slot in time.
    """
    try:
        client = api_client(priority=Priority.INTERACTIVE)
        page = client.beta.sessions.threads.events.list(thread_id, session_id=session_id, limit=limit)
        # `page.data` only: iterating the page itself would follow every next_page.
        events = [event.to_dict() for event in page.data]
    except anthropic.APIStatusError as exc:
        logger.warning(
            "Thread events request failed",
            extra={
                "session_id": session_id,
                "thread_id": thread_id,
                "status": exc.status_code,
                "request_id": exc.request_id or "",
            },
        )
        if exc.status_code == 404:
            raise ThreadEventsUnavailable("The API no longer returns this thread's events (404).") from exc
        if exc.status_code == 429:
            raise ThreadEventsUnavailable(
                "The API is rate limiting requests. Try again in a minute."
            ) from exc
        raise ThreadEventsUnavailable(
            "The API rejected the events request (HTTP %d). Try again later." % exc.status_code
        ) from exc
    except anthropic.APIConnectionError as exc:
        logger.warning(
            "Thread events request failed without a response",
            extra={"session_id": session_id, "thread_id": thread_id, "error_type": type(exc).__name__},
        )
        raise ThreadEventsUnavailable("The API could not be reached, or timed out. Try again later.") from exc
    except RateLimitWaitTimeout as exc:
        raise ThreadEventsUnavailable(
            "The dashboard's API rate limit is busy with other work. Try again in a minute."
        ) from exc
    except ImproperlyConfigured as exc:
        raise ThreadEventsUnavailable("The dashboard has no API key configured.") from exc

    return [event_row_from_raw(event) for event in events]


def event_row_from_raw(event: dict[str, Any]) -> EventRow:
    """Summarise an event in one line: agents, thread ids, stop reason, message text."""
    parts = []
    for key in ("agent_name", "from_agent_name", "to_agent_name"):
        if event.get(key):
            parts.append(str(event[key]))
    for key in ("session_thread_id", "from_session_thread_id", "to_session_thread_id"):
        if event.get(key):
            parts.append(str(event[key]))
    stop_reason = event.get("stop_reason")
    if isinstance(stop_reason, dict) and stop_reason.get("type"):
        parts.append("stop reason: %s" % stop_reason["type"])
    content = event.get("content")
    if isinstance(content, list):
        texts = [str(block.get("text")) for block in content if isinstance(block, dict) and block.get("text")]
        if texts:
            text = " ".join(texts)
            if len(text) > MESSAGE_PREVIEW_CHARS:
                text = text[:MESSAGE_PREVIEW_CHARS] + "…"
            parts.append(text)

    return EventRow(
        id=str(event.get("id") or ""),
        type=str(event.get("type") or "unknown"),
        processed_at=str(event["processed_at"]) if event.get("processed_at") else None,
        summary=" · ".join(parts),
        raw=event,
    )
