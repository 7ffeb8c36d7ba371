"""Read queries for the pages, the REST API, archive jobs and usage.

Every query reads snapshots only; nothing here calls the API.
"""

from datetime import UTC, datetime, time, timedelta

from django.db.models import Q, QuerySet

from threads.filters import ThreadFilter
from threads.models import Session, Thread


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _snapshot_filter_q(thread_filter: ThreadFilter) -> Q:
    """Return the conditions that sessions and threads share."""
    condition = Q()
    if thread_filter.statuses:
        condition &= Q(status__in=thread_filter.statuses)
    if thread_filter.agent:
        condition &= Q(agent_id=thread_filter.agent) | Q(agent_name=thread_filter.agent)
    if thread_filter.model:
        condition &= Q(model=thread_filter.model)
    if thread_filter.created_from:
        condition &= Q(created_at__gte=_day_start(thread_filter.created_from))
    if thread_filter.created_to:
        condition &= Q(created_at__lt=_day_start(thread_filter.created_to + timedelta(days=1)))
    if thread_filter.archived == "no":
        condition &= Q(archived_at__isnull=True)
    elif thread_filter.archived == "yes":
        condition &= Q(archived_at__isnull=False)
    return condition


def session_list_filtered(*, thread_filter: ThreadFilter) -> QuerySet[Session]:
    """Return the sessions the filter selects, unordered."""
    condition = _snapshot_filter_q(thread_filter)
    if thread_filter.q:
        condition &= Q(search_text__contains=thread_filter.q.lower())
    return Session.objects.filter(condition)


def thread_list_filtered(*, thread_filter: ThreadFilter) -> QuerySet[Thread]:
    """Return the threads the filter selects, unordered.

    Free text matches the thread's id or agent name, or its session's title, id or
    metadata.
    """
    condition = _snapshot_filter_q(thread_filter)
    if thread_filter.kind == "primary":
        condition &= Q(is_primary=True)
    elif thread_filter.kind == "child":
        condition &= Q(is_primary=False)
    if thread_filter.session:
        condition &= Q(session_id=thread_filter.session)
    if thread_filter.q:
        needle = thread_filter.q.lower()
        condition &= (
            Q(id__icontains=needle)
            | Q(agent_name__icontains=needle)
            | Q(session__search_text__contains=needle)
        )
    return Thread.objects.filter(condition)
