"""Read endpoints: cursor pages over many rows, details, usage."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse

from tests.factories import SessionFactory, ThreadFactory
from threads.models import ArchiveJob

pytestmark = pytest.mark.django_db

SAME_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _walk(client, url: str, params: dict) -> tuple[list[dict], int]:
    """Follow `next` links from the first page; return every row and the number of pages."""
    rows, pages = [], 0
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.json()
        body = response.json()
        rows.extend(body["results"])
        pages += 1
        if body["next"] is None:
            return rows, pages
        response = client.get(body["next"])


def test_thread_pages_cover_every_row_once_with_ties(viewer_client):
    # Equal sort keys everywhere: only the id tie-break keeps pages apart.
    session = SessionFactory()
    threads = ThreadFactory.create_batch(
        230, session=session, parent=None, is_primary=False, created_at=SAME_TIME
    )

    rows, pages = _walk(viewer_client, reverse("api:thread-list"), {"page_size": 17, "sort": "-created"})

    ids = [row["id"] for row in rows]
    assert pages == 14
    assert len(ids) == len(threads)
    assert set(ids) == {thread.id for thread in threads}
    assert ids == sorted(ids, reverse=True)


def test_thread_pages_follow_sort_and_filter(viewer_client):
    session = SessionFactory()
    for index in range(60):
        ThreadFactory(session=session, agent_name="Agent %02d" % (index % 7), status="idle")
    ThreadFactory.create_batch(5, session=session, status="running")

    rows, _pages = _walk(
        viewer_client, reverse("api:thread-list"), {"page_size": 8, "sort": "agent", "status": "idle"}
    )

    names = [row["agent_name"] for row in rows]
    assert len(rows) == 60
    assert names == sorted(names)
    assert {row["status"] for row in rows} == {"idle"}


def test_previous_link_returns_the_earlier_page(viewer_client):
    ThreadFactory.create_batch(10, created_at=SAME_TIME)
    url = reverse("api:thread-list")

    first = viewer_client.get(url, {"page_size": 4}).json()
    second = viewer_client.get(first["next"]).json()
    back = viewer_client.get(second["previous"]).json()

    assert first["previous"] is None
    assert [row["id"] for row in back["results"]] == [row["id"] for row in first["results"]]


def test_session_pages_cover_every_row(viewer_client):
    sessions = SessionFactory.create_batch(75, created_at=SAME_TIME)

    rows, pages = _walk(viewer_client, reverse("api:session-list"), {"page_size": 20, "sort": "created"})

    assert pages == 4
    assert [row["id"] for row in rows] == sorted(session.id for session in sessions)


def test_archive_job_pages_cover_every_job(viewer_client):
    jobs = [ArchiveJob.objects.create(scope="selected", grace_until=SAME_TIME) for _ in range(23)]

    rows, pages = _walk(viewer_client, reverse("api:archive-job-list"), {"page_size": 5})

    assert pages == 5
    assert [row["id"] for row in rows] == sorted((job.pk for job in jobs), reverse=True)


def test_next_link_keeps_filter_and_sort(viewer_client):
    ThreadFactory.create_batch(3, status="idle")

    body = viewer_client.get(
        reverse("api:thread-list"), {"page_size": 1, "status": "idle", "sort": "agent"}
    ).json()
    query = parse_qs(urlparse(body["next"]).query)

    assert query["status"] == ["idle"]
    assert query["sort"] == ["agent"]
    assert query["page_size"] == ["1"]


def test_session_detail_has_thread_tree(viewer_client):
    primary = ThreadFactory()
    child = ThreadFactory(
        session=primary.session, parent=primary, created_at=primary.created_at + timedelta(seconds=1)
    )
    grandchild = ThreadFactory(
        session=primary.session, parent=child, created_at=child.created_at + timedelta(seconds=1)
    )

    body = viewer_client.get(reverse("api:session-detail", kwargs={"session_id": primary.session_id})).json()
    rows = body["thread_tree"]["rows"]

    assert body["session"]["id"] == primary.session_id
    assert [(row["thread"]["id"], row["depth"]) for row in rows] == [
        (primary.id, 0),
        (child.id, 1),
        (grandchild.id, 2),
    ]
    assert body["thread_tree"]["total_tokens"] == 3 * 1100
    assert body["thread_tree"]["list_cost_amount"] == 30
    assert body["raw"] == primary.session.raw


def test_thread_detail_sums_descendants(viewer_client):
    primary = ThreadFactory()
    child = ThreadFactory(session=primary.session, parent=primary)
    ThreadFactory(session=primary.session, parent=child, list_cost_amount=None)

    url = reverse("api:thread-detail", kwargs={"session_id": primary.session_id, "thread_id": child.id})
    body = viewer_client.get(url).json()

    assert body["thread"]["id"] == child.id
    assert body["thread"]["parent_id"] == primary.id
    assert body["tree_usage"]["thread_count"] == 2
    assert body["tree_usage"]["list_cost_amount"] == 10
    assert body["tree_usage"]["cost_unknown_count"] == 1


def test_thread_detail_in_other_session_is_404(viewer_client):
    thread = ThreadFactory()
    other = SessionFactory()

    url = reverse("api:thread-detail", kwargs={"session_id": other.id, "thread_id": thread.id})
    response = viewer_client.get(url)

    assert response.status_code == 404


def test_usage_totals_follow_filter_and_period(viewer_client):
    today = datetime.now(UTC)
    ThreadFactory.create_batch(3, created_at=today, model="claude-a")
    ThreadFactory(created_at=today, model="claude-b")
    ThreadFactory(created_at=today - timedelta(days=20), model="claude-a")

    body = viewer_client.get(reverse("api:usage"), {"period": "7d", "model": "claude-a"}).json()

    assert body["period"] == "7d"
    assert body["totals"]["thread_count"] == 3
    assert body["totals"]["total_tokens"] == 3 * 1100
    assert body["totals"]["list_cost_amount"] == 30
    assert body["breakdown"] == "agent"
    assert body["breakdown_rows"][0]["thread_count"] == 3
    assert sum(day["thread_count"] for day in body["daily"]) == 3


def test_usage_advisor_row_matches_agent_type_filter(viewer_client):
    today = datetime.now(UTC)
    primary = ThreadFactory(created_at=today)
    advisor_fields = {"agent_type": "advisor", "agent_id": None, "agent_name": None}
    ThreadFactory.create_batch(3, session=primary.session, parent=primary, created_at=today, **advisor_fields)

    breakdown = viewer_client.get(reverse("api:usage-breakdown"), {"breakdown": "agent"}).json()
    [advisor_row] = [row for row in breakdown["results"] if row["agent_type"] == "advisor"]
    listed = viewer_client.get(reverse("api:thread-list"), {"agent_type": "advisor"}).json()

    assert advisor_row["key"] == ""
    assert advisor_row["thread_count"] == 3
    assert len(listed["results"]) == advisor_row["thread_count"]
    assert {row["agent_type"] for row in listed["results"]} == {"advisor"}


def test_usage_breakdown_pages_by_offset(viewer_client):
    today = datetime.now(UTC)
    for index in range(7):
        ThreadFactory(created_at=today, model="model-%d" % index)

    first = viewer_client.get(
        reverse("api:usage-breakdown"), {"breakdown": "model", "limit": 5, "sort": "name"}
    ).json()
    second = viewer_client.get(first["next"]).json()

    assert first["count"] == 7
    assert [row["key"] for row in first["results"] + second["results"]] == ["model-%d" % i for i in range(7)]
    assert second["next"] is None


def test_usage_session_breakdown_has_session_figures(viewer_client):
    thread = ThreadFactory(created_at=datetime.now(UTC))

    body = viewer_client.get(reverse("api:usage-breakdown"), {"breakdown": "session"}).json()
    row = body["results"][0]

    assert row["key"] == thread.session_id
    assert row["session"]["id"] == thread.session_id
    assert row["all_threads"]["thread_count"] == 1
