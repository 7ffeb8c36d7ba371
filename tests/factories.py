"""factory_boy factories for snapshot rows."""

from datetime import UTC, datetime

import factory

from threads.models import ArchiveJob, ArchiveJobScope, Session, SnapshotStatus, Thread


class SessionFactory(factory.django.DjangoModelFactory):
    """A synced session snapshot with usage and list cost known."""

    class Meta:
        model = Session

    id = factory.Sequence(lambda n: "sesn_test%06d" % n)
    title = factory.Sequence(lambda n: "Session %d" % n)
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
    raw = factory.LazyAttribute(lambda session: {"id": session.id, "type": "session"})
    raw_sha256 = "0" * 64
    fetched_at = factory.LazyFunction(lambda: datetime.now(UTC))


class ThreadFactory(factory.django.DjangoModelFactory):
    """A synced thread snapshot: a primary thread of a new session unless `parent` is given."""

    class Meta:
        model = Thread

    id = factory.Sequence(lambda n: "sthr_test%06d" % n)
    session = factory.SubFactory(SessionFactory)
    parent = None
    is_primary = factory.LazyAttribute(lambda thread: thread.parent is None)
    agent_type = "agent"
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
    raw = factory.LazyAttribute(lambda thread: {"id": thread.id, "type": "session_thread"})
    raw_sha256 = "0" * 64
    fetched_at = factory.LazyFunction(lambda: datetime.now(UTC))


class ArchiveJobFactory(factory.django.DjangoModelFactory):
    """A scheduled archive job with no items."""

    class Meta:
        model = ArchiveJob

    scope = ArchiveJobScope.SELECTED
    grace_until = factory.LazyFunction(lambda: datetime.now(UTC))
