"""Read session and thread records from the API as raw JSON, page by page.

The snapshots store the JSON exactly as received, and the SDK's typed objects could
coerce values. So every call goes through `with_raw_response`, and this module
follows `next_page` itself.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic

# Largest page the sessions list accepts (the emulator's maximum; the API's is not
# documented) and the threads list's documented default.
SESSIONS_PAGE_SIZE = 100
THREADS_PAGE_SIZE = 1000
# Stops a server that keeps returning cursors; far more pages than any real account has.
MAX_PAGES = 100_000


class MalformedResponse(Exception):
    """Raised when a successful response's body is not the JSON shape the API documents."""

    def __init__(self, message: str, *, request_id: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id


def session_pages(client: anthropic.Anthropic) -> Iterator[list[Any]]:
    """Yield the `data` list of each sessions page, archived sessions included."""

    def fetch(cursor: str | None):
        extra = {"page": cursor} if cursor else {}
        return client.beta.sessions.with_raw_response.list(
            include_archived=True, limit=SESSIONS_PAGE_SIZE, **extra
        )

    return _pages_follow(fetch)


def thread_pages(client: anthropic.Anthropic, *, session_id: str) -> Iterator[list[Any]]:
    """Yield the `data` list of each page of one session's threads."""

    def fetch(cursor: str | None):
        extra = {"page": cursor} if cursor else {}
        return client.beta.sessions.threads.with_raw_response.list(
            session_id, limit=THREADS_PAGE_SIZE, **extra
        )

    return _pages_follow(fetch)


def session_record_retrieve(client: anthropic.Anthropic, *, session_id: str) -> Any:
    """Return one session's JSON record. Raises anthropic.NotFoundError on 404."""
    response = client.beta.sessions.with_raw_response.retrieve(session_id)
    return _json_body(response)


def thread_record_retrieve(client: anthropic.Anthropic, *, session_id: str, thread_id: str) -> Any:
    """Return one thread's JSON record. Raises anthropic.NotFoundError on 404."""
    response = client.beta.sessions.threads.with_raw_response.retrieve(thread_id, session_id=session_id)
    return _json_body(response)


def _pages_follow(fetch: Callable[[str | None], Any]) -> Iterator[list[Any]]:
    cursor: str | None = None
    used_cursors: set[str] = set()

    for _ in range(MAX_PAGES):
        response = fetch(cursor)
        body = _json_body(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise MalformedResponse("The list response has no 'data' list.", request_id=_request_id(response))
        yield data

        next_page = body.get("next_page")
        if not next_page:
            return
        if not isinstance(next_page, str) or next_page in used_cursors:
            raise MalformedResponse(
                "The list response repeated or mangled its next_page cursor: %s." % repr(next_page)[:100],
                request_id=_request_id(response),
            )
        used_cursors.add(next_page)
        cursor = next_page

    raise MalformedResponse("The list went on for more than %d pages." % MAX_PAGES)


def _json_body(response: Any) -> Any:
    try:
        return response.http_response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            "The response body is not valid JSON: %s" % exc, request_id=_request_id(response)
        ) from exc


def _request_id(response: Any) -> str:
    return response.http_response.headers.get("request-id", "")
