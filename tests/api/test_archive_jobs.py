"""Archive job endpoints: dry run, create, progress, failed items, retry, cancel.

No worker runs here: tests that need the job to archive are in test_example_script.
"""

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import ThreadFactory
from threads.models import ArchiveItem, ArchiveItemState, ArchiveJob, ArchiveJobStatus

pytestmark = pytest.mark.django_db

JOBS_URL = "/api/v1/archive-jobs/"


@pytest.fixture
def family():
    """A primary thread with two idle children, one running child and one archived child."""
    primary = ThreadFactory(agent_name="Coordinator")
    children = {
        "idle": ThreadFactory.create_batch(
            2, session=primary.session, parent=primary, agent_name="Researcher"
        ),
        "running": ThreadFactory(
            session=primary.session, parent=primary, status="running", agent_name="Writer"
        ),
        "archived": ThreadFactory(session=primary.session, parent=primary, archived_at=timezone.now()),
    }
    return primary, children


def test_dry_run_summarises_and_creates_nothing(archiver_client, family):
    primary, children = family
    ids = [primary.id, *(thread.id for thread in children["idle"]), children["running"].id, "sthr_unknown"]

    response = archiver_client.post(JOBS_URL, {"thread_ids": ids, "dry_run": True}, format="json")
    body = response.json()
    skipped = {row["reason"]: row["count"] for row in body["skipped"]}

    assert response.status_code == 200
    assert body["dry_run"] is True
    assert body["selected_count"] == 4
    assert body["planned_count"] == 2
    assert body["skipped_count"] == 2
    assert skipped == {"primary": 1, "running": 1}
    assert body["unknown_ids"] == ["sthr_unknown"]
    assert body["total_tokens"] == 2 * 1100
    assert body["list_cost_totals"] == {"USD": 20}
    assert {"agent": "Researcher", "planned": 2, "skipped": 0} in body["by_agent"]
    assert ArchiveJob.objects.count() == 0


def test_dry_run_by_filter_uses_thread_filter(archiver_client, family):
    response = archiver_client.post(
        JOBS_URL, {"filter": {"kind": "child", "status": ["idle"]}, "dry_run": True}, format="json"
    )

    # The archived child is left out by the default archived=no.
    assert response.json()["selected_count"] == 2


def test_create_returns_job_and_location(archiver_client, family):
    _primary, children = family
    ids = [thread.id for thread in children["idle"]]

    response = archiver_client.post(JOBS_URL, {"thread_ids": ids}, format="json")
    body = response.json()
    job = ArchiveJob.objects.get()

    assert response.status_code == 201
    assert response["Location"].endswith("/api/v1/archive-jobs/%d/" % job.pk)
    assert body["job"]["id"] == job.pk
    assert body["job"]["status"] == ArchiveJobStatus.SCHEDULED
    assert body["job"]["scope"] == "selected"
    assert body["selected_ids"] == ids
    assert body["progress"]["total"] == 2
    assert body["progress"]["pending"] == 2


def test_create_by_filter_stores_filter(archiver_client, family):
    response = archiver_client.post(
        JOBS_URL,
        {"filter": {"kind": "child", "status": ["idle", "running"]}, "interrupt_running": True},
        format="json",
    )
    body = response.json()

    assert response.status_code == 201
    assert body["job"]["filter"] == {"kind": "child", "status": ["idle", "running"]}
    assert body["job"]["interrupt_running"] is True
    assert body["job"]["planned_count"] == 3


def test_detail_reports_progress_and_skip_reasons(archiver_client, family):
    primary, children = family
    ids = [primary.id, *(thread.id for thread in children["idle"])]
    job_id = archiver_client.post(JOBS_URL, {"thread_ids": ids}, format="json").json()["job"]["id"]
    ArchiveItem.objects.filter(job_id=job_id, thread_id=children["idle"][0].id).update(
        state=ArchiveItemState.ARCHIVED
    )

    body = archiver_client.get("%s%d/" % (JOBS_URL, job_id)).json()

    assert body["progress"]["archived"] == 1
    assert body["progress"]["skipped"] == 1
    assert body["progress"]["pending"] == 1
    assert body["progress"]["done"] == 2
    assert body["progress"]["percent"] == 66
    assert body["skipped_reasons"][0]["count"] == 1
    assert "primary thread" in body["skipped_reasons"][0]["reason"]


def test_failed_items_listed_and_retried(archiver_client, family):
    _primary, children = family
    ids = [thread.id for thread in children["idle"]]
    job_id = archiver_client.post(JOBS_URL, {"thread_ids": ids}, format="json").json()["job"]["id"]
    ArchiveJob.objects.filter(pk=job_id).update(status=ArchiveJobStatus.FINISHED, finished_at=timezone.now())
    ArchiveItem.objects.filter(job_id=job_id).update(
        state=ArchiveItemState.FAILED,
        attempts=8,
        last_error_type="InternalServerError",
        last_request_id="req_1",
    )

    failed = archiver_client.get("%s%d/failed-items/" % (JOBS_URL, job_id)).json()
    retried = archiver_client.post("%s%d/retry-failed/" % (JOBS_URL, job_id))

    assert [item["thread_id"] for item in failed["results"]] == sorted(ids)
    assert failed["results"][0]["last_error_type"] == "InternalServerError"
    assert failed["results"][0]["last_request_id"] == "req_1"
    assert retried.status_code == 200
    assert retried.json()["retried"] == 2
    assert retried.json()["job"]["status"] == ArchiveJobStatus.RUNNING
    assert ArchiveItem.objects.filter(job_id=job_id, state=ArchiveItemState.PENDING, attempts=0).count() == 2


def test_retry_with_nothing_failed_returns_zero(archiver_client, family):
    _primary, children = family
    job_id = archiver_client.post(JOBS_URL, {"thread_ids": [children["idle"][0].id]}, format="json").json()[
        "job"
    ]["id"]
    ArchiveJob.objects.filter(pk=job_id).update(status=ArchiveJobStatus.RUNNING)

    response = archiver_client.post("%s%d/retry-failed/" % (JOBS_URL, job_id))

    assert response.status_code == 200
    assert response.json()["retried"] == 0


def test_cancel_skips_pending_items_then_conflicts(archiver_client, family):
    _primary, children = family
    ids = [thread.id for thread in children["idle"]]
    job_id = archiver_client.post(JOBS_URL, {"thread_ids": ids}, format="json").json()["job"]["id"]

    first = archiver_client.post("%s%d/cancel/" % (JOBS_URL, job_id))
    second = archiver_client.post("%s%d/cancel/" % (JOBS_URL, job_id))

    assert first.status_code == 200
    assert first.json()["job"]["status"] == ArchiveJobStatus.CANCELLED
    assert first.json()["job"]["cancelled_by"] == "archiver"
    assert first.json()["progress"]["skipped"] == 2
    assert second.status_code == 409
    assert "already cancelled" in second.json()["detail"]


def test_cancel_unknown_job_is_404(archiver_client):
    response = archiver_client.post("%s999999/cancel/" % JOBS_URL)

    assert response.status_code == 404
    assert response.json()["detail"] == "No archive job with id 999999."


def test_archive_job_urls_reverse_in_namespace():
    assert reverse("api:archive-job-detail", kwargs={"job_id": 3}) == "/api/v1/archive-jobs/3/"


def test_create_with_unknown_ids_only_is_400(archiver_client, family):
    response = archiver_client.post(JOBS_URL, {"thread_ids": ["sthr_nope"]}, format="json")

    assert response.status_code == 400
    assert "None of the selected threads is stored" in response.json()["detail"]
    assert "sthr_nope" in response.json()["detail"]
    assert not ArchiveJob.objects.exists()


def test_create_unknown_ids_message_truncated(archiver_client, family):
    ids = ["sthr_nope_%02d" % number for number in range(12)]

    response = archiver_client.post(JOBS_URL, {"thread_ids": ids}, format="json")

    assert response.status_code == 400
    assert "sthr_nope_11" not in response.json()["detail"]
    assert "(and 7 more)" in response.json()["detail"]
