"""Browse pages: login, filters, sorting, paging, bad input, escaping, query counts, refresh."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import SessionFactory, ThreadFactory
from threads.views import browse

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 3, 1, tzinfo=UTC)
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("viewer", password="pw-viewer-123")
    client.force_login(user)
    return client


@pytest.fixture
def archiver(client):
    user = User.objects.create_user("archiver", password="pw-archiver-123")
    user.user_permissions.add(Permission.objects.get(codename="archive_thread"))
    client.force_login(user)
    return client


def thread_pair(**session_fields):
    primary = ThreadFactory(session=SessionFactory(**session_fields))
    child = ThreadFactory(session=primary.session, parent=primary, agent_name="Web researcher")
    return primary, child


@pytest.mark.parametrize("name", ["threads:session-list", "threads:thread-list"])
def test_list_pages_require_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_detail_pages_require_login(client):
    primary, _ = thread_pair()
    for url in [
        reverse("threads:session-detail", args=[primary.session_id]),
        reverse("threads:thread-detail", args=[primary.session_id, primary.id]),
        reverse("threads:thread-events", args=[primary.session_id, primary.id]),
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login"))


def test_session_list_shows_columns(viewer):
    SessionFactory(title="Quarterly research", list_cost_amount=123456, input_tokens=1234567, thread_count=3)
    body = viewer.get(reverse("threads:session-list")).content.decode()
    assert "Quarterly research" in body
    assert "$1,234.56" in body
    assert "1,234,667" in body
    assert 'title="20' in body


def test_session_list_cost_pending_never_zero(viewer):
    SessionFactory(list_cost_amount=None)
    body = viewer.get(reverse("threads:session-list")).content.decode()
    assert "cost pending" in body
    assert "$0.00" not in body


@pytest.mark.parametrize(
    "query, expected, excluded",
    [
        ("status=running", "Running one", "Idle one"),
        ("agent=agent_b", "Idle one", "Running one"),
        ("model=m2", "Idle one", "Running one"),
        ("created_from=2026-03-02", "Idle one", "Running one"),
        ("archived=yes", "Archived one", "Idle one"),
        ("q=team-blue", "Running one", "Idle one"),
        ("status=idle&agent=agent_b&model=m2&created_to=2026-03-05", "Idle one", "Running one"),
    ],
)
def test_session_list_filters(viewer, query, expected, excluded):
    SessionFactory(
        title="Running one",
        status="running",
        agent_id="agent_a",
        model="m1",
        created_at=BASE,
        search_text="running one team-blue",
    )
    SessionFactory(
        title="Idle one",
        status="idle",
        agent_id="agent_b",
        model="m2",
        created_at=BASE + timedelta(days=2),
        search_text="idle one",
    )
    SessionFactory(title="Archived one", archived_at=BASE, search_text="archived one")
    body = viewer.get(reverse("threads:session-list") + "?" + query).content.decode()
    assert expected in body
    assert excluded not in body


def test_thread_list_kind_filter(viewer):
    primary, child = thread_pair()
    body = viewer.get(reverse("threads:thread-list") + "?kind=child").content.decode()
    assert child.id in body
    assert primary.id not in body


def test_thread_list_agent_type_filter(viewer):
    primary, child = thread_pair()
    advisor = ThreadFactory(
        session=primary.session, parent=primary, agent_type="advisor", agent_id=None, agent_name=None
    )

    body = viewer.get(reverse("threads:thread-list") + "?agent_type=advisor").content.decode()

    assert advisor.id in body
    assert child.id not in body
    assert primary.id not in body
    assert '<option value="advisor" selected>' in body


def test_thread_list_agent_type_invalid_shows_message(viewer):
    body = viewer.get(reverse("threads:thread-list") + "?agent_type=robot").content.decode()

    assert "Select a valid choice. robot is not one of the available choices." in body


@pytest.mark.parametrize(
    "sort", ["title", "-agent", "status", "-created", "updated", "-threads", "tokens", "-cost", "archived"]
)
def test_session_list_sorts_by_column(viewer, sort):
    for index in range(3):
        SessionFactory(title="Session %d" % index, created_at=BASE + timedelta(hours=index))
    response = viewer.get(reverse("threads:session-list") + "?sort=" + sort + "&archived=all")
    assert response.status_code == 200
    assert "Session 2" in response.content.decode()


def test_session_list_pages_next_and_previous(viewer):
    for index in range(55):
        SessionFactory(title="Session %02d" % index, created_at=BASE + timedelta(minutes=index))
    first = viewer.get(reverse("threads:session-list"))
    assert "Session 54" in first.content.decode()
    next_url = first.context["page"].next_cursor
    second = viewer.get(reverse("threads:session-list"), {"cursor": next_url})
    body = second.content.decode()
    assert "Session 04" in body
    assert "Session 05" not in body
    back = viewer.get(reverse("threads:session-list"), {"cursor": second.context["page"].previous_cursor})
    assert [row.id for row in back.context["page"].rows] == [row.id for row in first.context["page"].rows]


@pytest.mark.parametrize(
    "query, message",
    [
        ("sort=bogus", "Unknown sort column"),
        ("cursor=not-a-cursor", "The page link is invalid"),
        ("created_from=2026-13-45", "Enter a valid date"),
        ("status=sleeping", "Select a valid choice"),
        ("created_from=2026-03-05&created_to=2026-03-01", "must not be after"),
    ],
)
def test_bad_input_shows_message(viewer, query, message):
    SessionFactory()
    response = viewer.get(reverse("threads:session-list") + "?" + query)
    assert response.status_code == 200
    assert message in response.content.decode()


def test_cursor_from_other_sort_rejected(viewer):
    for _ in range(55):
        SessionFactory()
    cursor = viewer.get(reverse("threads:session-list")).context["page"].next_cursor
    response = viewer.get(reverse("threads:session-list"), {"cursor": cursor, "sort": "title"})
    assert "another sort order" in response.content.decode()


def test_htmx_request_gets_fragment(viewer):
    SessionFactory(title="Fragment row")
    response = viewer.get(reverse("threads:session-list"), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "Fragment row" in body
    assert "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_unknown_ids_give_404(viewer):
    session = SessionFactory()
    assert viewer.get(reverse("threads:session-detail", args=["sesn_missing"])).status_code == 404
    assert viewer.get(reverse("threads:thread-detail", args=[session.id, "sthr_missing"])).status_code == 404
    response = viewer.get(reverse("threads:thread-detail", args=["sesn_missing", "sthr_missing"]))
    assert "Not found" in response.content.decode()


def test_thread_of_other_session_gives_404(viewer):
    primary, _ = thread_pair()
    other = SessionFactory()
    assert viewer.get(reverse("threads:thread-detail", args=[other.id, primary.id])).status_code == 404


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_strings_escaped(viewer, payload):
    primary = ThreadFactory(
        session=SessionFactory(title=payload, metadata={payload: payload}, raw={"agent": {"name": payload}}),
        agent_name=payload,
        raw={
            "agent": {
                "type": "agent",
                "name": payload,
                "system": payload,
                "tools": [{"type": "custom", "name": payload, "description": payload}],
            },
            "usage": {},
        },
    )
    urls = [
        reverse("threads:session-list"),
        reverse("threads:thread-list"),
        reverse("threads:session-detail", args=[primary.session_id]),
        reverse("threads:thread-detail", args=[primary.session_id, primary.id]),
    ]
    for url in urls:
        body = viewer.get(url).content.decode()
        assert payload not in body, url
        assert "&lt;" in body, url


def test_parse_error_and_gone_shown(viewer):
    primary = ThreadFactory(parse_error="status: unexpected value 'paused'", gone_at=BASE, status="paused")
    body = viewer.get(
        reverse("threads:thread-detail", args=[primary.session_id, primary.id])
    ).content.decode()
    assert "did not match the expected API shape" in body
    assert "status: unexpected value" in body
    assert "The API no longer returns this thread" in body
    assert "paused" in body


def test_thread_detail_agent_variants(viewer):
    primary = ThreadFactory(raw={"agent": {"type": "agent", "id": "agent_x", "version": 4, "name": "Lead"}})
    advisor = ThreadFactory(
        session=primary.session,
        parent=primary,
        agent_type="advisor",
        model="claude-opus-4-8",
        list_cost_amount=None,
        raw={"agent": {"type": "advisor", "model": "claude-opus-4-8"}, "usage": None},
    )
    inline = ThreadFactory(
        session=primary.session,
        parent=primary,
        agent_type="inline",
        raw={"agent": {"type": "inline", "name": "extract-worker"}},
    )

    saved_body = viewer.get(
        reverse("threads:thread-detail", args=[primary.session_id, primary.id])
    ).content.decode()
    assert "agent_x" in saved_body
    assert "version 4" in saved_body
    advisor_body = viewer.get(
        reverse("threads:thread-detail", args=[primary.session_id, advisor.id])
    ).content.decode()
    assert "advisor · claude-opus-4-8" in advisor_body
    assert "no usage yet" in advisor_body
    inline_body = viewer.get(
        reverse("threads:thread-detail", args=[primary.session_id, inline.id])
    ).content.decode()
    assert "defined inline" in inline_body


def test_session_detail_tree_and_totals(viewer):
    primary, child = thread_pair(list_cost_amount=500)
    grandchild = ThreadFactory(session=primary.session, parent=child, agent_name="Deep helper")
    response = viewer.get(reverse("threads:session-detail", args=[primary.session_id]))
    body = response.content.decode()
    assert grandchild.id in body
    assert "depth-2" in body
    assert "$5.00" in body
    assert "$0.30" in body
    assert "do not add up" in body


def query_count(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("name", ["threads:session-list", "threads:thread-list", "session-detail"])
def test_query_count_constant(archiver, name):
    session = SessionFactory()
    primary = ThreadFactory(session=session)

    def add(count):
        for _ in range(count):
            SessionFactory()
            ThreadFactory(session=session, parent=primary)

    url = reverse("threads:session-detail", args=[session.id]) if name == "session-detail" else reverse(name)
    add(5)
    small = query_count(archiver, url)
    add(45)
    large = query_count(archiver, url)
    assert small == large


def test_archive_all_button_count_capped(archiver, monkeypatch):
    monkeypatch.setattr(browse, "ARCHIVE_COUNT_CAP", 2)
    for _ in range(2):
        thread_pair()

    body = archiver.get(reverse("threads:thread-list")).content.decode()

    assert "Archive all more than 2 matching this filter" in body
    assert "More than 2 threads match this filter" in body


def test_archive_controls_hidden_without_permission(viewer):
    thread_pair()
    body = viewer.get(reverse("threads:thread-list")).content.decode()
    assert 'id="thread-selection"' not in body
    assert 'name="thread_ids"' not in body


def test_archive_controls_post_selection(archiver):
    primary, child = thread_pair()
    ThreadFactory(session=primary.session, parent=primary, archived_at=BASE)
    body = archiver.get(reverse("threads:thread-list") + "?status=idle").content.decode()
    assert 'id="thread-selection"' in body
    assert 'action="%s"' % reverse("threads:archive-confirm") in body
    assert 'name="filter" value="status=idle"' in body
    assert 'name="scope" value="selected"' in body
    assert "Archive all 2 matching this filter" in body
    assert 'name="thread_ids" value="%s"' % child.id in body
    assert 'name="thread_ids" value="%s"' % primary.id not in body
    assert 'id="select-all"' in body


def test_refresh_requires_csrf(viewer):
    primary, _ = thread_pair()
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(User.objects.get(username="viewer"))
    response = csrf_client.post(reverse("threads:thread-refresh", args=[primary.session_id, primary.id]))
    assert response.status_code == 403


@pytest.mark.redis
def test_refresh_queues_task(viewer, redis_url, settings):
    import redis

    primary, _ = thread_pair()
    response = viewer.post(
        reverse("threads:thread-refresh", args=[primary.session_id, primary.id]),
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert 'hx-trigger="every 1s"' in body
    messages = redis.Redis.from_url(redis_url).lrange("celery", 0, -1)
    headers = [json.loads(message)["headers"] for message in messages]
    assert [header["task"] for header in headers] == ["threads.thread_refresh"]
    assert primary.id in headers[0]["kwargsrepr"]


def test_refresh_poll_stops_with_286(viewer):
    primary, _ = thread_pair()
    url = reverse("threads:thread-detail", args=[primary.session_id, primary.id])
    since = (primary.fetched_at + timedelta(seconds=5)).isoformat()
    pending = viewer.get(url, {"refreshing": since}, headers={"HX-Request": "true"})
    assert pending.status_code == 200
    primary.fetched_at = primary.fetched_at + timedelta(seconds=10)
    primary.save()
    done = viewer.get(url, {"refreshing": since}, headers={"HX-Request": "true"})
    assert done.status_code == 286
    assert done["HX-Refresh"] == "true"


def test_events_error_is_plain_message(viewer, settings):
    primary, _ = thread_pair()
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"
    response = viewer.get(
        reverse("threads:thread-events", args=[primary.session_id, primary.id]),
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert "could not be reached" in body
    assert "sk-ant" not in body
    assert "Traceback" not in body


def test_admin_is_read_only(client):
    admin = User.objects.create_superuser("root", password="pw-root-12345")
    client.force_login(admin)
    primary, _ = thread_pair()
    assert client.get(reverse("admin:threads_thread_changelist")).status_code == 200
    assert client.get(reverse("admin:threads_session_changelist") + "?q=sesn").status_code == 200
    assert client.get(reverse("admin:threads_thread_add")).status_code == 403
    assert client.post(reverse("admin:threads_thread_delete", args=[primary.id])).status_code == 403


def test_thread_detail_archive_button_posts_to_confirm(archiver):
    primary, child = thread_pair()

    body = archiver.get(reverse("threads:thread-detail", args=[child.session_id, child.id])).content.decode()

    assert 'action="%s"' % reverse("threads:archive-confirm") in body
    assert 'name="thread_ids" value="%s"' % child.id in body


def test_thread_detail_archive_button_hidden_for_primary(archiver):
    primary, _ = thread_pair()

    body = archiver.get(reverse("threads:thread-detail", args=[primary.session_id, primary.id])).content.decode()

    assert "Archive this thread" not in body


def test_thread_detail_archive_button_hidden_without_permission(viewer):
    _, child = thread_pair()

    body = viewer.get(reverse("threads:thread-detail", args=[child.session_id, child.id])).content.decode()

    assert "Archive this thread" not in body


@pytest.mark.parametrize("bad_query", ["status=asleep&kind=child", "kind=child&q=" + "x" * 5000])
def test_archive_all_matching_hidden_for_invalid_filter(archiver, bad_query):
    thread_pair()

    body = archiver.get(reverse("threads:thread-list") + "?" + bad_query).content.decode()

    assert 'name="scope" value="filter"' not in body
    assert "Fix the filter to archive all matching threads." in body


def test_reversed_dates_message_names_no_field(viewer):
    thread_pair()

    body = viewer.get(reverse("threads:thread-list") + "?created_from=2026-03-05&created_to=2026-03-01").content.decode()

    assert "The start date must not be after the end date." in body
    assert "all :" not in body
