"""Celery tasks for archive jobs."""

__all__: list[str] = []
