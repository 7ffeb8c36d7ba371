"""Builders for the status events that generation and state changes append."""

from bisect import insort

from .models import Event, Session, Thread

# Event type per thread status, for child threads and for the primary thread.
CHILD_STATUS_EVENTS = {
    "running": "session.thread_status_running",
    "idle": "session.thread_status_idle",
    "rescheduling": "session.thread_status_rescheduled",
    "terminated": "session.thread_status_terminated",
}
PRIMARY_STATUS_EVENTS = {
    "running": "session.status_running",
    "idle": "session.status_idle",
    "rescheduling": "session.status_rescheduled",
    "terminated": "session.status_terminated",
}


def status_event(thread: Thread, status: str, at_us: int, event_id: str, stop_reason: str = "end_turn") -> Event:
    """Build the event for ``thread`` entering ``status``.

    A child thread gets a ``session.thread_status_*`` event on its own stream that is also
    cross-posted to the session stream. The primary thread's view is the session stream,
    so it gets the matching ``session.status_*`` event there.
    """
    if thread.is_primary:
        fields = {}
        event_type = PRIMARY_STATUS_EVENTS[status]
    else:
        fields = {"session_thread_id": thread.id, "agent_name": thread.agent_name}
        event_type = CHILD_STATUS_EVENTS[status]
    if status == "idle":
        fields["stop_reason"] = {"type": stop_reason}
        fields["stop_details"] = None
    return Event(type=event_type, id=event_id, processed_us=at_us, thread_id=thread.id, on_primary=True, fields=fields)


def thread_created_event(thread: Thread, at_us: int, event_id: str) -> Event:
    """Build the ``session.thread_created`` event for a child thread."""
    fields = {"session_thread_id": thread.id, "agent_name": thread.agent_name, "workflow_run_id": thread.workflow_run_id}
    return Event(type="session.thread_created", id=event_id, processed_us=at_us, thread_id=thread.id, on_primary=True, fields=fields)


def event_insert(session: Session, event: Event) -> None:
    """Insert ``event`` into the session's events, keeping them sorted by (processed_at, id)."""
    insort(session.events, event, key=lambda item: item.sort_key)
