"""In-memory records for sessions, threads and events, and their JSON rendering.

Records keep times as integer microseconds (see ``timefmt``); ``render_*`` functions
build the JSON shapes of the ``anthropic`` 2.10.0 SDK models. Agent snapshots are
shared dicts that are never mutated after generation.
"""

from dataclasses import dataclass, field

from .timefmt import MICROS_PER_SECOND, format_us

THREAD_STATUSES = ("running", "idle", "rescheduling", "terminated")
SESSION_STATUSES = ("rescheduling", "running", "idle", "terminated")
ADVISOR_AGENT_NAME = "anthropic.advisor"

# Emulator list prices in USD per million tokens (input, output), keyed by model family.
# These are invented figures for realistic-looking costs, not Anthropic's price list.
PRICE_PER_MTOK = {
    "opus": (5.0, 25.0),
    "sonnet": (3.0, 15.0),
    "haiku": (1.0, 5.0),
    "fable": (2.0, 10.0),
}
CACHE_READ_FACTOR = 0.1
CACHE_WRITE_5M_FACTOR = 1.25
CACHE_WRITE_1H_FACTOR = 2.0
# Session runtime price in USD per hour of session ``usage.active_seconds`` (invented).
RUNTIME_USD_PER_HOUR = 0.08


@dataclass(slots=True)
class Event:
    """One event: its type, id, time, and the remaining JSON fields in ``fields``.

    ``thread_id`` is the thread whose own stream carries the event; ``on_primary`` is true
    when the session stream (the primary thread's view) also carries it.
    """

    type: str
    id: str
    processed_us: int
    thread_id: str
    on_primary: bool
    fields: dict

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.processed_us, self.id)


@dataclass(slots=True)
class Thread:
    """One session thread. ``run_open`` only matters when ``workflow_run_id`` is set."""

    id: str
    session_id: str
    agent: dict
    agent_name: str
    parent_thread_id: str | None
    workflow_run_id: str | None
    run_open: bool
    status: str
    created_us: int
    updated_us: int
    archived_us: int | None = None
    stats: dict | None = None
    usage: dict | None = None
    # Set on generated "odd records" that leave ``created_at`` out of the JSON.
    omit_created_at: bool = False

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.created_us, self.id)

    @property
    def is_primary(self) -> bool:
        return self.parent_thread_id is None


@dataclass(slots=True)
class Session:
    """One session with its threads (sorted by created_at, id) and events (sorted by processed_at, id)."""

    id: str
    agent: dict
    title: str | None
    environment_id: str
    metadata: dict
    resources: list
    outcome_evaluations: list
    budget: dict | None
    deployment_id: str | None
    vault_ids: list
    created_us: int
    updated_us: int
    status: str = "idle"
    archived_us: int | None = None
    stats: dict = field(default_factory=dict)
    usage: dict = field(default_factory=dict)
    # Wall time in seconds with at least one thread running; session runtime is priced on it.
    runtime_seconds: float = 0.0
    threads: list = field(default_factory=list)
    events: list = field(default_factory=list)

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.created_us, self.id)

    @property
    def primary(self) -> Thread:
        for thread in self.threads:
            if thread.is_primary:
                return thread
        raise LookupError("session %s has no primary thread" % self.id)


def optional_time(value_us: int | None) -> str | None:
    return None if value_us is None else format_us(value_us)


def render_event(event: Event) -> dict:
    """Build the JSON object of an event, one member of ``BetaManagedAgentsSessionEvent``."""
    body = {"type": event.type, "id": event.id, "processed_at": format_us(event.processed_us)}
    body.update(event.fields)
    return body


def render_thread(thread: Thread) -> dict:
    """Build the ``BetaManagedAgentsSessionThread`` JSON object for a thread."""
    body = {
        "type": "session_thread",
        "id": thread.id,
        "session_id": thread.session_id,
        "parent_thread_id": thread.parent_thread_id,
        "workflow_run_id": thread.workflow_run_id,
        "agent": thread.agent,
        "status": thread.status,
        "archived_at": optional_time(thread.archived_us),
        "created_at": format_us(thread.created_us),
        "updated_at": format_us(thread.updated_us),
        "stats": thread.stats,
        "usage": thread.usage,
    }
    if thread.omit_created_at:
        del body["created_at"]
    return body


def render_session(session: Session) -> dict:
    """Build the ``BetaManagedAgentsSession`` JSON object for a session."""
    return {
        "type": "session",
        "id": session.id,
        "title": session.title,
        "status": session.status,
        "environment_id": session.environment_id,
        "agent": session.agent,
        "archived_at": optional_time(session.archived_us),
        "budget": session.budget,
        "created_at": format_us(session.created_us),
        "updated_at": format_us(session.updated_us),
        "deployment_id": session.deployment_id,
        "metadata": session.metadata,
        "outcome_evaluations": session.outcome_evaluations,
        "resources": session.resources,
        "vault_ids": session.vault_ids,
        "stats": session.stats,
        "usage": session.usage,
    }


def render_thread_state(thread: Thread) -> dict:
    """Build the compact ground-truth row that ``GET /_emulator/state/threads`` returns."""
    return {
        "id": thread.id,
        "session_id": thread.session_id,
        "status": thread.status,
        "archived_at": optional_time(thread.archived_us),
        "updated_at": format_us(thread.updated_us),
        "parent_thread_id": thread.parent_thread_id,
        "workflow_run_id": thread.workflow_run_id,
        "run_open": bool(thread.workflow_run_id) and thread.run_open,
        "agent_type": thread.agent.get("type"),
        "usage": thread.usage,
    }


def render_session_state(session: Session) -> dict:
    """Build the compact ground-truth row that ``GET /_emulator/state/sessions`` returns."""
    return {
        "id": session.id,
        "status": session.status,
        "archived_at": optional_time(session.archived_us),
        "updated_at": format_us(session.updated_us),
        "thread_count": len(session.threads),
        "usage": session.usage,
    }


def model_family(model_id: str) -> str:
    for family in PRICE_PER_MTOK:
        if family in model_id:
            return family
    return "sonnet"


def thread_model_id(agent: dict) -> str:
    """Return the model id of a thread agent snapshot of any variant."""
    model = agent.get("model")
    if isinstance(model, dict):
        return str(model.get("id", ""))
    return str(model or "")


def usage_cost_usd(usage: dict, model_id: str) -> float:
    """Compute the unrounded list cost in USD of a usage dict at the emulator's prices."""
    price_in, price_out = PRICE_PER_MTOK[model_family(model_id)]
    cache = usage.get("cache_creation") or {}
    weighted_input = (
        usage.get("input_tokens", 0)
        + usage.get("cache_read_input_tokens", 0) * CACHE_READ_FACTOR
        + cache.get("ephemeral_5m_input_tokens", 0) * CACHE_WRITE_5M_FACTOR
        + cache.get("ephemeral_1h_input_tokens", 0) * CACHE_WRITE_1H_FACTOR
    )
    return (weighted_input * price_in + usage.get("output_tokens", 0) * price_out) / 1_000_000


def money(usd: float) -> dict:
    """Build a Money object: whole cents as a string with no leading zeros."""
    return {"amount": str(max(0, round(usd * 100))), "currency": "USD"}


def duration_seconds(start_us: int, end_us: int) -> float:
    return round((end_us - start_us) / MICROS_PER_SECOND, 3)
