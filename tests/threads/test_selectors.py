"""Selectors behind the browse pages: filters, sorts, keyset pages and the thread tree."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection

from tests.factories import SessionFactory, ThreadFactory
from threads import selectors
from threads.filters import ThreadFilter, thread_filter_from_query
from threads.models import Session, Thread
from threads.pagination import cursor_decode, sort_parse

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 3, 1, tzinfo=UTC)


def walk_pages(*, list_page, thread_filter, sort_param, sort_keys, page_size):
    """Follow next cursors from the first page; return the ids page by page."""
    sort = sort_parse(value=sort_param, keys=sort_keys, default="-created")
    pages, cursor = [], None
    while True:
        page = list_page(thread_filter=thread_filter, sort=sort, cursor=cursor, page_size=page_size)
        pages.append([row.id for row in page.rows])
        if page.next_cursor is None:
            return pages, page
        cursor = cursor_decode(token=page.next_cursor, sort=sort)


def test_session_filter_status_alone():
    SessionFactory(status="idle")
    running = SessionFactory(status="running")
    thread_filter, _ = thread_filter_from_query({"status": ["running"]})
    assert list(selectors.session_list_filtered(thread_filter=thread_filter)) == [running]


def test_session_filters_combined():
    match = SessionFactory(
        status="idle", agent_id="agent_a", model="m1", created_at=BASE, title="Quarterly report"
    )
    SessionFactory(status="idle", agent_id="agent_a", model="m2", created_at=BASE, title="Quarterly report")
    SessionFactory(
        status="running", agent_id="agent_a", model="m1", created_at=BASE, title="Quarterly report"
    )
    SessionFactory(status="idle", agent_id="agent_b", model="m1", created_at=BASE, title="Quarterly report")
    SessionFactory(
        status="idle", agent_id="agent_a", model="m1", created_at=BASE - timedelta(days=5), title="Quarterly"
    )
    SessionFactory(
        status="idle", agent_id="agent_a", model="m1", created_at=BASE, title="Other", search_text="other"
    )
    for session in selectors.Session.objects.exclude(title="Other"):
        session.search_text = session.title.lower()
        session.save()
    thread_filter = ThreadFilter(
        statuses=("idle",),
        agent="agent_a",
        model="m1",
        created_from=date(2026, 2, 28),
        created_to=date(2026, 3, 1),
        q="quarterly",
    )
    assert list(selectors.session_list_filtered(thread_filter=thread_filter)) == [match]


def test_session_filter_archived_choices():
    live = SessionFactory()
    archived = SessionFactory(archived_at=BASE)
    assert set(selectors.session_list_filtered(thread_filter=ThreadFilter(archived="no"))) == {live}
    assert set(selectors.session_list_filtered(thread_filter=ThreadFilter(archived="yes"))) == {archived}
    assert set(selectors.session_list_filtered(thread_filter=ThreadFilter(archived="all"))) == {
        live,
        archived,
    }


def test_thread_filter_kind():
    primary = ThreadFactory()
    child = ThreadFactory(session=primary.session, parent=primary)
    assert list(selectors.thread_list_filtered(thread_filter=ThreadFilter(kind="primary"))) == [primary]
    assert list(selectors.thread_list_filtered(thread_filter=ThreadFilter(kind="child"))) == [child]


@pytest.mark.parametrize("sort_name", sorted(selectors.SESSION_SORT_KEYS))
def test_session_sort_each_column_pages_all_rows(sort_name):
    for index in range(7):
        SessionFactory(
            title=None if index == 3 else "title %d" % (index % 3),
            agent_name="agent %d" % (index % 2),
            status=["idle", "running", "terminated"][index % 3],
            created_at=BASE + timedelta(hours=index % 4),
            updated_at=BASE + timedelta(hours=index % 2),
            thread_count=index % 3,
            input_tokens=None if index == 5 else index * 10,
            list_cost_amount=None if index % 2 else index,
            archived_at=None if index % 2 else BASE,
        )
    for sort_param in (sort_name, "-" + sort_name):
        pages, _ = walk_pages(
            list_page=selectors.session_list_page,
            thread_filter=ThreadFilter(archived="all"),
            sort_param=sort_param,
            sort_keys=selectors.SESSION_SORT_KEYS,
            page_size=2,
        )
        ids = [row_id for page in pages for row_id in page]
        sort = sort_parse(value=sort_param, keys=selectors.SESSION_SORT_KEYS, default="-created")
        expected = list(
            selectors.Session.objects.annotate(sort_key=sort.key.expression())
            .order_by(*(["-sort_key", "-id"] if sort.descending else ["sort_key", "id"]))
            .values_list("id", flat=True)
        )
        assert ids == expected


@pytest.mark.parametrize("sort_name", sorted(selectors.THREAD_SORT_KEYS))
def test_thread_sort_each_column_pages_all_rows(sort_name):
    primary = ThreadFactory(created_at=BASE)
    for index in range(6):
        ThreadFactory(
            session=primary.session,
            parent=primary,
            agent_name="agent %d" % (index % 2),
            model=None if index == 2 else "m%d" % (index % 3),
            created_at=BASE + timedelta(minutes=index % 3),
            active_seconds=None if index == 4 else float(index % 2),
            list_cost_amount=None if index == 1 else 5,
        )
    pages, _ = walk_pages(
        list_page=selectors.thread_list_page,
        thread_filter=ThreadFilter(archived="all"),
        sort_param="-" + sort_name,
        sort_keys=selectors.THREAD_SORT_KEYS,
        page_size=3,
    )
    ids = [row_id for page in pages for row_id in page]
    assert sorted(ids) == sorted(selectors.Thread.objects.values_list("id", flat=True))
    assert len(ids) == len(set(ids))


def test_keyset_ties_neither_repeat_nor_skip():
    for _ in range(25):
        SessionFactory(created_at=BASE)
    pages, _ = walk_pages(
        list_page=selectors.session_list_page,
        thread_filter=ThreadFilter(),
        sort_param="-created",
        sort_keys=selectors.SESSION_SORT_KEYS,
        page_size=4,
    )
    ids = [row_id for page in pages for row_id in page]
    assert len(ids) == 25
    assert len(set(ids)) == 25
    assert len(pages) == 7


def test_keyset_previous_returns_same_page():
    for index in range(10):
        SessionFactory(created_at=BASE + timedelta(minutes=index))
    sort = sort_parse(value="-created", keys=selectors.SESSION_SORT_KEYS, default="-created")
    first = selectors.session_list_page(thread_filter=ThreadFilter(), sort=sort, cursor=None, page_size=3)
    second = selectors.session_list_page(
        thread_filter=ThreadFilter(),
        sort=sort,
        cursor=cursor_decode(token=first.next_cursor, sort=sort),
        page_size=3,
    )
    back = selectors.session_list_page(
        thread_filter=ThreadFilter(),
        sort=sort,
        cursor=cursor_decode(token=second.previous_cursor, sort=sort),
        page_size=3,
    )
    assert [row.id for row in back.rows] == [row.id for row in first.rows]
    assert back.previous_cursor is None
    assert first.previous_cursor is None
    assert back.next_cursor is not None


def test_keyset_deep_page_reaches_last_rows():
    for index in range(60):
        SessionFactory(created_at=BASE + timedelta(minutes=index))
    pages, last = walk_pages(
        list_page=selectors.session_list_page,
        thread_filter=ThreadFilter(),
        sort_param="created",
        sort_keys=selectors.SESSION_SORT_KEYS,
        page_size=5,
    )
    assert len(pages) == 12
    assert last.next_cursor is None
    assert [row.created_at for row in last.rows][-1] == BASE + timedelta(minutes=59)


def test_count_capped_stops_at_cap():
    for _ in range(5):
        SessionFactory()
    assert selectors.queryset_count_capped(queryset=selectors.Session.objects.all(), cap=3) == 4
    assert selectors.queryset_count_capped(queryset=selectors.Session.objects.all(), cap=10) == 5


def test_thread_tree_nests_any_depth():
    primary = ThreadFactory(created_at=BASE)
    child = ThreadFactory(session=primary.session, parent=primary, created_at=BASE + timedelta(minutes=1))
    grandchild = ThreadFactory(session=primary.session, parent=child, created_at=BASE + timedelta(minutes=2))
    sibling = ThreadFactory(session=primary.session, parent=primary, created_at=BASE + timedelta(minutes=3))
    orphan = ThreadFactory(
        session=primary.session,
        parent_id="sthr_missing",
        is_primary=False,
        created_at=BASE + timedelta(minutes=4),
    )

    tree = selectors.session_thread_tree(session=primary.session)

    assert [(row.thread.id, row.depth) for row in tree.rows] == [
        (primary.id, 0),
        (child.id, 1),
        (grandchild.id, 2),
        (sibling.id, 1),
        (orphan.id, 0),
    ]
    assert tree.total_tokens == 5 * 1100
    assert tree.list_cost_amount == 50


def test_thread_tree_survives_parent_loop():
    session = SessionFactory()
    first = ThreadFactory(session=session, parent_id="sthr_loop_b", id="sthr_loop_a", is_primary=False)
    second = ThreadFactory(session=session, parent_id="sthr_loop_a", id="sthr_loop_b", is_primary=False)
    tree = selectors.session_thread_tree(session=session)
    assert sorted(row.thread.id for row in tree.rows) == sorted([first.id, second.id])


def test_agent_choices_lists_each_pair_once():
    ThreadFactory(agent_id="agent_b", agent_name="Beta")
    ThreadFactory(agent_id="agent_b", agent_name="Beta")
    ThreadFactory(agent_id="agent_a", agent_name="Alpha")
    ThreadFactory(agent_id="agent_a2", agent_name="Alpha")
    ThreadFactory(agent_id=None, agent_name="Scratch")
    ThreadFactory(agent_id="agent_nameless", agent_name=None)
    ThreadFactory(agent_id=None, agent_name=None, agent_type="advisor")

    choices = selectors.agent_choices(model=Thread)

    assert choices == [
        ("agent_a", "Alpha (agent_a)"),
        ("agent_a2", "Alpha (agent_a2)"),
        ("agent_b", "Beta (agent_b)"),
        ("Scratch", "Scratch (inline)"),
        ("agent_nameless", "agent_nameless"),
    ]


def test_agent_choices_of_sessions():
    SessionFactory(agent_id="agent_x", agent_name="Xavier")
    SessionFactory(agent_id=None, agent_name=None)

    assert selectors.agent_choices(model=Session) == [("agent_x", "Xavier (agent_x)")]


def test_model_choices_skip_empty_and_sort():
    for model_id in ("m-b", "m-a", "m-b", "", None):
        ThreadFactory(model=model_id)

    assert selectors.model_choices(model=Thread) == ["m-a", "m-b"]


def test_model_choices_stop_at_max(monkeypatch):
    monkeypatch.setattr(selectors, "MAX_CHOICES", 2)
    for model_id in ("m-c", "m-a", "m-b"):
        SessionFactory(model=model_id)

    assert selectors.model_choices(model=Session) == ["m-a", "m-b"]


@pytest.mark.parametrize(
    ("needle", "match"),
    [("SESN_FIND", "session id"), ("agent find", "agent name"), ("sthr_find", "thread id")],
)
def test_thread_free_text_matches_each_column(needle, match):
    session = SessionFactory(id="sesn_find_1", search_text="release notes sesn_find_1")
    wanted = {
        "session id": ThreadFactory(session=session, agent_name="Other"),
        "agent name": ThreadFactory(agent_name="Agent Finder"),
        "thread id": ThreadFactory(id="sthr_find_2", agent_name="Other"),
    }[match]
    ThreadFactory(agent_name="Unrelated")
    thread_filter = ThreadFilter(archived="all", q=needle)

    assert list(selectors.thread_list_filtered(thread_filter=thread_filter)) == [wanted]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("index", "needle"),
    [
        ("thread_id_trgm", "sthr_find"),
        ("thread_agent_name_trgm", "finder"),
        ("session_search_text_trgm", "notes"),
    ],
)
def test_thread_free_text_can_use_trigram_index(index, needle):
    ThreadFactory(id="sthr_find_3", agent_name="Finder", session=SessionFactory(search_text="release notes"))
    queryset = selectors.thread_list_filtered(thread_filter=ThreadFilter(archived="all", q=needle))
    sql, params = queryset.order_by().query.sql_with_params()

    with connection.cursor() as cursor:
        # A few rows are read cheaper from the table or in index order. Forbid both,
        # so the plan shows whether the filter's expressions match the indexes.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert index in plan
