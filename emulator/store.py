"""In-memory state of the emulator: queries, the archive state machine and test-only changes.

Design: one re-entrant lock guards every session, thread and event. Every method that
reads or changes state takes it, and rendering happens under it, so a response never
mixes two states. Any change to a thread sets the thread's ``updated_at`` and its
session's ``updated_at`` to the same new time. That time is at least 1 ms after the
session's previous ``updated_at``. Then the session's status, stats and usage are
recomputed from its threads (see ``aggregate``).
"""

import logging
import random
import threading
import time
from bisect import bisect_left, insort
from dataclasses import dataclass

from .aggregate import session_refresh
from .cursor import Cursor, page_select
from .errors import ApiError, conflict, invalid_request, not_found
from .events import event_insert, status_event, thread_created_event
from .generate import GenerationOptions, IdFactory, generate, usage_generate
from .models import (
    ADVISOR_AGENT_NAME,
    THREAD_STATUSES,
    Event,
    Session,
    Thread,
    duration_seconds,
    render_event,
    render_session,
    render_session_state,
    render_thread,
    render_thread_state,
    thread_model_id,
)
from .timefmt import MICROS_PER_SECOND, format_us, now_us

logger = logging.getLogger(__name__)

LIVE_STATUSES = ("running", "rescheduling")
DEFAULT_INLINE_AGENT = {
    "type": "inline",
    "name": "added-by-test",
    "description": None,
    "system": "Thread added through the emulator's control endpoint.",
    "model": {"id": "claude-haiku-4-5", "speed": "standard", "effort": {"type": "low"}},
    "execution_identity": {"type": "service_account"},
    "mcp_servers": [],
    "skills": [],
    "tools": [],
}


@dataclass(slots=True)
class Behaviour:
    """Emulator choices where the real API's behaviour is not documented."""

    primary_archive_status: int = 400
    archived_session_thread_archive_status: int = 409
    cascade: bool = True
    interrupt_delay_ms: int = 200


@dataclass(slots=True)
class SessionFilters:
    """Filters of ``GET /v1/sessions``; times are microseconds since the epoch."""

    statuses: frozenset[str] = frozenset()
    include_archived: bool = False
    created_gt: int | None = None
    created_gte: int | None = None
    created_lt: int | None = None
    created_lte: int | None = None
    agent_id: str | None = None
    agent_version: int | None = None
    deployment_id: str | None = None
    memory_store_id: str | None = None


@dataclass(slots=True)
class EventFilters:
    """Filters of ``GET /v1/sessions/{id}/events``, compared against ``processed_at`` (microseconds)."""

    types: frozenset[str] = frozenset()
    created_gt: int | None = None
    created_gte: int | None = None
    created_lt: int | None = None
    created_lte: int | None = None


@dataclass(slots=True)
class ArchiveResult:
    """The rendered thread and whether the call changed its state."""

    body: dict
    changed: bool


@dataclass(slots=True)
class Counts:
    """Sizes of the generated data set and how long generation took (seconds)."""

    sessions: int = 0
    threads: int = 0
    events: int = 0
    generation_seconds: float = 0.0


def _in_range(value: int, gt: int | None, gte: int | None, lt: int | None, lte: int | None) -> bool:
    if gt is not None and not value > gt:
        return False
    if gte is not None and not value >= gte:
        return False
    if lt is not None and not value < lt:
        return False
    if lte is not None and not value <= lte:
        return False
    return True


class Store:
    """All emulator state, regenerated from the seed by ``reset()``."""

    def __init__(self, options: GenerationOptions, behaviour: Behaviour):
        self.options = options
        self.behaviour = behaviour
        self.lock = threading.RLock()
        self.generation = 0
        self.sessions: list[Session] = []
        self.session_keys: list[tuple[int, str]] = []
        self.sessions_by_id: dict[str, Session] = {}
        self.threads_by_id: dict[str, Thread] = {}
        self.ids = IdFactory(random.Random(0))
        self.last_counts = Counts()
        self.reset()

    # Lifecycle

    def reset(self) -> Counts:
        """Regenerate every session from the seed; pending interrupt timers become no-ops."""
        started = time.perf_counter()
        sessions = generate(self.options)
        elapsed = time.perf_counter() - started

        with self.lock:
            self.generation += 1
            self.sessions = sessions
            self.session_keys = [session.sort_key for session in sessions]
            self.sessions_by_id = {session.id: session for session in sessions}
            self.threads_by_id = {thread.id: thread for session in sessions for thread in session.threads}
            self.ids = IdFactory(random.Random("runtime-%d" % self.options.seed))
            self.last_counts = Counts(
                sessions=len(sessions),
                threads=len(self.threads_by_id),
                events=sum(len(session.events) for session in sessions),
                generation_seconds=round(elapsed, 3),
            )

        logger.info(
            "Generated %d sessions, %d threads and %d events in %.2f s (seed %d)",
            self.last_counts.sessions,
            self.last_counts.threads,
            self.last_counts.events,
            elapsed,
            self.options.seed,
        )
        return self.last_counts

    # Lookups

    def _session(self, session_id: str) -> Session:
        session = self.sessions_by_id.get(session_id)
        if session is None:
            raise not_found("Session %s not found." % session_id)
        return session

    def _thread(self, session_id: str, thread_id: str) -> tuple[Session, Thread]:
        session = self._session(session_id)
        thread = self.threads_by_id.get(thread_id)
        if thread is None or thread.session_id != session.id:
            raise not_found("Session thread %s not found." % thread_id)
        return session, thread

    def _stamp(self, session: Session) -> int:
        """Return the time for a change to ``session``: now, and at least 1 ms after its last update."""
        return max(now_us(), session.updated_us + 1000)

    def _touch(self, session: Session, thread: Thread | None, at_us: int) -> None:
        if thread is not None:
            thread.updated_us = at_us
        session.updated_us = max(session.updated_us, at_us)
        session_refresh(session)

    # Sessions

    def session_list(self, filters: SessionFilters, *, order: str, limit: int, cursor: Cursor | None) -> dict:
        with self.lock:
            sessions = self.sessions

            def matches(position: int) -> bool:
                session = sessions[position]
                if session.archived_us is not None and not filters.include_archived:
                    return False
                if filters.statuses and session.status not in filters.statuses:
                    return False
                if not _in_range(session.created_us, filters.created_gt, filters.created_gte, filters.created_lt, filters.created_lte):
                    return False
                if filters.agent_id is not None:
                    if session.agent.get("id") != filters.agent_id:
                        return False
                    if filters.agent_version is not None and session.agent.get("version") != filters.agent_version:
                        return False
                if filters.deployment_id is not None and session.deployment_id != filters.deployment_id:
                    return False
                if filters.memory_store_id is not None:
                    stores = {resource.get("memory_store_id") for resource in session.resources}
                    if filters.memory_store_id not in stores:
                        return False
                return True

            page = page_select(self.session_keys, order=order, limit=limit, matches=matches, cursor=cursor, with_prev=True)
            return {
                "data": [render_session(sessions[position]) for position in page.positions],
                "next_page": page.next_page,
                "prev_page": page.prev_page,
            }

    def session_get(self, session_id: str) -> dict:
        with self.lock:
            return render_session(self._session(session_id))

    def session_archive(self, session_id: str) -> dict:
        """Archive a session; with cascade on, terminate and archive every thread not yet archived.

        Archiving an archived session returns it unchanged. Raises 404 for an unknown id
        and 409 while the session is running.
        """
        with self.lock:
            session = self._session(session_id)
            if session.archived_us is not None:
                return render_session(session)
            if session.status == "running":
                raise conflict("Session %s is running; interrupt it before archiving." % session_id)

            at = self._stamp(session)
            session.archived_us = at
            primary = session.primary
            event_insert(session, status_event(primary, "terminated", at, self.ids.new("sevt")))
            if self.behaviour.cascade:
                for thread in session.threads:
                    if thread.archived_us is None:
                        self._terminate(session, thread, at, emit=not thread.is_primary)
                        thread.archived_us = at
                        thread.updated_us = at
            session.stats = {**session.stats, "duration_seconds": duration_seconds(session.created_us, at)}
            self._touch(session, None, at)
            logger.info("Archived session %s (cascade %s)", session_id, self.behaviour.cascade)
            return render_session(session)

    def session_delete(self, session_id: str) -> dict:
        """Delete a session with its threads and events. Raises 404, or 409 while it is running."""
        with self.lock:
            session = self._session(session_id)
            if session.status == "running":
                raise conflict("Session %s is running; interrupt it before deleting." % session_id)

            position = bisect_left(self.session_keys, session.sort_key)
            del self.session_keys[position]
            del self.sessions[position]
            del self.sessions_by_id[session_id]
            for thread in session.threads:
                self.threads_by_id.pop(thread.id, None)
            logger.info("Deleted session %s", session_id)
            return {"id": session_id, "type": "session_deleted"}

    # Threads

    def thread_list(self, session_id: str, *, statuses: frozenset[str], limit: int, cursor: Cursor | None) -> dict:
        with self.lock:
            session = self._session(session_id)
            threads = session.threads
            keys = [thread.sort_key for thread in threads]

            def matches(position: int) -> bool:
                return not statuses or threads[position].status in statuses

            page = page_select(keys, order="asc", limit=limit, matches=matches, cursor=cursor, with_prev=False)
            return {"data": [render_thread(threads[position]) for position in page.positions], "next_page": page.next_page}

    def thread_get(self, session_id: str, thread_id: str) -> dict:
        with self.lock:
            return render_thread(self._thread(session_id, thread_id)[1])

    def thread_archive(self, session_id: str, thread_id: str) -> ArchiveResult:
        """Archive one thread, following the archive state machine.

        Checks run in this order, and the first that applies decides:

        1. unknown session, or a thread not in it: 404;
        2. the primary thread: 400, or the configured status;
        3. already archived: 200, unchanged, no event;
        4. a thread of an archived session: 409 unless configured to 200;
        5. running, rescheduling, or a status the emulator does not know: 409;
        6. a workflow-run thread whose run is open: 409;
        7. terminated but never archived: 200, stamps ``archived_at``, no event;
        8. idle: 200, becomes terminated with ``archived_at`` and ``updated_at`` set to now,
           ``stats.duration_seconds`` frozen, one ``session.thread_status_terminated`` event.
        """
        with self.lock:
            session, thread = self._thread(session_id, thread_id)
            if thread.is_primary:
                raise ApiError(
                    self.behaviour.primary_archive_status,
                    "invalid_request_error",
                    "Session thread %s is the primary thread and cannot be archived; archive the session instead." % thread_id,
                )
            if thread.archived_us is not None:
                return ArchiveResult(render_thread(thread), changed=False)
            if session.archived_us is not None and self.behaviour.archived_session_thread_archive_status == 409:
                raise conflict("Session %s is archived; its threads cannot be archived." % session_id)
            if thread.status in LIVE_STATUSES or thread.status not in THREAD_STATUSES:
                raise conflict("Session thread %s is %s; interrupt it before archiving." % (thread_id, thread.status))
            if thread.workflow_run_id and thread.run_open:
                raise conflict(
                    "Session thread %s belongs to workflow run %s, which is still open; the server archives it when the run ends."
                    % (thread_id, thread.workflow_run_id)
                )

            at = self._stamp(session)
            if thread.status != "terminated":
                self._terminate(session, thread, at, emit=True)
            thread.archived_us = at
            self._touch(session, thread, at)
            logger.info("Archived thread %s of session %s", thread_id, session_id)
            return ArchiveResult(render_thread(thread), changed=True)

    def _terminate(self, session: Session, thread: Thread, at_us: int, *, emit: bool) -> None:
        """Set ``thread`` terminated at ``at_us``, freeze its duration and optionally emit the event."""
        if thread.status == "terminated":
            return
        self._account_running_time(thread, at_us)
        thread.status = "terminated"
        if thread.stats is not None:
            thread.stats = {**thread.stats, "duration_seconds": duration_seconds(thread.created_us, at_us)}
        if emit:
            event_insert(session, status_event(thread, "terminated", at_us, self.ids.new("sevt")))

    def _account_running_time(self, thread: Thread, at_us: int) -> None:
        """Add the time since the last update to ``active_seconds`` when the thread was running."""
        if thread.status == "running" and thread.stats is not None:
            extra = max(0.0, (at_us - thread.updated_us) / MICROS_PER_SECOND)
            active = round((thread.stats.get("active_seconds") or 0.0) + extra, 3)
            thread.stats = {**thread.stats, "active_seconds": active}
            if thread.usage is not None:
                thread.usage = {**thread.usage, "active_seconds": active}

    def _transition(self, session: Session, thread: Thread, status: str, at_us: int) -> None:
        """Move ``thread`` to ``status`` at ``at_us`` and append its status event.

        Nothing happens when the thread already has that status. A thread with null stats
        gets stats on its first transition. A thread with null usage gets usage on its
        first transition to idle, drawn from an RNG seeded with its id.
        """
        if status == thread.status:
            return
        if status == "terminated":
            self._terminate(session, thread, at_us, emit=True)
            return

        self._account_running_time(thread, at_us)
        thread.status = status
        if thread.stats is None:
            thread.stats = {"startup_seconds": 0.0, "active_seconds": 0.0, "duration_seconds": 0.0}
        thread.stats = {**thread.stats, "duration_seconds": duration_seconds(thread.created_us, at_us)}
        if status == "idle" and thread.usage is None:
            thread.usage = usage_generate(
                random.Random(thread.id),
                active_seconds=thread.stats.get("active_seconds") or 0.0,
                model_id=thread_model_id(thread.agent),
            )
        event_insert(session, status_event(thread, status, at_us, self.ids.new("sevt")))

    # Events

    def session_events(self, session_id: str, filters: EventFilters, *, order: str, limit: int, cursor: Cursor | None) -> dict:
        with self.lock:
            session = self._session(session_id)
            events = [event for event in session.events if event.on_primary]
            return self._event_page(events, filters, order=order, limit=limit, cursor=cursor)

    def thread_events(self, session_id: str, thread_id: str, *, limit: int, cursor: Cursor | None) -> dict:
        """List one thread's stream; the primary thread's stream is the session stream."""
        with self.lock:
            session, thread = self._thread(session_id, thread_id)
            if thread.is_primary:
                events = [event for event in session.events if event.on_primary]
            else:
                events = [event for event in session.events if event.thread_id == thread.id]
            return self._event_page(events, EventFilters(), order="asc", limit=limit, cursor=cursor)

    def _event_page(self, events: list[Event], filters: EventFilters, *, order: str, limit: int, cursor: Cursor | None) -> dict:
        keys = [event.sort_key for event in events]

        def matches(position: int) -> bool:
            event = events[position]
            if filters.types and event.type not in filters.types:
                return False
            return _in_range(event.processed_us, filters.created_gt, filters.created_gte, filters.created_lt, filters.created_lte)

        page = page_select(keys, order=order, limit=limit, matches=matches, cursor=cursor, with_prev=False)
        return {"data": [render_event(events[position]) for position in page.positions], "next_page": page.next_page}

    def events_send(self, session_id: str, sent: list[dict]) -> dict:
        """Accept ``user.interrupt`` events; each running or rescheduling target becomes idle later.

        Without ``session_thread_id`` an interrupt targets every non-archived thread. The
        targets become idle (stop reason ``end_turn``) after ``interrupt_delay_ms``. Raises
        404 for an unknown session or thread, 409 for an archived session, and 400 for an
        event type other than ``user.interrupt`` or a terminated target thread.
        """
        with self.lock:
            session = self._session(session_id)
            if session.archived_us is not None:
                raise conflict("Session %s is archived; it accepts no new events." % session_id)

            plans = []
            for index, item in enumerate(sent):
                if not isinstance(item, dict) or item.get("type") != "user.interrupt":
                    kind = item.get("type") if isinstance(item, dict) else type(item).__name__
                    raise invalid_request("events.%d.type: the emulator accepts only user.interrupt events, got %r." % (index, kind))
                target_id = item.get("session_thread_id")
                if target_id is None:
                    targets = [thread for thread in session.threads if thread.archived_us is None]
                elif not isinstance(target_id, str):
                    raise invalid_request("events.%d.session_thread_id: must be a string." % index)
                else:
                    thread = self._thread(session_id, target_id)[1]
                    if thread.status == "terminated":
                        raise invalid_request("events.%d.session_thread_id: session thread %s is terminated and accepts no events." % (index, target_id))
                    targets = [thread]
                plans.append((item, targets))

            at = self._stamp(session)
            accepted = []
            for item, targets in plans:
                event_body = {"type": "user.interrupt", "id": self.ids.new("sevt"), "processed_at": format_us(at)}
                fields = {}
                if "session_thread_id" in item:
                    fields["session_thread_id"] = item["session_thread_id"]
                    event_body["session_thread_id"] = item["session_thread_id"]
                owner = targets[0].id if len(targets) == 1 else session.primary.id
                event_insert(session, Event(type="user.interrupt", id=event_body["id"], processed_us=at, thread_id=owner, on_primary=True, fields=fields))
                accepted.append(event_body)
                for thread in targets:
                    if thread.status in LIVE_STATUSES:
                        self._interrupt_schedule(thread.id)
            session.updated_us = max(session.updated_us, at)
            return {"data": accepted}

    def _interrupt_schedule(self, thread_id: str) -> None:
        delay = self.behaviour.interrupt_delay_ms / 1000
        generation = self.generation
        if delay <= 0:
            self._interrupt_complete(thread_id, generation)
            return
        timer = threading.Timer(delay, self._interrupt_complete, args=(thread_id, generation))
        timer.daemon = True
        timer.start()

    def _interrupt_complete(self, thread_id: str, generation: int) -> None:
        with self.lock:
            thread = self.threads_by_id.get(thread_id)
            if generation != self.generation or thread is None or thread.status not in LIVE_STATUSES:
                return
            session = self.sessions_by_id[thread.session_id]
            at = self._stamp(session)
            self._transition(session, thread, "idle", at)
            self._touch(session, thread, at)
            logger.info("Interrupted thread %s of session %s is now idle", thread_id, session.id)

    # Test controls

    def control_thread_set(self, thread_id: str, body: dict) -> dict:
        """Change a thread directly: ``status``, ``archive`` (server-side archive), ``run_open``."""
        unknown = set(body) - {"status", "archive", "run_open"}
        if unknown:
            raise invalid_request("Unknown keys %s; allowed: status, archive, run_open." % sorted(unknown))
        status = body.get("status")
        if status is not None and status not in THREAD_STATUSES:
            raise invalid_request("status: must be one of %s, got %r." % (", ".join(THREAD_STATUSES), status))

        with self.lock:
            thread = self.threads_by_id.get(thread_id)
            if thread is None:
                raise not_found("Session thread %s not found." % thread_id)
            session = self.sessions_by_id[thread.session_id]
            at = self._stamp(session)
            if status is not None:
                self._transition(session, thread, status, at)
            if "run_open" in body:
                thread.run_open = bool(body["run_open"])
            if body.get("archive") and thread.archived_us is None:
                self._terminate(session, thread, at, emit=not thread.is_primary)
                thread.archived_us = at
            self._touch(session, thread, at)
            return render_thread(thread)

    def control_session_touch(self, session_id: str, body: dict) -> dict:
        """Bump a session's ``updated_at``; ``title`` in the body replaces its title."""
        unknown = set(body) - {"title"}
        if unknown:
            raise invalid_request("Unknown keys %s; allowed: title." % sorted(unknown))
        if "title" in body and body["title"] is not None and not isinstance(body["title"], str):
            raise invalid_request("title: must be a string or null.")

        with self.lock:
            session = self._session(session_id)
            if "title" in body:
                session.title = body["title"]
            self._touch(session, None, self._stamp(session))
            return render_session(session)

    def control_thread_add(self, session_id: str, body: dict) -> dict:
        """Add a child thread under the primary; body keys ``status``, ``agent_type``, ``workflow_run_id``, ``run_open``."""
        unknown = set(body) - {"status", "agent_type", "workflow_run_id", "run_open"}
        if unknown:
            raise invalid_request("Unknown keys %s; allowed: status, agent_type, workflow_run_id, run_open." % sorted(unknown))
        status = body.get("status", "running")
        agent_type = body.get("agent_type", "agent")
        if status not in ("running", "idle"):
            raise invalid_request("status: a new thread starts running or idle, got %r." % status)
        if agent_type not in ("agent", "advisor", "inline"):
            raise invalid_request("agent_type: must be agent, advisor or inline, got %r." % agent_type)

        with self.lock:
            session = self._session(session_id)
            if session.archived_us is not None:
                raise conflict("Session %s is archived; it gets no new threads." % session_id)
            primary = session.primary
            if agent_type == "advisor":
                agent, name = {"type": "advisor", "model": "claude-opus-4-8"}, ADVISOR_AGENT_NAME
            elif agent_type == "inline":
                agent, name = DEFAULT_INLINE_AGENT, DEFAULT_INLINE_AGENT["name"]
            else:
                agent, name = primary.agent, primary.agent["name"]

            at = self._stamp(session)
            thread = Thread(
                id=self.ids.new("sthr"),
                session_id=session.id,
                agent=agent,
                agent_name=name,
                parent_thread_id=primary.id,
                workflow_run_id=body.get("workflow_run_id"),
                run_open=bool(body.get("run_open", False)),
                status="idle",
                created_us=at,
                updated_us=at,
            )
            insort(session.threads, thread, key=lambda item: item.sort_key)
            self.threads_by_id[thread.id] = thread
            event_insert(session, thread_created_event(thread, at, self.ids.new("sevt")))
            if status == "running":
                self._transition(session, thread, "running", at)
            self._touch(session, thread, at)
            return render_thread(thread)

    def state_threads(self) -> list[dict]:
        with self.lock:
            return [render_thread_state(thread) for session in self.sessions for thread in session.threads]

    def state_sessions(self) -> list[dict]:
        with self.lock:
            return [render_session_state(session) for session in self.sessions]
