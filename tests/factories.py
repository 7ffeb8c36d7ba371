"""factory_boy factories for snapshot rows."""

from datetime import UTC, datetime

import factory

from threads.models import ArchiveJob, ArchiveJobScope, Session, SnapshotStatus, Thread


class SnapshotFactory(factory.django.DjangoModelFactory):
    """Defaults for the columns sessions and threads share (`SnapshotColumns`): idle, usage and cost known."""

    class Meta:
        abstract = True

    status = SnapshotStatus.IDLE
    created_at = factory.LazyFunction(lambda: datetime.now(UTC))
    updated_at = factory.SelfAttribute("created_at")
    agent_id = "agent_coordinator"
    agent_name = "Coordinator"
    model = "claude-sonnet-4-5"
    input_tokens = 1000
    output_tokens = 100
    cache_read_input_tokens = 0
    cache_creation_5m_input_tokens = 0
    cache_creation_1h_input_tokens = 0
    list_cost_amount = 10
    list_cost_currency = "USD"
    active_seconds = 10.0
    raw_sha256 = "0" * 64
    fetched_at = factory.LazyFunction(lambda: datetime.now(UTC))


class SessionFactory(SnapshotFactory):
    """A synced session snapshot with usage and list cost known."""

    class Meta:
        model = Session

    id = factory.Sequence(lambda n: "sesn_test%06d" % n)
    title = factory.Sequence(lambda n: "Session %d" % n)
    raw = factory.LazyAttribute(lambda session: {"id": session.id, "type": "session"})


class ThreadFactory(SnapshotFactory):
    """A synced thread snapshot: a primary thread of a new session unless `parent` is given."""

    class Meta:
        model = Thread

    id = factory.Sequence(lambda n: "sthr_test%06d" % n)
    session = factory.SubFactory(SessionFactory)
    parent = None
    is_primary = factory.LazyAttribute(lambda thread: thread.parent is None)
    agent_type = "agent"
    raw = factory.LazyAttribute(lambda thread: {"id": thread.id, "type": "session_thread"})


class ArchiveJobFactory(factory.django.DjangoModelFactory):
    """A scheduled archive job with no items."""

    class Meta:
        model = ArchiveJob

    scope = ArchiveJobScope.SELECTED
    grace_until = factory.LazyFunction(lambda: datetime.now(UTC))
