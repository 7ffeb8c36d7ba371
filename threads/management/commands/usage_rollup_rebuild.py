"""Recompute every daily and session-day usage rollup from the thread snapshots."""

import time

from django.core.management.base import BaseCommand

from threads.services.usage_rollup import usage_rollup_rebuild


class Command(BaseCommand):
    help = (
        "Recompute every daily and session-day usage rollup from the thread snapshots and clear the "
        "dirty-day marks. "
        "Safe to run while syncs run: it waits for a running refresh and keeps marks made meanwhile."
    )

    def handle(self, *args, **options):
        started = time.monotonic()
        rows = usage_rollup_rebuild()
        self.stdout.write(
            "Rebuilt %d daily usage rollup rows in %.1f s." % (rows, time.monotonic() - started)
        )
