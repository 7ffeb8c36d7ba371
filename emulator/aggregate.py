"""Session figures derived from the session's threads: status, stats and usage."""

from .models import (
    RUNTIME_USD_PER_HOUR,
    Session,
    money,
    thread_model_id,
    usage_cost_usd,
)


def session_status(session: Session) -> str:
    """Return the session status as the aggregate of its threads.

    An archived session is ``terminated``. Otherwise the first rule that applies wins: any
    non-archived running thread gives ``running``, any rescheduling thread gives
    ``rescheduling``, and a terminated primary thread gives ``terminated``. Else the
    session is ``idle``. Thread status values the emulator does not know are ignored.
    """
    if session.archived_us is not None:
        return "terminated"

    live = {thread.status for thread in session.threads if thread.archived_us is None}
    if "running" in live:
        return "running"
    if "rescheduling" in live:
        return "rescheduling"
    if session.threads and session.primary.status == "terminated":
        return "terminated"
    return "idle"


def session_usage(session: Session) -> dict:
    """Compute the session's usage from its threads' usage plus session runtime.

    Token counts are sums over threads. ``list_cost`` is the unrounded thread costs plus
    the runtime cost, rounded once, so it does not equal the sum of the rounded thread
    ``list_cost`` amounts. ``active_seconds`` is the session runtime, not a sum.
    """
    input_tokens = output_tokens = cache_read = cache_5m = cache_1h = 0
    web_fetch = web_search = 0
    cost_usd = session.runtime_seconds / 3600 * RUNTIME_USD_PER_HOUR

    for thread in session.threads:
        usage = thread.usage
        if not usage:
            continue
        cache = usage.get("cache_creation") or {}
        tools = usage.get("server_tool_use") or {}
        input_tokens += usage.get("input_tokens", 0)
        output_tokens += usage.get("output_tokens", 0)
        cache_read += usage.get("cache_read_input_tokens", 0)
        cache_5m += cache.get("ephemeral_5m_input_tokens", 0)
        cache_1h += cache.get("ephemeral_1h_input_tokens", 0)
        web_fetch += tools.get("web_fetch_requests", 0)
        web_search += tools.get("web_search_requests", 0)
        cost_usd += usage_cost_usd(usage, thread_model_id(thread.agent))

    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_5m, "ephemeral_1h_input_tokens": cache_1h},
        "active_seconds": round(session.runtime_seconds, 3),
        "list_cost": money(cost_usd),
        "server_tool_use": {"web_fetch_requests": web_fetch, "web_search_requests": web_search},
    }


def session_active_seconds(session: Session) -> float:
    """Return the session's wall time with at least one thread running, in seconds.

    Overlapping threads count once, so unlike a sum of the threads' own active time
    this never exceeds the session's duration.
    """
    return round(session.runtime_seconds, 3)


def session_refresh(session: Session) -> None:
    """Recompute the session's status, ``stats.active_seconds`` and usage from its threads."""
    session.status = session_status(session)
    session.stats = {**session.stats, "active_seconds": session_active_seconds(session)}
    session.usage = session_usage(session)
