"""Cached snapshots of the API's sessions and threads.

Pages read these rows and never call the API. The sync services are the only writers.
Each row keeps the JSON exactly as the API sent it (`raw`) next to the columns that
pages filter, sort and sum by; the columns are derived from `raw` and can be rebuilt
from it. A record the SDK's models reject is still stored, with `parse_error` saying
why, and its columns hold what could be read.
"""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Coalesce

# Sort keys of the browse lists (threads/selectors.py) and their indexes: a missing
# value sorts below every real one. The expressions must stay equal to the selectors'
# for PostgreSQL to use these indexes.
SORT_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


def _sort_index(name: str, key) -> models.Index:
    return models.Index(key, F("id"), name=name)


def _agent_choice_index(name: str) -> models.Index:
    # The key of the loose index scan that lists agents (threads/selectors.py).
    return models.Index(sort_key_text("agent_name"), sort_key_text("agent_id"), name=name)


def sort_key_datetime(column: str):
    """Return the sort key of a nullable datetime column."""
    return Coalesce(F(column), Value(SORT_EARLIEST))


def sort_key_number(column: str):
    return Coalesce(F(column), Value(-1))


def sort_key_float(column: str):
    return Coalesce(F(column), Value(-1.0))


def sort_key_text(column: str):
    return Coalesce(F(column), Value(""), output_field=models.TextField())


def sort_key_total_tokens():
    return (
        Coalesce(F("input_tokens"), Value(0))
        + Coalesce(F("output_tokens"), Value(0))
        + Coalesce(F("cache_read_input_tokens"), Value(0))
        + Coalesce(F("cache_creation_5m_input_tokens"), Value(0))
        + Coalesce(F("cache_creation_1h_input_tokens"), Value(0))
    )


class SnapshotStatus(models.TextChoices):
    """Status of a session or a thread, as the API names it."""

    RUNNING = "running"
    IDLE = "idle"
    RESCHEDULING = "rescheduling"
    TERMINATED = "terminated"


class AgentType(models.TextChoices):
    """Variant of a thread's agent snapshot."""

    AGENT = "agent"
    ADVISOR = "advisor"
    INLINE = "inline"


class SnapshotColumns(models.Model):
    """Columns that sessions and threads share: timing, usage, list cost, bookkeeping.

    Token and cost columns are null when the API has not reported them yet (a thread's
    usage is null until its first idle, list cost is left out until cost tracking is
    available); null means unknown, never zero.
    """

    # Not an enum column: an unknown status from the API is stored as sent and flagged.
    status = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(null=True, db_index=True)
    updated_at = models.DateTimeField(null=True, db_index=True)
    archived_at = models.DateTimeField(null=True, blank=True, db_index=True)

    agent_id = models.CharField(max_length=128, null=True, blank=True, db_index=True)
    agent_name = models.CharField(max_length=512, null=True, blank=True)
    agent_version = models.IntegerField(null=True, blank=True)
    model = models.CharField(max_length=128, null=True, blank=True, db_index=True)

    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    cache_read_input_tokens = models.BigIntegerField(null=True, blank=True)
    cache_creation_5m_input_tokens = models.BigIntegerField(null=True, blank=True)
    cache_creation_1h_input_tokens = models.BigIntegerField(null=True, blank=True)
    web_fetch_requests = models.IntegerField(null=True, blank=True)
    web_search_requests = models.IntegerField(null=True, blank=True)
    # Minor units of `list_cost_currency` (cents for USD), exactly as the API's string.
    list_cost_amount = models.BigIntegerField(null=True, blank=True)
    list_cost_currency = models.CharField(max_length=8, null=True, blank=True)

    active_seconds = models.FloatField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    raw = models.JSONField()
    # SHA-256 of the canonical JSON of `raw`; an unchanged record is never rewritten.
    raw_sha256 = models.CharField(max_length=64)
    fetched_at = models.DateTimeField()
    parse_error = models.TextField(blank=True, default="")
    # Set when the API returned 404 for this id; the row is kept.
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def has_parse_error(self) -> bool:
        return bool(self.parse_error)

    @property
    def list_cost(self) -> Decimal | None:
        """Return the list cost in major units (dollars for USD), or None when unknown."""
        if self.list_cost_amount is None:
            return None
        return Decimal(self.list_cost_amount) / 100

    @property
    def cache_creation_input_tokens(self) -> int | None:
        if self.cache_creation_5m_input_tokens is None and self.cache_creation_1h_input_tokens is None:
            return None
        return (self.cache_creation_5m_input_tokens or 0) + (self.cache_creation_1h_input_tokens or 0)

    @property
    def total_tokens(self) -> int | None:
        """Return input, output, cache read and cache creation tokens added up, or None."""
        parts = [
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_creation_input_tokens,
        ]
        if all(part is None for part in parts):
            return None
        return sum(part or 0 for part in parts)


class Session(SnapshotColumns):
    """Snapshot of one API session (`sesn_...`)."""

    id = models.CharField(primary_key=True, max_length=128)
    title = models.TextField(null=True, blank=True)
    environment_id = models.CharField(max_length=128, null=True, blank=True)
    deployment_id = models.CharField(max_length=128, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Lower-cased title, id and metadata keys and values, for the free-text filter.
    search_text = models.TextField(blank=True, default="")
    # Filled by the sync from the session's thread list.
    thread_count = models.IntegerField(default=0)
    threads_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at", "id"], name="session_created_id"),
            models.Index(fields=["updated_at", "id"], name="session_updated_id"),
            models.Index(fields=["status", "created_at"], name="session_status_created"),
            models.Index(fields=["agent_id", "created_at"], name="session_agent_created"),
            _sort_index("session_sort_title", sort_key_text("title")),
            _sort_index("session_sort_agent", sort_key_text("agent_name")),
            _sort_index("session_sort_status", F("status")),
            _sort_index("session_sort_created", sort_key_datetime("created_at")),
            _sort_index("session_sort_updated", sort_key_datetime("updated_at")),
            _sort_index("session_sort_threads", F("thread_count")),
            _sort_index("session_sort_tokens", sort_key_total_tokens()),
            _sort_index("session_sort_cost", sort_key_number("list_cost_amount")),
            _sort_index("session_sort_archived", sort_key_datetime("archived_at")),
            _agent_choice_index("session_agent_choice"),
        ]

    def __str__(self) -> str:
        return self.title or self.id


class Thread(SnapshotColumns):
    """Snapshot of one session thread (`sthr_...`): the primary thread or a child.

    `parent` and `session` carry no database constraint: a thread may arrive before
    the row it points at, or point at one the API no longer returns, and the
    snapshot must still be stored.
    """

    id = models.CharField(primary_key=True, max_length=128)
    session = models.ForeignKey(
        Session,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="threads",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="children",
    )
    is_primary = models.BooleanField(default=False, db_index=True)
    # "agent", "advisor", "inline", or an unknown variant exactly as sent.
    agent_type = models.CharField(max_length=64, blank=True, default="")
    workflow_run_id = models.CharField(max_length=128, null=True, blank=True, db_index=True)
    startup_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("archive_thread", "Can archive threads through the API")]
        indexes = [
            models.Index(fields=["created_at", "id"], name="thread_created_id"),
            models.Index(fields=["session", "created_at"], name="thread_session_created"),
            models.Index(fields=["status", "created_at"], name="thread_status_created"),
            models.Index(fields=["agent_id", "created_at"], name="thread_agent_created"),
            models.Index(fields=["model", "created_at"], name="thread_model_created"),
            _sort_index("thread_sort_agent", sort_key_text("agent_name")),
            _sort_index("thread_sort_model", sort_key_text("model")),
            _sort_index("thread_sort_status", F("status")),
            _sort_index("thread_sort_created", sort_key_datetime("created_at")),
            _sort_index("thread_sort_updated", sort_key_datetime("updated_at")),
            _sort_index("thread_sort_tokens", sort_key_total_tokens()),
            _sort_index("thread_sort_cost", sort_key_number("list_cost_amount")),
            _sort_index("thread_sort_active", sort_key_float("active_seconds")),
            _sort_index("thread_sort_archived", sort_key_datetime("archived_at")),
            _agent_choice_index("thread_agent_choice"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def label(self) -> str:
        """Return the name a person recognises this thread by.

        Advisor threads have no name: they are shown as "advisor" and their model.
        """
        if self.agent_type == AgentType.ADVISOR:
            return "advisor · %s" % (self.model or "unknown model")
        return self.agent_name or self.agent_type or self.id
