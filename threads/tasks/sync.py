"""Celery tasks for snapshot sync."""

__all__: list[str] = []
