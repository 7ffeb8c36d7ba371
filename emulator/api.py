"""The ``/v1`` API: routes, query parsing and the calls into the store.

Each handler takes the path parameters, the parsed query (name to list of values) and
the decoded JSON body, and returns ``(status, body)`` or raises ApiError. Unknown query
parameters are ignored, which also covers ``?beta=true``.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from .cursor import Cursor, cursor_decode
from .errors import invalid_request
from .models import SESSION_STATUSES, THREAD_STATUSES
from .store import EventFilters, SessionFilters, Store
from .timefmt import parse_rfc3339
from .traffic import RequestLog

SESSIONS_LIMIT = (20, 100)
THREADS_LIMIT = (1000, 1000)
EVENTS_LIMIT = (100, 1000)

Query = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern
    handler: Callable


def _compile(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


# Query parsing


def _last(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _many(query: Query, name: str) -> list[str]:
    return query.get(name + "[]", []) + query.get(name, [])


def _limit(query: Query, bounds: tuple[int, int]) -> int:
    default, maximum = bounds
    text = _last(query, "limit")
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid_request("limit: must be an integer between 1 and %d, got %r." % (maximum, text)) from None
    if not 1 <= value <= maximum:
        raise invalid_request("limit: must be between 1 and %d, got %d." % (maximum, value))
    return value


def _order(query: Query, default: str) -> str:
    order = _last(query, "order") or default
    if order not in ("asc", "desc"):
        raise invalid_request("order: must be asc or desc, got %r." % order)
    return order


def _cursor(query: Query, order: str, *, allow_backwards: bool) -> Cursor | None:
    page = _last(query, "page")
    if page is None or page == "":
        return None
    return cursor_decode(page, order=order, allow_backwards=allow_backwards)


def _statuses(query: Query, allowed: tuple[str, ...]) -> frozenset[str]:
    values = _many(query, "statuses")
    for value in values:
        if value not in allowed:
            raise invalid_request("statuses[]: must be one of %s, got %r." % (", ".join(allowed), value))
    return frozenset(values)


def _time_bounds(query: Query) -> dict[str, int | None]:
    bounds = {}
    for operator in ("gt", "gte", "lt", "lte"):
        name = "created_at[%s]" % operator
        text = _last(query, name)
        if text is None:
            bounds["created_" + operator] = None
            continue
        try:
            bounds["created_" + operator] = parse_rfc3339(text)
        except ValueError:
            raise invalid_request("%s: must be an RFC 3339 timestamp with a zone, got %r." % (name, text)) from None
    return bounds


def _bool(query: Query, name: str, default: bool) -> bool:
    text = _last(query, name)
    if text is None:
        return default
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise invalid_request("%s: must be true or false, got %r." % (name, text))


def _optional_int(query: Query, name: str) -> int | None:
    text = _last(query, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise invalid_request("%s: must be an integer, got %r." % (name, text)) from None


class Api:
    """The ``/v1`` routes bound to a store and a request log."""

    def __init__(self, store: Store, log: RequestLog):
        self.store = store
        self.log = log
        self.routes = [
            Route(method, template, _compile(template), handler)
            for method, template, handler in (
                ("GET", "/v1/sessions", self.sessions_list),
                ("GET", "/v1/sessions/{session_id}", self.session_retrieve),
                ("DELETE", "/v1/sessions/{session_id}", self.session_delete),
                ("POST", "/v1/sessions/{session_id}/archive", self.session_archive),
                ("GET", "/v1/sessions/{session_id}/threads", self.threads_list),
                ("GET", "/v1/sessions/{session_id}/threads/{thread_id}", self.thread_retrieve),
                ("POST", "/v1/sessions/{session_id}/threads/{thread_id}/archive", self.thread_archive),
                ("GET", "/v1/sessions/{session_id}/events", self.session_events_list),
                ("POST", "/v1/sessions/{session_id}/events", self.events_send),
                ("GET", "/v1/sessions/{session_id}/threads/{thread_id}/events", self.thread_events_list),
            )
        ]

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Find the route for ``method`` and ``path``.

        The returned flag is true when the path exists for another method, so the caller can
        send 405 instead of 404.
        """
        path_known = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict(), True
            path_known = True
        return None, {}, path_known

    # Sessions

    def sessions_list(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        order = _order(query, "desc")
        filters = SessionFilters(
            statuses=_statuses(query, SESSION_STATUSES),
            include_archived=_bool(query, "include_archived", False),
            agent_id=_last(query, "agent_id"),
            agent_version=_optional_int(query, "agent_version"),
            deployment_id=_last(query, "deployment_id"),
            memory_store_id=_last(query, "memory_store_id"),
            **_time_bounds(query),
        )
        limit = _limit(query, SESSIONS_LIMIT)
        cursor = _cursor(query, order, allow_backwards=True)
        return 200, self.store.session_list(filters, order=order, limit=limit, cursor=cursor)

    def session_retrieve(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        return 200, self.store.session_get(params["session_id"])

    def session_delete(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        return 200, self.store.session_delete(params["session_id"])

    def session_archive(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        return 200, self.store.session_archive(params["session_id"])

    # Threads

    def threads_list(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        statuses = _statuses(query, THREAD_STATUSES)
        limit = _limit(query, THREADS_LIMIT)
        cursor = _cursor(query, "asc", allow_backwards=False)
        return 200, self.store.thread_list(params["session_id"], statuses=statuses, limit=limit, cursor=cursor)

    def thread_retrieve(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        return 200, self.store.thread_get(params["session_id"], params["thread_id"])

    def thread_archive(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        result = self.store.thread_archive(params["session_id"], params["thread_id"])
        if result.changed:
            self.log.record_archive_change(params["thread_id"])
        return 200, result.body

    # Events

    def session_events_list(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        order = _order(query, "asc")
        filters = EventFilters(types=frozenset(_many(query, "types")), **_time_bounds(query))
        limit = _limit(query, EVENTS_LIMIT)
        cursor = _cursor(query, order, allow_backwards=False)
        return 200, self.store.session_events(params["session_id"], filters, order=order, limit=limit, cursor=cursor)

    def thread_events_list(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        limit = _limit(query, EVENTS_LIMIT)
        cursor = _cursor(query, "asc", allow_backwards=False)
        return 200, self.store.thread_events(params["session_id"], params["thread_id"], limit=limit, cursor=cursor)

    def events_send(self, params: dict, query: Query, body: object) -> tuple[int, dict]:
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list) or not events:
            raise invalid_request("events: a non-empty list of events is required.")
        return 200, self.store.events_send(params["session_id"], events)
