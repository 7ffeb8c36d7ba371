"""The usage page: totals, unknown counts, session figures, filters, escaping, query count."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import SessionFactory, ThreadFactory
from threads.filters import thread_filter_from_query
from threads.pagination import sort_parse
from threads.selectors import DEFAULT_SORT, THREAD_SORT_KEYS, thread_list_filtered

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def user_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="viewer", password="secret-password")
    client.force_login(user)
    return client


def usage_get(client, **params):
    return client.get(reverse("threads:usage"), params)


def test_usage_page_requires_login(client):
    response = usage_get(client)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_usage_csv_requires_login(client):
    response = usage_get(client, format="csv", breakdown="agent")

    assert response.status_code == 302


def test_usage_page_renders_empty(user_client):
    response = usage_get(user_client)

    assert response.status_code == 200
    assert b"Token usage" in response.content
    assert b"No threads in this period." in response.content


def test_usage_totals_sum_threads(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, input_tokens=1200, output_tokens=30, list_cost_amount=123456)
    ThreadFactory(session=session, input_tokens=800, output_tokens=70, list_cost_amount=44)

    response = usage_get(user_client)

    totals = response.context["totals"]
    assert totals["thread_count"] == 2
    assert totals["session_count"] == 1
    assert totals["input_tokens"] == 2000
    assert totals["output_tokens"] == 100
    assert totals["list_cost_amount"] == 123500
    assert "$1,235.00" in response.content.decode()
    assert "2,000" in response.content.decode()


def test_usage_unknown_counted_not_zero(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, input_tokens=500, list_cost_amount=7)
    for _ in range(3):
        ThreadFactory(
            session=session,
            input_tokens=None,
            output_tokens=None,
            cache_read_input_tokens=None,
            cache_creation_5m_input_tokens=None,
            cache_creation_1h_input_tokens=None,
            list_cost_amount=None,
            list_cost_currency=None,
        )
    ThreadFactory(session=session, input_tokens=100, list_cost_amount=None, list_cost_currency=None)

    response = usage_get(user_client)
    body = response.content.decode()

    totals = response.context["totals"]
    assert totals["usage_unknown_count"] == 3
    assert totals["cost_unknown_count"] == 4
    assert totals["input_tokens"] == 600
    assert totals["list_cost_amount"] == 7
    assert "3 threads without usage yet" in body
    assert "Cost unknown for 4 threads" in body


def test_usage_all_unknown_shows_unknown(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(
        session=session,
        input_tokens=None,
        output_tokens=None,
        cache_read_input_tokens=None,
        cache_creation_5m_input_tokens=None,
        cache_creation_1h_input_tokens=None,
        list_cost_amount=None,
        list_cost_currency=None,
    )

    response = usage_get(user_client)

    assert response.context["totals"]["input_tokens"] is None
    assert response.context["totals"]["list_cost_display"] is None
    assert "$0.00" not in response.content.decode()


def test_usage_session_figure_differs_from_thread_sum(user_client):
    session = SessionFactory(created_at=NOW, list_cost_amount=1010)
    ThreadFactory(session=session, list_cost_amount=333)
    ThreadFactory(session=session, list_cost_amount=667)

    response = usage_get(user_client)
    body = response.content.decode()

    session_totals = response.context["session_totals"]
    assert session_totals["session_list_cost_amount"] == 1010
    assert session_totals["threads_list_cost_amount"] == 1000
    assert session_totals["difference_display"] == "$0.10"
    assert "the session figure is the authoritative cost" in body


def test_usage_session_breakdown_shows_both_figures(user_client):
    session = SessionFactory(created_at=NOW, list_cost_amount=1010, title="Nightly report")
    ThreadFactory(session=session, list_cost_amount=333, model="claude-haiku-4-5")
    ThreadFactory(session=session, list_cost_amount=667, model="claude-opus-4-5")

    response = usage_get(user_client, breakdown="session", model="claude-haiku-4-5")

    [row] = response.context["breakdown_rows"]
    assert row["list_cost_amount"] == 333
    assert row["session_cost_display"] == "$10.10"
    assert row["all_threads_cost_display"] == "$10.00"
    assert row["difference_display"] == "$0.10"


def test_usage_default_period_is_30_days(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=29), input_tokens=10)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=31), input_tokens=1000)

    response = usage_get(user_client)

    assert response.context["params"].period == "30d"
    assert response.context["totals"]["input_tokens"] == 10


def test_usage_period_all_includes_old_threads(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=29), input_tokens=10)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=400), input_tokens=1000)

    response = usage_get(user_client, period="all")

    assert response.context["totals"]["input_tokens"] == 1010


def test_usage_custom_dates_override_period(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, created_at=datetime(2026, 1, 5, 12, tzinfo=UTC), input_tokens=10)
    ThreadFactory(session=session, created_at=datetime(2026, 1, 7, 12, tzinfo=UTC), input_tokens=1000)

    response = usage_get(user_client, period="7d", created_from="2026-01-01", created_to="2026-01-05")

    assert response.context["params"].period == "custom"
    assert response.context["totals"]["input_tokens"] == 10


def test_usage_filters_apply(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, agent_id="agent_a", model="claude-opus-4-5", input_tokens=1, status="idle")
    ThreadFactory(
        session=session, agent_id="agent_b", model="claude-opus-4-5", input_tokens=10, status="running"
    )
    ThreadFactory(
        session=session, agent_id="agent_b", model="claude-haiku-4-5", input_tokens=100, archived_at=NOW
    )

    cases = [
        ({"agent": "agent_b"}, 110),
        ({"model": "claude-opus-4-5"}, 11),
        ({"status": "running"}, 10),
        ({"archived": "no"}, 11),
        ({"archived": "yes"}, 100),
        ({"kind": "child"}, 0),
    ]
    for params, expected in cases:
        response = usage_get(user_client, **params)
        assert response.context["totals"]["input_tokens"] == (expected or None), params


def test_usage_includes_archived_by_default(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, input_tokens=1)
    ThreadFactory(session=session, input_tokens=10, archived_at=NOW)

    response = usage_get(user_client)

    assert response.context["totals"]["input_tokens"] == 11


def test_usage_invalid_filter_reports_error(user_client):
    response = usage_get(user_client, created_from="not-a-date")

    assert response.status_code == 200
    assert "created_from" in response.context["filter_errors"]


def test_usage_filter_error_shows_label(user_client):
    response = usage_get(user_client, created_from="not-a-date")
    body = response.content.decode()

    assert "Created on or after: Enter a valid date." in body
    assert "created_from:" not in body


def test_usage_date_order_error_has_no_field_name(user_client):
    response = usage_get(user_client, created_from="2026-02-01", created_to="2026-01-01")
    body = response.content.decode()

    assert "<li>The start date must not be after the end date.</li>" in body
    assert "__all__" not in body


def test_usage_filter_error_escaped(user_client):
    hostile = "<b>x</b>"

    response = usage_get(user_client, status=hostile)
    body = response.content.decode()

    assert "Status: Select a valid choice. &lt;b&gt;x&lt;/b&gt; is not one of the available choices." in body
    assert hostile not in body


def test_usage_invalid_date_keeps_default_period(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=29), input_tokens=10)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=400), input_tokens=1000)

    response = usage_get(user_client, created_from="x")
    body = response.content.decode()

    assert response.context["params"].period == "30d"
    assert response.context["totals"]["input_tokens"] == 10
    assert "Created on or after: Enter a valid date." in body
    assert "Threads created at any time." not in body


def test_usage_half_valid_range_keeps_period(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=29), input_tokens=10)
    ThreadFactory(session=session, created_at=datetime(2026, 1, 5, 12, tzinfo=UTC), input_tokens=1000)

    response = usage_get(user_client, period="7d", created_from="2026-01-01", created_to="x")

    assert response.context["params"].period == "7d"
    assert response.context["thread_filter"].created_from == NOW.date() - timedelta(days=6)
    assert response.context["totals"]["input_tokens"] is None


def test_usage_reversed_dates_keep_default_period(user_client):
    response = usage_get(user_client, created_from="2026-02-01", created_to="2026-01-01")

    assert response.context["params"].period == "30d"
    assert response.context["thread_filter"].created_to == NOW.date()


def test_usage_invalid_period_reports_error(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=29), input_tokens=10)
    ThreadFactory(session=session, created_at=NOW - timedelta(days=400), input_tokens=1000)

    response = usage_get(user_client, period="forever")
    body = response.content.decode()

    assert response.context["params"].period == "30d"
    assert response.context["totals"]["input_tokens"] == 10
    assert "Period: &#x27;forever&#x27; is invalid. Choose one of 7d, 30d, 90d, all." in body


def test_usage_agent_breakdown_sorted_by_cost(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, agent_id="agent_cheap", agent_name="Cheap", list_cost_amount=5)
    ThreadFactory(session=session, agent_id="agent_dear", agent_name="Dear", list_cost_amount=500)
    ThreadFactory(session=session, agent_id="agent_dear", agent_name="Dear", list_cost_amount=20)

    response = usage_get(user_client)

    rows = response.context["breakdown_rows"]
    assert [row["key"] for row in rows] == ["agent_dear", "agent_cheap"]
    assert rows[0]["list_cost_amount"] == 520
    assert rows[0]["thread_count"] == 2


def test_usage_agent_row_links_to_threads_by_cost(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, agent_id="agent_dear", agent_name="Dear")

    response = usage_get(user_client, period="7d")

    [row] = response.context["breakdown_rows"]
    query = row["thread_list_query"]
    assert "agent=agent_dear" in query
    assert "sort=-cost" in query
    assert "archived=all" in query
    assert "created_from=" in query
    assert reverse("threads:thread-list") + "?" + query.replace("&", "&amp;") in response.content.decode()


def test_usage_two_clicks_to_costliest_agent_threads(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, agent_id="agent_cheap", agent_name="Cheap", list_cost_amount=5)
    ThreadFactory(session=session, agent_id="agent_dear", agent_name="Dear", list_cost_amount=500)

    first_page = usage_get(user_client)
    [seven_days] = [link for link in first_page.context["period_links"] if link["label"] == "Last 7 days"]
    second_page = user_client.get(reverse("threads:usage") + "?" + seven_days["query"])

    top_row = second_page.context["breakdown_rows"][0]
    assert second_page.context["params"].breakdown == "agent"
    assert top_row["key"] == "agent_dear"
    # The thread list parses the same query with the same filter and sort code.
    query = QueryDict(top_row["thread_list_query"])
    thread_filter, _ = thread_filter_from_query(query)
    listed = thread_list_filtered(thread_filter=thread_filter)
    assert [thread.agent_id for thread in listed] == ["agent_dear"]
    assert sort_parse(value=query["sort"], keys=THREAD_SORT_KEYS, default=DEFAULT_SORT).param == "-cost"


def test_usage_advisor_row_links_to_advisor_threads(user_client):
    session = SessionFactory(created_at=NOW)
    primary = ThreadFactory(session=session)
    advisor_fields = {
        "agent_type": "advisor",
        "agent_id": None,
        "agent_name": None,
        "model": "claude-opus-4-8",
    }
    advisors = [
        ThreadFactory(session=session, parent=primary, **advisor_fields),
        # The usage page counts archived threads by default and the thread list does not.
        ThreadFactory(session=session, parent=primary, archived_at=NOW, **advisor_fields),
    ]
    ThreadFactory(session=session, parent=primary, agent_type="inline", agent_id=None, agent_name=None)

    response = usage_get(user_client)
    [advisor_row] = [row for row in response.context["breakdown_rows"] if row["agent_type"] == "advisor"]
    link = reverse("threads:thread-list") + "?" + advisor_row["thread_list_query"]
    listed = user_client.get(link)

    assert advisor_row["thread_count"] == 2
    assert "agent_type=advisor" in advisor_row["thread_list_query"]
    assert '<a href="%s">advisor</a>' % link.replace("&", "&amp;") in response.content.decode()
    assert listed.context["matching"] == advisor_row["thread_count"]
    assert {thread.id for thread in listed.context["page"].rows} == {thread.id for thread in advisors}


def test_usage_keyless_inline_row_has_no_link(user_client):
    # Inline threads with a name have keyed rows, so agent_type=inline would select more than this row.
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, agent_type="inline", agent_id=None, agent_name=None)

    response = usage_get(user_client)

    [row] = response.context["breakdown_rows"]
    assert row["thread_list_query"] is None


def test_usage_agent_type_filter_narrows_totals(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, input_tokens=7)
    ThreadFactory(session=session, agent_type="advisor", agent_id=None, agent_name=None, input_tokens=5)

    response = usage_get(user_client, agent_type="advisor")

    assert response.context["totals"]["thread_count"] == 1
    assert response.context["totals"]["input_tokens"] == 5
    assert '<option value="advisor" selected>' in response.content.decode()


@pytest.mark.parametrize("breakdown", ["agent", "model", "session"])
def test_usage_breakdowns_render(user_client, breakdown):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session)

    response = usage_get(user_client, breakdown=breakdown)

    assert response.status_code == 200
    assert len(response.context["breakdown_rows"]) == 1


def test_usage_cost_chart_switch(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, list_cost_amount=250)

    response = usage_get(user_client, chart="cost")

    chart = response.context["daily_chart"]
    assert [name for name, _, _ in chart["series"]] == ["list_cost_amount"]
    assert b"<svg" in response.content


@pytest.mark.parametrize(
    ("count", "expected"), [(1, "cost unknown for 1 thread<"), (2, "cost unknown for 2 threads<")]
)
def test_usage_cost_chart_unknown_wording(user_client, count, expected):
    session = SessionFactory(created_at=NOW)
    ThreadFactory.create_batch(count, session=session, input_tokens=10, list_cost_amount=None)

    response = usage_get(user_client, chart="cost")

    assert expected in response.content.decode()


def test_usage_hostile_strings_escaped(user_client):
    hostile = '<script>alert("x")</script>'
    session = SessionFactory(created_at=NOW, title=hostile, list_cost_amount=10_000)
    ThreadFactory(
        session=session, agent_id=hostile, agent_name=hostile, model=hostile, list_cost_amount=9_000
    )

    for breakdown in ("agent", "model", "session"):
        response = usage_get(user_client, breakdown=breakdown)
        body = response.content.decode()
        assert hostile not in body, breakdown
        assert "&lt;script&gt;" in body, breakdown


def test_usage_query_count_constant(user_client):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            for breakdown in ("agent", "session"):
                assert usage_get(user_client, breakdown=breakdown).status_code == 200
        return len(queries)

    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session)
    few = count_queries()

    for index in range(20):
        other = SessionFactory(created_at=NOW)
        primary = ThreadFactory(session=other, agent_id="agent_%d" % index, model="model-%d" % index)
        ThreadFactory(session=other, parent=primary, agent_id="agent_child_%d" % index)
    many = count_queries()

    assert few == many
