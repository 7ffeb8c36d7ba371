"""Strict response validation with the SDK's own models, and raw HTTP helpers."""

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import List, Optional

import anthropic
import pydantic
from anthropic.types.beta import BetaManagedAgentsDeletedSession, BetaManagedAgentsSession
from anthropic.types.beta.sessions import (
    BetaManagedAgentsSendSessionEvents,
    BetaManagedAgentsSessionEvent,
    BetaManagedAgentsSessionThread,
)
from anthropic.types.shared import ErrorResponse
from pydantic import BaseModel

BETA = "managed-agents-2026-04-01"
API_HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": BETA}


class _Strict(BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class ThreadPage(_Strict):
    data: List[BetaManagedAgentsSessionThread]
    next_page: Optional[str] = None


class SessionPage(_Strict):
    data: List[BetaManagedAgentsSession]
    next_page: Optional[str] = None
    prev_page: Optional[str] = None


class EventPage(_Strict):
    data: List[BetaManagedAgentsSessionEvent]
    next_page: Optional[str] = None


def unknown_keys(obj, path: str = "$") -> list[str]:
    """List every key that landed in a ``__pydantic_extra__``, recursively; the SDK models allow extras."""
    found = []
    if isinstance(obj, BaseModel):
        found += ["%s.%s" % (path, key) for key in (obj.__pydantic_extra__ or {})]
        for name in type(obj).model_fields:
            found += unknown_keys(getattr(obj, name), "%s.%s" % (path, name))
    elif isinstance(obj, (list, tuple)):
        for index, item in enumerate(obj):
            found += unknown_keys(item, "%s[%d]" % (path, index))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            found += unknown_keys(item, "%s[%r]" % (path, key))
    return found


def strict(model, text: str):
    """Validate ``text`` strictly against ``model`` and fail on any unknown key; return the parsed object."""
    parsed = model.model_validate_json(text, strict=True)
    extras = unknown_keys(parsed)
    assert extras == [], "unknown keys: %s" % extras
    return parsed


MODELS = {
    "session": BetaManagedAgentsSession,
    "session_page": SessionPage,
    "session_deleted": BetaManagedAgentsDeletedSession,
    "thread": BetaManagedAgentsSessionThread,
    "thread_page": ThreadPage,
    "event_page": EventPage,
    "events_sent": BetaManagedAgentsSendSessionEvents,
    "error": ErrorResponse,
}


@dataclass
class RawResponse:
    status: int
    headers: dict
    text: str

    def json(self):
        return json.loads(self.text)


def raw_request(emulator, method: str, path: str, *, query=None, headers=None, body=None, auth: bool = True, timeout: float = 30.0) -> RawResponse:
    """Send one request with urllib; ``headers`` entries set to None are left out."""
    merged = dict(API_HEADERS)
    if auth:
        merged["x-api-key"] = emulator.api_key
    merged.update(headers or {})
    merged = {name: value for name, value in merged.items() if value is not None}
    url = emulator.base_url + path
    if query:
        url += "?" + urllib.parse.urlencode(query, doseq=True)
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        merged["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=merged)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return RawResponse(response.status, {key.lower(): value for key, value in response.headers.items()}, response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return RawResponse(exc.code, {key.lower(): value for key, value in exc.headers.items()}, exc.read().decode("utf-8"))


def sdk_client(emulator, **options) -> anthropic.Anthropic:
    options.setdefault("max_retries", 0)
    return anthropic.Anthropic(api_key=emulator.api_key, base_url=emulator.base_url, **options)


def threads_of(emulator, *, session_id: str | None = None) -> list[dict]:
    rows = emulator.state_threads()
    return [row for row in rows if session_id is None or row["session_id"] == session_id]


def find_thread(emulator, predicate, description: str) -> dict:
    """Return the first ground-truth thread row matching ``predicate``; fail naming ``description`` if none."""
    for row in emulator.state_threads():
        if predicate(row):
            return row
    raise AssertionError("generated data has no %s" % description)
