"""Authentication and permissions: the same rules as the pages, answered in JSON."""

import logging

import pytest
from django.urls import reverse

from tests.factories import SessionFactory, ThreadFactory
from threads.models import ArchiveJob

pytestmark = pytest.mark.django_db

READ_URLS = [
    ("api:session-list", {}),
    ("api:thread-list", {}),
    ("api:session-detail", {"session_id": "sesn_x"}),
    ("api:thread-detail", {"session_id": "sesn_x", "thread_id": "sthr_x"}),
    ("api:usage", {}),
    ("api:usage-breakdown", {}),
    ("api:archive-job-list", {}),
    ("api:archive-job-detail", {"job_id": 1}),
    ("api:archive-job-failed-items", {"job_id": 1}),
    ("api:schema", {}),
]
WRITE_URLS = [
    ("api:archive-job-list", {}),
    ("api:archive-job-cancel", {"job_id": 1}),
    ("api:archive-job-retry-failed", {"job_id": 1}),
]


@pytest.mark.parametrize(("name", "kwargs"), READ_URLS)
def test_read_anonymous_gets_401_json(anonymous_client, name, kwargs):
    response = anonymous_client.get(reverse(name, kwargs=kwargs))

    assert response.status_code == 401
    # The schema endpoint answers application/vnd.oai.openapi+json.
    assert response["Content-Type"].split(";")[0].endswith("json")
    assert response.json()["detail"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(("name", "kwargs"), WRITE_URLS)
def test_write_anonymous_gets_401_json(anonymous_client, name, kwargs):
    response = anonymous_client.post(reverse(name, kwargs=kwargs), {}, format="json")

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")


def test_invalid_token_gets_401(anonymous_client):
    anonymous_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = anonymous_client.get(reverse("api:thread-list"))

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."


@pytest.mark.parametrize(("name", "kwargs"), WRITE_URLS)
def test_write_without_permission_gets_403(viewer_client, name, kwargs):
    thread = ThreadFactory(parent=ThreadFactory())
    job = ArchiveJob.objects.create(scope="selected", grace_until="2030-01-01T00:00:00Z")
    kwargs = {key: job.pk for key in kwargs}

    response = viewer_client.post(reverse(name, kwargs=kwargs), {"thread_ids": [thread.id]}, format="json")

    assert response.status_code == 403
    assert "threads.archive_thread" in response.json()["detail"]
    assert ArchiveJob.objects.count() == 1


def test_write_forbidden_logs_one_warning(viewer_client, viewer, caplog):
    thread = ThreadFactory(parent=ThreadFactory())
    path = reverse("api:archive-job-list")

    with caplog.at_level(logging.INFO, logger="django.request"):
        viewer_client.post(path, {"thread_ids": [thread.id]}, format="json")

    [record] = [record for record in caplog.records if record.name == "django.request"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.user_id == viewer[0].pk
    assert path in record.getMessage()


def test_dry_run_without_permission_gets_403(viewer_client):
    thread = ThreadFactory(parent=ThreadFactory())

    response = viewer_client.post(
        reverse("api:archive-job-list"), {"thread_ids": [thread.id], "dry_run": True}, format="json"
    )

    assert response.status_code == 403


@pytest.mark.parametrize(("name", "kwargs"), READ_URLS[:6])
def test_read_with_token_gets_200_or_404(viewer_client, name, kwargs):
    SessionFactory(id="sesn_x")

    response = viewer_client.get(reverse(name, kwargs=kwargs))

    assert response.status_code in (200, 404)
    assert response["Content-Type"].startswith("application/json")


def test_archive_job_reads_allowed_without_permission(viewer_client):
    job = ArchiveJob.objects.create(scope="selected", grace_until="2030-01-01T00:00:00Z")

    listed = viewer_client.get(reverse("api:archive-job-list"))
    detail = viewer_client.get(reverse("api:archive-job-detail", kwargs={"job_id": job.pk}))

    assert listed.status_code == 200
    assert detail.status_code == 200


def test_write_with_permission_succeeds(archiver_client, archiver):
    child = ThreadFactory(parent=ThreadFactory())

    created = archiver_client.post(reverse("api:archive-job-list"), {"thread_ids": [child.id]}, format="json")
    job_id = created.json()["job"]["id"]
    cancelled = archiver_client.post(reverse("api:archive-job-cancel", kwargs={"job_id": job_id}))
    retried = archiver_client.post(reverse("api:archive-job-retry-failed", kwargs={"job_id": job_id}))

    assert created.status_code == 201
    assert created.json()["job"]["created_by"] == "archiver"
    assert cancelled.status_code in (200, 409)
    # A cancelled job retries nothing.
    assert retried.status_code == 409


def test_session_login_reaches_api(client, viewer):
    client.force_login(viewer[0])

    response = client.get(reverse("api:thread-list"))

    assert response.status_code == 200


def test_docs_page_redirects_anonymous_to_login(client):
    response = client.get(reverse("api:docs"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_docs_page_uses_local_static_files(client, viewer):
    client.force_login(viewer[0])

    response = client.get(reverse("api:docs"))
    html = response.content.decode()

    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert "https://" not in html


def test_schema_with_token_lists_v1_paths(viewer_client):
    response = viewer_client.get(reverse("api:schema"))
    paths = response.json()["paths"]

    assert response.status_code == 200
    assert "/api/v1/threads/" in paths
    assert "/api/v1/archive-jobs/{job_id}/cancel/" in paths
    assert "tokenAuth" in response.json()["components"]["securitySchemes"]
