"""The Celery app, configured from Django settings with the CELERY_ prefix."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _api_clients_prepare(**kwargs) -> None:
    """Build each pool process's API clients at its start instead of in its first task."""
    from threads.client import api_clients_prepare

    api_clients_prepare()
