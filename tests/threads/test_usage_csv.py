"""CSV exports of the usage page: headers, rows, unknowns, escaping and formula guard."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from tests.factories import SessionFactory, ThreadFactory
from threads.views.usage import CSV_HEADERS, csv_text

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
UNKNOWN_USAGE = {
    "input_tokens": None,
    "output_tokens": None,
    "cache_read_input_tokens": None,
    "cache_creation_5m_input_tokens": None,
    "cache_creation_1h_input_tokens": None,
    "list_cost_amount": None,
    "list_cost_currency": None,
    "active_seconds": None,
}


@pytest.fixture
def user_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="viewer", password="secret-password")
    client.force_login(user)
    return client


def csv_get(client, breakdown: str, **params):
    response = client.get(reverse("threads:usage"), {"format": "csv", "breakdown": breakdown, **params})
    text = b"".join(response.streaming_content).decode("utf-8")
    return response, list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("breakdown", sorted(CSV_HEADERS))
def test_usage_csv_header_and_attachment(user_client, breakdown):
    response, rows = csv_get(user_client, breakdown)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-%s-' % breakdown)
    assert rows[0] == CSV_HEADERS[breakdown]


def test_usage_csv_unknown_breakdown_rejected(user_client):
    response = user_client.get(reverse("threads:usage"), {"format": "csv", "breakdown": "nope"})

    assert response.status_code == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"created_from": "x"}, "- Created on or after: Enter a valid date."),
        ({"created_from": "2026-02-01", "created_to": "2026-01-01"}, "- The start date must not be after"),
        ({"period": "forever"}, "- Period: 'forever' is invalid."),
        ({"status": "bogus"}, "- Status: Select a valid choice."),
    ],
)
def test_usage_csv_invalid_filter_rejected(user_client, params, message):
    ThreadFactory(session=SessionFactory(created_at=NOW), input_tokens=10)

    response = user_client.get(reverse("threads:usage"), {"format": "csv", "breakdown": "daily", **params})
    text = response.content.decode()

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert message in text


def test_usage_csv_agent_rows(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(
        session=session,
        agent_id="agent_a",
        agent_name="Writer",
        input_tokens=1234567,
        output_tokens=10,
        cache_read_input_tokens=20,
        cache_creation_5m_input_tokens=30,
        cache_creation_1h_input_tokens=40,
        list_cost_amount=123456,
        active_seconds=12.5,
    )
    ThreadFactory(session=session, agent_id="agent_a", agent_name="Writer", **UNKNOWN_USAGE)

    _, rows = csv_get(user_client, "agent")

    [row] = [dict(zip(rows[0], values, strict=True)) for values in rows[1:]]
    assert row["agent_key"] == "agent_a"
    assert row["agent_name"] == "Writer"
    assert row["thread_count"] == "2"
    assert row["threads_without_usage"] == "1"
    assert row["threads_cost_unknown"] == "1"
    assert row["input_tokens"] == "1234567"
    assert row["total_tokens"] == str(1234567 + 10 + 20 + 30 + 40)
    assert row["list_cost_usd"] == "1234.56"
    assert row["list_cost_minor_units"] == "123456"
    assert row["active_seconds"] == "12.500"


def test_usage_csv_unknown_is_empty(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, model="claude-haiku-4-5", **UNKNOWN_USAGE)

    _, rows = csv_get(user_client, "model")

    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["input_tokens"] == ""
    assert row["total_tokens"] == ""
    assert row["list_cost_usd"] == ""
    assert row["list_cost_minor_units"] == ""
    assert row["threads_without_usage"] == "1"


def test_usage_csv_cost_two_decimals(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, list_cost_amount=5)

    _, rows = csv_get(user_client, "daily")

    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["date"] == NOW.date().isoformat()
    assert row["list_cost_usd"] == "0.05"
    assert row["list_cost_minor_units"] == "5"


def test_usage_csv_active_seconds_three_decimals(user_client):
    # 0.1 + 0.2 is 0.30000000000000004 in binary floating point.
    session = SessionFactory(created_at=NOW, active_seconds=0.1 + 0.2)
    ThreadFactory(session=session, model="m", active_seconds=0.1)
    ThreadFactory(session=session, model="m", active_seconds=0.2)

    _, model_rows = csv_get(user_client, "model")
    _, session_rows = csv_get(user_client, "session")
    _, thread_rows = csv_get(user_client, "top_threads")

    model_row = dict(zip(model_rows[0], model_rows[1], strict=True))
    session_row = dict(zip(session_rows[0], session_rows[1], strict=True))
    thread_cells = sorted(
        dict(zip(thread_rows[0], values, strict=True))["active_seconds"] for values in thread_rows[1:]
    )
    assert model_row["active_seconds"] == "0.300"
    assert session_row["session_active_seconds"] == "0.300"
    assert thread_cells[0] == "0.100"
    assert thread_cells[-1] == "0.200"


def test_usage_csv_active_seconds_unknown_is_empty(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, model="m", active_seconds=None)

    _, rows = csv_get(user_client, "model")

    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["active_seconds"] == ""


def test_usage_csv_session_rows_carry_both_figures(user_client):
    session = SessionFactory(created_at=NOW, title="Nightly", list_cost_amount=1010, active_seconds=99.0)
    ThreadFactory(session=session, list_cost_amount=333)
    ThreadFactory(session=session, list_cost_amount=667)

    _, rows = csv_get(user_client, "session")

    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["session_id"] == session.id
    assert row["session_title"] == "Nightly"
    assert row["list_cost_minor_units"] == "1000"
    assert row["session_list_cost_usd"] == "10.10"
    assert row["session_list_cost_minor_units"] == "1010"
    assert row["all_threads_list_cost_usd"] == "10.00"
    assert row["all_threads_count"] == "2"


def test_usage_csv_top_threads_ranked(user_client):
    session = SessionFactory(created_at=NOW)
    cheap = ThreadFactory(session=session, list_cost_amount=1, input_tokens=9000)
    dear = ThreadFactory(session=session, list_cost_amount=900, input_tokens=10)

    _, rows = csv_get(user_client, "top_threads")

    records = [dict(zip(rows[0], values, strict=True)) for values in rows[1:]]
    by_tokens = [record["thread_id"] for record in records if record["rank_by"] == "tokens"]
    by_cost = [record["thread_id"] for record in records if record["rank_by"] == "cost"]
    assert by_tokens == [cheap.id, dear.id]
    assert by_cost == [dear.id, cheap.id]


def test_usage_csv_top_sessions_ranked(user_client):
    small = SessionFactory(created_at=NOW, list_cost_amount=5)
    large = SessionFactory(created_at=NOW, list_cost_amount=5000)
    ThreadFactory(session=small)
    ThreadFactory(session=large)

    _, rows = csv_get(user_client, "top_sessions")

    records = [dict(zip(rows[0], values, strict=True)) for values in rows[1:]]
    by_cost = [record["session_id"] for record in records if record["rank_by"] == "cost"]
    assert by_cost == [large.id, small.id]


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_usage_csv_formula_injection_guarded(user_client, prefix):
    hostile = prefix + 'HYPERLINK("http://example.invalid","x")'
    session = SessionFactory(created_at=NOW, title=hostile)
    ThreadFactory(session=session, agent_id=hostile, agent_name=hostile, model=hostile)

    _, agent_rows = csv_get(user_client, "agent")
    _, model_rows = csv_get(user_client, "model")
    _, session_rows = csv_get(user_client, "session")

    agent = dict(zip(agent_rows[0], agent_rows[1], strict=True))
    assert agent["agent_key"] == "'" + hostile
    assert agent["agent_name"] == "'" + hostile
    assert dict(zip(model_rows[0], model_rows[1], strict=True))["model"] == "'" + hostile
    assert dict(zip(session_rows[0], session_rows[1], strict=True))["session_title"] == "'" + hostile


def test_usage_csv_quotes_commas_and_newlines(user_client):
    awkward = 'Report, "weekly"\nsecond line'
    session = SessionFactory(created_at=NOW, title=awkward)
    ThreadFactory(session=session)

    _, rows = csv_get(user_client, "session")

    assert rows[1][1] == awkward


def test_csv_text_leaves_plain_text():
    assert csv_text("claude-opus-4-5") == "claude-opus-4-5"
    assert csv_text(None) == ""
    assert csv_text("\t=cmd") == "'\t=cmd"


def test_usage_csv_follows_filter(user_client):
    session = SessionFactory(created_at=NOW)
    ThreadFactory(session=session, model="claude-opus-4-5")
    ThreadFactory(session=session, model="claude-haiku-4-5")

    _, rows = csv_get(user_client, "model", model="claude-haiku-4-5")

    assert [row[0] for row in rows[1:]] == ["claude-haiku-4-5"]
