"""The documented example script, run as a user would against a live server and a real worker."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.threads.archive_helpers import snapshots_seed
from threads.models import ArchiveJob, ArchiveJobStatus, Thread
from threads.services.users import archive_permission

pytestmark = pytest.mark.worker

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "archive_idle_threads.py"


def test_example_script_archives_idle_threads(live_server, emulator, celery_worker_factory, django_user_model):
    snapshots_seed()
    celery_worker_factory(concurrency=4)
    user = django_user_model.objects.create_user(username="operator")
    user.user_permissions.add(archive_permission())
    token = Token.objects.create(user=user).key
    cutoff = datetime.now(UTC) - timedelta(days=7)
    old_idle = set(
        Thread.objects.filter(
            is_primary=False, status="idle", archived_at__isnull=True, created_at__lt=cutoff
        ).values_list("id", flat=True)
    )
    # A thread whose workflow run is still open is refused by the API (409) and skipped.
    open_run = {thread["id"] for thread in emulator.state_threads() if thread["workflow_run_id"] and thread["run_open"]}
    expected = old_idle - open_run

    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={**os.environ, "DASHBOARD_URL": live_server.url, "DASHBOARD_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=150,
    )

    print(result.stdout)
    states = {thread["id"]: thread for thread in emulator.state_threads()}
    job = ArchiveJob.objects.get()
    assert result.returncode == 0, result.stderr
    assert len(expected) >= 10
    assert "Found %d idle threads older than a week." % len(old_idle) in result.stdout
    assert "Dry run: %d to archive" % job.planned_count in result.stdout
    assert "finished: 100% done" in result.stdout
    assert job.status == ArchiveJobStatus.FINISHED
    assert job.created_by == user
    assert {thread_id for thread_id in expected if states[thread_id]["archived_at"] is None} == set()
    assert job.archived_count == len(expected)
