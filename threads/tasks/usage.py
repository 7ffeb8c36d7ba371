"""Celery tasks for the usage rollups. Each calls one service.

Replaying a refresh is safe: it recomputes the dirty days from the thread table,
and returns at once when another refresh holds the lock.
"""

from celery import shared_task

from threads.services.usage_rollup import usage_rollup_refresh_dirty

__all__ = ["usage_rollup_refresh"]


@shared_task(name="threads.usage_rollup_refresh")
def usage_rollup_refresh() -> int:
    """Refresh the rollups of the days marked dirty; return how many days were refreshed."""
    return usage_rollup_refresh_dirty()
