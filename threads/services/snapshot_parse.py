"""Turn one API record (a session or a thread, as a dict) into snapshot column values.

Parsing is lenient first and strict second. The lenient pass reads every column it
can and never raises, so a record the SDK would reject is still stored with what
could be read. The strict pass validates the record against the SDK's own pydantic
model; its errors, and the lenient pass's own findings (a timestamp without a time
zone, a value too long for its column), become `parse_error`, one readable line.

`raw` keeps the record as received, except for what PostgreSQL's text and jsonb
cannot hold: NUL characters and unpaired UTF-16 surrogates become U+FFFD, and NaN
and Infinity (which Python's JSON parser accepts) become null. Each replacement is
noted in `parse_error`. `raw_sha256` is computed over the record as received, so
change detection does not depend on the replacement.
"""

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic
from anthropic.types.beta import BetaManagedAgentsSession
from anthropic.types.beta.sessions import BetaManagedAgentsSessionThread

from threads.models import Session, Thread

MAX_ID_LENGTH = 128
MAX_PARSE_ERROR_LENGTH = 1000
MAX_ERRORS_IN_MESSAGE = 5
MAX_INPUT_EXCERPT = 40
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
REPLACEMENT_CHARACTER = "\ufffd"

# Characters that PostgreSQL cannot store in text or jsonb.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# NUL, or a surrogate escape that is not half of a pair (a pair is one valid character).
_UNSTORABLE_ESCAPE = re.compile(
    r"\\u0000"
    r"|\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f][0-9a-f]{2})"
    r"|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}"
)

THREAD_AGENT_VARIANTS = {
    "agent": "BetaManagedAgentsSessionThreadAgent",
    "advisor": "BetaManagedAgentsAdvisor",
    "inline": "BetaManagedAgentsInlineAgent",
}


@dataclass
class ParsedSnapshot:
    """Column values read from one record, and why the record is not well-formed.

    `id` is None when the record has no usable id and so cannot be stored.
    """

    id: str | None
    values: dict[str, Any] = field(default_factory=dict)
    parse_error: str = ""


def snapshot_canonical_json(record: Any) -> str:
    """Return the record as canonical JSON: sorted keys, no spaces, ASCII only."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def snapshot_sha256(record: Any) -> str:
    """Return the hex SHA-256 of the record's canonical JSON."""
    return hashlib.sha256(snapshot_canonical_json(record).encode("ascii")).hexdigest()


def snapshot_id_read(record: Any) -> str | None:
    """Return the record's id when it can be a primary key, else None."""
    if not isinstance(record, dict):
        return None

    value = record.get("id")
    if not isinstance(value, str) or not value.strip():
        return None
    if len(value) > MAX_ID_LENGTH or _UNSTORABLE.search(value):
        return None
    return value


def record_excerpt(record: Any, *, limit: int = 300) -> str:
    """Return the start of the record's JSON, for an error entry about it."""
    try:
        text = snapshot_canonical_json(record)
    except (TypeError, ValueError):
        text = repr(record)
    if len(text) > limit:
        return text[:limit] + "..."
    return text


class _Reader:
    """Read typed values from nested dicts, noting what could not be read as it should."""

    def __init__(self, record: dict, model) -> None:
        self.record = record
        self.model = model
        # Field path -> finding; a finding replaces pydantic's error for the same path.
        self.problems: dict[str, str] = {}

    def get(self, path: str) -> Any:
        value: Any = self.record
        for part in path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    def text(self, path: str, *, column: str | None = None) -> str | None:
        value = self.get(path)
        if not isinstance(value, str):
            return None

        value = self._storable_text(path, value)
        max_length = self._max_length(column)
        if max_length is not None and len(value) > max_length:
            self.problems[path] = "%s is %d characters long; its column keeps the first %d" % (
                path,
                len(value),
                max_length,
            )
            value = value[:max_length]
        return value

    def integer(self, path: str, *, maximum: int = BIGINT_MAX) -> int | None:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if not -maximum - 1 <= value <= maximum:
            self.problems[path] = "%s is out of range: %d" % (path, value)
            return None
        return value

    def number(self, path: str) -> float | None:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            self.problems[path] = "%s is not a finite number" % path
            return None
        return float(value)

    def timestamp(self, path: str) -> datetime | None:
        value = self.get(path)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problems[path] = "%s is not an RFC 3339 string: %s" % (path, _excerpt(value))
            return None

        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.problems[path] = "%s is not an RFC 3339 time: %s" % (path, _excerpt(value))
            return None

        if parsed.tzinfo is None:
            self.problems[path] = "%s has no time zone and was read as UTC: %s" % (
                path,
                _excerpt(value),
            )
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)

    def minor_units(self, path: str) -> int | None:
        value = self.get(path)
        if value is None:
            return None
        if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]+", value):
            self.problems[path] = "%s is not a whole number of minor units: %s" % (
                path,
                _excerpt(value),
            )
            return None

        amount = int(value)
        if abs(amount) > BIGINT_MAX:
            self.problems[path] = "%s is out of range: %s" % (path, _excerpt(value))
            return None
        return amount

    def storable(self, path: str, value: Any) -> Any:
        """Return `value` with unstorable characters and numbers replaced, noting any."""
        cleaned, changed = _replace_unstorable(value)
        if changed:
            self.problems.setdefault(
                path,
                "%s contains NUL or unpaired surrogate characters (stored as U+FFFD) "
                "or NaN or Infinity (stored as null)" % path,
            )
        return cleaned

    def _storable_text(self, path: str, value: str) -> str:
        if _UNSTORABLE.search(value) is None:
            return value
        return self.storable(path, value)

    def _max_length(self, column: str | None) -> int | None:
        if column is None:
            return None
        return self.model._meta.get_field(column).max_length


def thread_record_parse(*, record: Any, session_id: str | None = None) -> ParsedSnapshot:
    """Read a thread record into `Thread` column values, with its parse error if any.

    `session_id` is the session whose thread list contained the record; it fills
    `session_id` when the record's own is missing or unusable.
    """
    thread_id = snapshot_id_read(record)
    if thread_id is None:
        return ParsedSnapshot(id=None, parse_error=_missing_id_message(record))

    reader = _Reader(record, Thread)
    values = _common_values(reader)
    values.update(
        session_id=_thread_session_id(reader, listed_session_id=session_id),
        parent_id=reader.text("parent_thread_id", column="id"),
        is_primary=record.get("parent_thread_id") is None,
        agent_type=reader.text("agent.type", column="agent_type") or "",
        workflow_run_id=reader.text("workflow_run_id", column="workflow_run_id"),
        active_seconds=_first_number(reader, "stats.active_seconds", "usage.active_seconds"),
        duration_seconds=reader.number("stats.duration_seconds"),
        startup_seconds=reader.number("stats.startup_seconds"),
    )
    _check_agent_variant(reader)

    strict_errors = _validate(BetaManagedAgentsSessionThread, record, reader)
    return ParsedSnapshot(id=thread_id, values=values, parse_error=_parse_error(reader, strict_errors))


def session_record_parse(*, record: Any) -> ParsedSnapshot:
    """Read a session record into `Session` column values, with its parse error if any.

    `thread_count` is not among the values: it comes from the session's thread list.
    """
    session_id = snapshot_id_read(record)
    if session_id is None:
        return ParsedSnapshot(id=None, parse_error=_missing_id_message(record))

    reader = _Reader(record, Session)
    values = _common_values(reader)
    title = reader.text("title")
    metadata = _metadata(reader)
    values.update(
        title=title,
        environment_id=reader.text("environment_id", column="environment_id"),
        deployment_id=reader.text("deployment_id", column="deployment_id"),
        metadata=metadata,
        search_text=_search_text(session_id=session_id, title=title, metadata=metadata),
        active_seconds=_first_number(reader, "stats.active_seconds", "usage.active_seconds"),
        duration_seconds=reader.number("stats.duration_seconds"),
    )

    strict_errors = _validate(BetaManagedAgentsSession, record, reader)
    return ParsedSnapshot(id=session_id, values=values, parse_error=_parse_error(reader, strict_errors))


def _common_values(reader: _Reader) -> dict[str, Any]:
    record = reader.record
    canonical = snapshot_canonical_json(record)
    raw = record
    # Canonical JSON is ASCII, so NULs and surrogates show up as escapes, and NaN and
    # Infinity as bare words. Walking the record is only worth it when one does.
    if _has_unstorable_escape(canonical) or "NaN" in canonical or "Infinity" in canonical:
        raw = reader.storable("raw", record)
    return {
        "status": reader.text("status", column="status") or "",
        "created_at": reader.timestamp("created_at"),
        "updated_at": reader.timestamp("updated_at"),
        "archived_at": reader.timestamp("archived_at"),
        "agent_id": reader.text("agent.id", column="agent_id"),
        "agent_name": reader.text("agent.name", column="agent_name"),
        "agent_version": reader.integer("agent.version", maximum=INT_MAX),
        "model": _model_id(reader),
        "input_tokens": reader.integer("usage.input_tokens"),
        "output_tokens": reader.integer("usage.output_tokens"),
        "cache_read_input_tokens": reader.integer("usage.cache_read_input_tokens"),
        "cache_creation_5m_input_tokens": reader.integer("usage.cache_creation.ephemeral_5m_input_tokens"),
        "cache_creation_1h_input_tokens": reader.integer("usage.cache_creation.ephemeral_1h_input_tokens"),
        "web_fetch_requests": reader.integer("usage.server_tool_use.web_fetch_requests", maximum=INT_MAX),
        "web_search_requests": reader.integer("usage.server_tool_use.web_search_requests", maximum=INT_MAX),
        "list_cost_amount": reader.minor_units("usage.list_cost.amount"),
        "list_cost_currency": reader.text("usage.list_cost.currency", column="list_cost_currency"),
        "raw": raw,
        "raw_sha256": hashlib.sha256(canonical.encode("ascii")).hexdigest(),
    }


def _has_unstorable_escape(canonical: str) -> bool:
    # The substring tests are much cheaper than the regular expression, whose
    # look-behind is tried at every position; most records contain neither escape.
    if "\\u0000" not in canonical and "\\ud" not in canonical:
        return False
    return _UNSTORABLE_ESCAPE.search(canonical) is not None


def _model_id(reader: _Reader) -> str | None:
    # A saved or inline agent has a model config object; an advisor has a bare model id.
    if isinstance(reader.get("agent.model"), str):
        return reader.text("agent.model", column="model")
    return reader.text("agent.model.id", column="model")


def _first_number(reader: _Reader, *paths: str) -> float | None:
    for path in paths:
        value = reader.number(path)
        if value is not None:
            return value
    return None


def _thread_session_id(reader: _Reader, *, listed_session_id: str | None) -> str | None:
    own = reader.get("session_id")
    if listed_session_id is not None and own != listed_session_id:
        reader.problems["session_id"] = "session_id %s differs from the listed session %s" % (
            _excerpt(own),
            listed_session_id,
        )
        return listed_session_id

    if not isinstance(own, str) or snapshot_id_read({"id": own}) is None:
        return None
    return own


def _check_agent_variant(reader: _Reader) -> None:
    agent_type = reader.get("agent.type")
    if isinstance(agent_type, str) and agent_type not in THREAD_AGENT_VARIANTS:
        reader.problems["agent"] = "agent.type %s is not a known variant (%s)" % (
            _excerpt(agent_type),
            ", ".join(THREAD_AGENT_VARIANTS),
        )


def _metadata(reader: _Reader) -> dict:
    value = reader.get("metadata")
    if not isinstance(value, dict):
        return {}
    return reader.storable("metadata", value)


def _search_text(*, session_id: str, title: str | None, metadata: dict) -> str:
    parts = [title or "", session_id]
    for key, value in metadata.items():
        parts.append(str(key))
        if isinstance(value, str):
            parts.append(value)
    return " ".join(part for part in parts if part).lower()


def _validate(model, record: dict, reader: _Reader) -> list[tuple[str, str]]:
    """Validate strictly with the SDK model; return (field path, message) pairs."""
    try:
        model.model_validate(record)
    except pydantic.ValidationError as exc:
        return _summarise_validation_errors(exc, reader)
    return []


def _summarise_validation_errors(exc: pydantic.ValidationError, reader: _Reader) -> list[tuple[str, str]]:
    # Without a discriminator pydantic tries every agent variant and reports each
    # one's errors; keep only those of the variant that `agent.type` names.
    variant = THREAD_AGENT_VARIANTS.get(reader.get("agent.type"))
    summary = []
    for error in exc.errors(include_url=False):
        location = error["loc"]
        if _is_other_variant(location, variant):
            continue

        path = ".".join(str(part) for part in location if not _is_class_name(part))
        message = "%s: %s" % (path or "record", error["msg"])
        if error["type"] != "missing" and not isinstance(error.get("input"), dict | list):
            message += " (got %s)" % _excerpt(error.get("input"))
        summary.append((path, message))
    return summary


def _is_class_name(part: Any) -> bool:
    return isinstance(part, str) and part.startswith("BetaManagedAgents")


def _is_other_variant(location: tuple, variant: str | None) -> bool:
    if len(location) < 2 or location[0] != "agent" or not _is_class_name(location[1]):
        return False
    return variant is not None and location[1] != variant


def _parse_error(reader: _Reader, strict_errors: list[tuple[str, str]]) -> str:
    messages = list(reader.problems.values())
    seen_paths = set(reader.problems)
    for path, message in strict_errors:
        if path in seen_paths or any(path.startswith(p + ".") for p in seen_paths):
            continue
        seen_paths.add(path)
        messages.append(message)
    if not messages:
        return ""

    shown = messages[:MAX_ERRORS_IN_MESSAGE]
    text = "; ".join(shown)
    if len(messages) > len(shown):
        text += "; and %d more" % (len(messages) - len(shown))
    return _one_line(text)[:MAX_PARSE_ERROR_LENGTH]


def _missing_id_message(record: Any) -> str:
    if not isinstance(record, dict):
        return "record is a %s, not an object" % type(record).__name__
    return "record has no usable id (a non-empty string of at most %d characters): %s" % (
        MAX_ID_LENGTH,
        _excerpt(record.get("id")),
    )


def _excerpt(value: Any) -> str:
    text = repr(value)
    if len(text) > MAX_INPUT_EXCERPT:
        text = text[:MAX_INPUT_EXCERPT] + "..."
    return _one_line(text)


def _one_line(text: str) -> str:
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, " ".join(text.split()))


def _replace_unstorable(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        if _UNSTORABLE.search(value) is None:
            return value, False
        return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, value), True

    if isinstance(value, dict):
        changed = False
        cleaned = {}
        for key, item in value.items():
            new_key, key_changed = _replace_unstorable(key)
            new_item, item_changed = _replace_unstorable(item)
            cleaned[new_key] = new_item
            changed = changed or key_changed or item_changed
        return (cleaned if changed else value), changed

    if isinstance(value, list):
        items = [_replace_unstorable(item) for item in value]
        if not any(changed for _, changed in items):
            return value, False
        return [item for item, _ in items], True

    if isinstance(value, float) and not math.isfinite(value):
        return None, True
    return value, False
