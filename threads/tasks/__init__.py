"""Celery tasks. They parse arguments and call one service; the logic lives in services."""

from threads.tasks.archive import *  # noqa: F401,F403
from threads.tasks.sync import *  # noqa: F401,F403
from threads.tasks.usage import *  # noqa: F401,F403
