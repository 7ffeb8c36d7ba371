"""Invalid input is answered with 400, a `detail` sentence and the field it concerns."""

import pytest
from django.urls import reverse

from tests.factories import ThreadFactory
from threads.models import ArchiveJob

pytestmark = pytest.mark.django_db

INVALID_QUERIES = [
    ("api:thread-list", {"status": "sleeping"}, "status"),
    ("api:thread-list", {"created_from": "yesterday"}, "created_from"),
    ("api:thread-list", {"created_to": "2026-02-30"}, "created_to"),
    ("api:thread-list", {"archived": "maybe"}, "archived"),
    ("api:thread-list", {"kind": "grandchild"}, "kind"),
    ("api:thread-list", {"agent": "a" * 201}, "agent"),
    ("api:thread-list", {"sort": "-colour"}, "sort"),
    ("api:thread-list", {"cursor": "not-a-cursor"}, "cursor"),
    ("api:thread-list", {"page_size": "0"}, "page_size"),
    ("api:thread-list", {"page_size": "many"}, "page_size"),
    ("api:session-list", {"sort": "model"}, "sort"),
    ("api:session-list", {"status": "idle", "created_from": "2026-13-01"}, "created_from"),
    ("api:usage", {"period": "1y"}, "period"),
    ("api:usage", {"breakdown": "colour"}, "breakdown"),
    ("api:usage", {"status": "asleep"}, "status"),
    ("api:usage-breakdown", {"limit": "100000"}, "limit"),
    ("api:usage-breakdown", {"offset": "-1"}, "offset"),
    ("api:archive-job-list", {"cursor": "zzzz"}, "cursor"),
]


@pytest.mark.parametrize(("name", "query", "field"), INVALID_QUERIES)
def test_invalid_query_names_field(viewer_client, name, query, field):
    response = viewer_client.get(reverse(name), query)
    body = response.json()

    assert response.status_code == 400
    assert field in body
    assert isinstance(body[field], list)
    assert field in body["detail"]


def test_several_invalid_fields_all_named(viewer_client):
    response = viewer_client.get(reverse("api:thread-list"), {"status": "x", "kind": "y", "sort": "z"})
    body = response.json()

    assert response.status_code == 400
    assert {"status", "kind", "sort"} <= set(body)


def test_reversed_dates_are_a_non_field_error(viewer_client):
    response = viewer_client.get(
        reverse("api:thread-list"), {"created_from": "2026-03-02", "created_to": "2026-03-01"}
    )

    assert response.status_code == 400
    assert response.json()["non_field_errors"] == ["The start date must not be after the end date."]


def test_cursor_of_another_sort_is_invalid(viewer_client):
    ThreadFactory.create_batch(3)
    first = viewer_client.get(reverse("api:thread-list"), {"page_size": 1, "sort": "-created"}).json()
    cursor = first["next"].split("cursor=")[1].split("&")[0]

    response = viewer_client.get(reverse("api:thread-list"), {"sort": "agent", "cursor": cursor})

    assert response.status_code == 400
    assert "cursor" in response.json()


INVALID_BODIES = [
    ({}, "thread_ids"),
    ({"thread_ids": []}, "thread_ids"),
    ({"thread_ids": "sthr_1"}, "thread_ids"),
    ({"thread_ids": ["x" * 129]}, "thread_ids"),
    ({"thread_ids": ["sthr_1"], "filter": {}}, "filter"),
    ({"filter": {"statuss": ["idle"]}}, "filter"),
    ({"filter": {"status": ["asleep"]}}, "filter"),
    ({"filter": {"created_to": "last week"}}, "filter"),
    ({"filter": {"created_from": "2026-03-02", "created_to": "2026-03-01"}}, "filter"),
    ({"filter": "status=idle"}, "filter"),
    ({"thread_ids": ["sthr_1"], "dry_run": "perhaps"}, "dry_run"),
    ({"thread_ids": ["sthr_1"], "interrupt_running": [1]}, "interrupt_running"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
def test_invalid_archive_body_names_field(archiver_client, body, field):
    response = archiver_client.post(reverse("api:archive-job-list"), body, format="json")
    data = response.json()

    assert response.status_code == 400
    assert field in data
    assert field in data["detail"]
    assert ArchiveJob.objects.count() == 0


def test_unknown_filter_key_is_named(archiver_client):
    response = archiver_client.post(
        reverse("api:archive-job-list"), {"filter": {"statuss": ["idle"]}, "dry_run": True}, format="json"
    )

    assert response.json()["filter"]["statuss"][0].startswith("Unknown field.")


def test_malformed_json_is_400(archiver_client):
    response = archiver_client.post(
        reverse("api:archive-job-list"), "{not json", content_type="application/json"
    )

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_unknown_session_is_404_with_id(viewer_client):
    response = viewer_client.get(reverse("api:session-detail", kwargs={"session_id": "sesn_missing"}))

    assert response.status_code == 404
    assert "sesn_missing" in response.json()["detail"]


def test_job_id_beyond_bigint_is_404(viewer_client):
    response = viewer_client.get("/api/v1/archive-jobs/%d/" % 2**70)

    assert response.status_code == 404


def test_unmatched_api_path_is_json_404(viewer_client):
    response = viewer_client.get("/api/v1/nothing/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "/api/v1/nothing/" in response.json()["detail"]


def test_unmatched_api_path_without_slash_is_json_404(anonymous_client):
    response = anonymous_client.get("/api/v1/nothing")

    assert response.status_code == 404
    assert "/api/v1/nothing" in response.json()["detail"]


def test_unmatched_page_path_stays_html_404(client):
    # Guards the prefix check: pages keep Django's HTML 404.
    response = client.get("/nothing-here/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
