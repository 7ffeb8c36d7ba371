"""Timestamps as integer microseconds since the Unix epoch (UTC), rendered as RFC 3339."""

import time
from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROS_PER_SECOND = 1_000_000
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND

_day_prefixes: dict[int, str] = {}


def format_us(value_us: int) -> str:
    """Render microseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds)."""
    day, within = divmod(value_us, MICROS_PER_DAY)
    prefix = _day_prefixes.get(day)
    if prefix is None:
        prefix = (EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        _day_prefixes[day] = prefix
    seconds, micros = divmod(within, MICROS_PER_SECOND)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "%s%02d:%02d:%02d.%03dZ" % (prefix, hours, minutes, seconds, micros // 1000)


def now_us() -> int:
    """Return the current wall-clock time in microseconds, truncated to whole milliseconds."""
    return (time.time_ns() // 1_000_000) * 1000


def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 timestamp with a zone into microseconds since the epoch.

    Raises ValueError when the text is not a timestamp or has no zone offset.
    """
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    moment = datetime.fromisoformat(candidate)
    if moment.tzinfo is None:
        raise ValueError("timestamp %r has no zone offset" % text)
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * MICROS_PER_SECOND + delta.microseconds
