"""Parsing API records into snapshot columns, and writing them, whatever the records hold.

Generated records come from the SDK's own pydantic models (polyfactory, seeded by
hypothesis) dumped to JSON; hostile ones are written by hand or mutated by hypothesis.
Each goes through the same parse and upsert path as a sync.
"""

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from anthropic.types.beta import BetaManagedAgentsSession
from anthropic.types.beta.sessions import BetaManagedAgentsSessionThread
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polyfactory.factories.pydantic_factory import ModelFactory, T

from threads.models import Session, Thread
from threads.services.snapshot_parse import (
    MAX_PARSE_ERROR_LENGTH,
    session_record_parse,
    snapshot_sha256,
    thread_record_parse,
)
from threads.services.snapshot_write import snapshot_batch_write, snapshot_candidate

# API responses checked against the SDK 2.10.0 models, copied from the API reference.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "api"
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class JsonModelFactory(ModelFactory[T]):
    """A factory whose free-form `object` fields (tool input schemas) get JSON values."""

    __is_base_factory__ = True

    @classmethod
    def get_provider_map(cls):
        return {**super().get_provider_map(), object: lambda: "value"}


class ThreadModelFactory(JsonModelFactory[BetaManagedAgentsSessionThread]):
    __model__ = BetaManagedAgentsSessionThread


class SessionModelFactory(JsonModelFactory[BetaManagedAgentsSession]):
    __model__ = BetaManagedAgentsSession


def _thread_record(seed: int) -> dict:
    ThreadModelFactory.seed_random(seed)
    record = ThreadModelFactory.build().model_dump(mode="json")
    record["id"] = "sthr_gen%d" % seed
    return record


def _session_record(seed: int) -> dict:
    SessionModelFactory.seed_random(seed)
    record = SessionModelFactory.build().model_dump(mode="json")
    record["id"] = "sesn_gen%d" % seed
    return record


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _write(model, *snapshots):
    candidates = [snapshot_candidate(snapshot) for snapshot in snapshots]
    return snapshot_batch_write(model=model, candidates=candidates, fetched_at=timezone.now())


def _write_thread(record: dict, session_id: str = "sesn_x"):
    snapshot = thread_record_parse(record=record, session_id=session_id)
    _write(Thread, snapshot)
    return snapshot


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
THREAD_KEYS = st.sampled_from(
    [
        "status",
        "created_at",
        "updated_at",
        "archived_at",
        "agent",
        "usage",
        "stats",
        "parent_thread_id",
        "workflow_run_id",
        "session_id",
        "type",
    ]
)


# Records generated from the SDK models


@HYPOTHESIS
@given(seed=st.integers(min_value=0, max_value=10**9))
def test_thread_parse_generated_columns_match_model(seed):
    record = _thread_record(seed)
    model = BetaManagedAgentsSessionThread.model_validate(record)

    snapshot = thread_record_parse(record=record, session_id=record["session_id"])

    values = snapshot.values
    assert snapshot.id == record["id"]
    assert values["status"] == model.status
    assert values["is_primary"] == (model.parent_thread_id is None)
    assert values["agent_type"] == model.agent.type
    assert values["created_at"] == model.created_at.replace(tzinfo=UTC)
    assert values["input_tokens"] == (model.usage.input_tokens if model.usage else None)
    assert values["raw"] == record


@HYPOTHESIS
@given(seed=st.integers(min_value=0, max_value=10**9))
def test_session_parse_generated_columns_match_model(seed):
    record = _session_record(seed)
    model = BetaManagedAgentsSession.model_validate(record)

    snapshot = session_record_parse(record=record)

    values = snapshot.values
    assert values["status"] == model.status
    assert values["title"] == model.title
    assert values["metadata"] == model.metadata
    assert values["agent_name"] == model.agent.name[:512]
    assert values["output_tokens"] == model.usage.output_tokens


@pytest.mark.django_db
@HYPOTHESIS
@given(seed=st.integers(min_value=0, max_value=10**9))
def test_thread_write_generated_then_unchanged(seed):
    record = _thread_record(seed)
    now = timezone.now()
    snapshot = thread_record_parse(record=record, session_id=record["session_id"])
    snapshot_batch_write(model=Thread, candidates=[snapshot_candidate(snapshot)], fetched_at=now)

    again = snapshot_batch_write(
        model=Thread,
        candidates=[snapshot_candidate(thread_record_parse(record=record, session_id=record["session_id"]))],
        fetched_at=now,
    )

    assert again.unchanged == 1
    assert Thread.objects.get(id=record["id"]).raw == record


@pytest.mark.django_db
@HYPOTHESIS
@given(seed=st.integers(min_value=0, max_value=10**9))
def test_session_write_generated_record(seed):
    record = _session_record(seed)

    snapshot = session_record_parse(record=record)
    counts = _write(Session, snapshot)

    assert counts.created + counts.updated == 1
    assert Session.objects.get(id=record["id"]).raw_sha256 == snapshot_sha256(record)


@pytest.mark.django_db
@HYPOTHESIS
@given(key=THREAD_KEYS, value=JSON_VALUES)
def test_thread_write_mutated_record_stored(key, value):
    record = _fixture("thread_child.json")
    record[key] = value

    snapshot = _write_thread(record)

    stored = Thread.objects.get(id=record["id"])
    assert stored.raw_sha256 == snapshot_sha256(record)
    assert "\n" not in snapshot.parse_error
    assert len(snapshot.parse_error) <= MAX_PARSE_ERROR_LENGTH


# Fixtures from the API reference


@pytest.mark.parametrize(
    "name",
    [
        "thread_primary.json",
        "thread_child.json",
        "thread_child_archived.json",
        "thread_child_usage_null.json",
        "thread_advisor.json",
        "thread_inline_workflow_run.json",
    ],
)
def test_thread_parse_fixture_has_no_error(name):
    snapshot = thread_record_parse(record=_fixture(name))

    assert snapshot.parse_error == ""


def test_session_parse_fixture_has_no_error():
    snapshot = session_record_parse(record=_fixture("session.json"))

    assert snapshot.parse_error == ""


def test_thread_parse_child_usage_columns():
    values = thread_record_parse(record=_fixture("thread_child.json")).values

    assert values["input_tokens"] == 14020
    assert values["output_tokens"] == 2610
    assert values["cache_read_input_tokens"] == 40112
    assert values["cache_creation_5m_input_tokens"] == 4100
    assert values["cache_creation_1h_input_tokens"] == 0
    assert values["web_fetch_requests"] == 3
    assert values["web_search_requests"] == 7
    assert values["list_cost_amount"] == 38
    assert values["list_cost_currency"] == "USD"
    assert values["active_seconds"] == 96.3
    assert values["duration_seconds"] == 215.117
    assert values["startup_seconds"] == 0.0
    assert values["agent_id"] == "agent_011FAKE000000000RESEARCH"
    assert values["agent_version"] == 2
    assert values["model"] == "claude-haiku-4-5"
    assert values["is_primary"] is False


def test_thread_parse_usage_null_keeps_nulls():
    values = thread_record_parse(record=_fixture("thread_child_usage_null.json")).values

    assert values["input_tokens"] is None
    assert values["list_cost_amount"] is None
    assert values["web_search_requests"] is None


def test_thread_parse_advisor_model_and_name():
    values = thread_record_parse(record=_fixture("thread_advisor.json")).values

    assert values["agent_type"] == "advisor"
    assert values["model"] == "claude-opus-4-8"
    assert values["agent_name"] is None


def test_thread_parse_primary_flag():
    values = thread_record_parse(record=_fixture("thread_primary.json")).values

    assert values["is_primary"] is True
    assert values["parent_id"] is None


def test_session_parse_search_text():
    record = _fixture("session.json")
    record["metadata"] = {"Team": "Platform"}

    values = session_record_parse(record=record).values

    assert values["search_text"] == (
        "demo: quarterly report research sesn_011fake000000000000demo1 team platform"
    )


# Hand-written hostile records


def test_thread_parse_missing_fields_stored():
    snapshot = thread_record_parse(record={"id": "sthr_bare"}, session_id="sesn_x")

    assert snapshot.id == "sthr_bare"
    assert snapshot.values["status"] == ""
    assert "agent: Field required" in snapshot.parse_error
    assert snapshot.values["session_id"] == "sesn_x"


def test_thread_parse_null_everywhere():
    record = {key: None for key in _fixture("thread_child.json")}
    record["id"] = "sthr_nulls"

    snapshot = thread_record_parse(record=record, session_id="sesn_x")

    assert snapshot.values["created_at"] is None
    assert snapshot.values["input_tokens"] is None
    assert snapshot.parse_error != ""


def test_thread_parse_wrong_types():
    record = _fixture("thread_child.json")
    record.update(status=5, created_at=12345, usage="lots", stats=[], agent=["x"])

    snapshot = thread_record_parse(record=record)

    assert snapshot.values["status"] == ""
    assert snapshot.values["created_at"] is None
    assert snapshot.values["input_tokens"] is None
    assert snapshot.values["agent_type"] == ""
    assert "created_at is not an RFC 3339 string" in snapshot.parse_error


def test_thread_parse_unknown_status():
    record = _fixture("thread_child.json")
    record["status"] = "paused"

    snapshot = thread_record_parse(record=record)

    assert snapshot.values["status"] == "paused"
    assert snapshot.parse_error.startswith("status: Input should be")
    assert "(got 'paused')" in snapshot.parse_error


def test_thread_parse_unknown_agent_variant_one_message():
    record = _fixture("thread_child.json")
    record["agent"] = {"type": "robot", "name": "R2"}

    snapshot = thread_record_parse(record=record)

    assert snapshot.parse_error == ("agent.type 'robot' is not a known variant (agent, advisor, inline)")
    assert snapshot.values["agent_name"] == "R2"


def test_thread_parse_bad_timestamp():
    record = _fixture("thread_child.json")
    record["updated_at"] = "yesterday"

    snapshot = thread_record_parse(record=record)

    assert snapshot.values["updated_at"] is None
    assert snapshot.parse_error == "updated_at is not an RFC 3339 time: 'yesterday'"


def test_thread_parse_naive_timestamp_read_as_utc():
    record = _fixture("thread_child.json")
    record["created_at"] = "2026-03-15T10:00:00"

    snapshot = thread_record_parse(record=record)

    assert snapshot.values["created_at"] == datetime(2026, 3, 15, 10, tzinfo=UTC)
    assert "created_at has no time zone" in snapshot.parse_error


def test_thread_parse_offset_timestamp_converted_to_utc():
    record = _fixture("thread_child.json")
    record["created_at"] = "2026-03-15T12:00:00+02:00"

    created_at = thread_record_parse(record=record).values["created_at"]

    assert created_at == datetime(2026, 3, 15, 10, tzinfo=UTC)
    assert created_at.utcoffset() == timedelta(0)


def test_thread_parse_list_cost_not_whole_number():
    record = _fixture("thread_child.json")
    record["usage"]["list_cost"]["amount"] = "12.5"

    snapshot = thread_record_parse(record=record)

    assert snapshot.values["list_cost_amount"] is None
    assert "usage.list_cost.amount is not a whole number" in snapshot.parse_error


def test_thread_parse_token_overflow():
    record = _fixture("thread_child.json")
    record["usage"]["input_tokens"] = 2**70

    snapshot = thread_record_parse(record=record)

    assert snapshot.values["input_tokens"] is None
    assert "usage.input_tokens is out of range" in snapshot.parse_error


def test_thread_parse_session_id_mismatch():
    snapshot = thread_record_parse(record=_fixture("thread_child.json"), session_id="sesn_other")

    assert snapshot.values["session_id"] == "sesn_other"
    assert "differs from the listed session" in snapshot.parse_error


@pytest.mark.parametrize(
    "record",
    [
        {"status": "idle"},
        {"id": None},
        {"id": 42},
        {"id": ""},
        {"id": "sthr_" + "x" * 200},
        {"id": "sthr_\x00"},
        ["not", "an", "object"],
        "a string",
    ],
)
def test_thread_parse_no_usable_id(record):
    snapshot = thread_record_parse(record=record)

    assert snapshot.id is None
    assert snapshot.parse_error != ""


def test_parse_error_is_one_bounded_line():
    record = {"id": "sthr_many", "status": "x\ny", "agent": {"type": "agent"}}

    snapshot = thread_record_parse(record=record)

    assert "\n" not in snapshot.parse_error
    assert snapshot.parse_error.endswith("more")
    assert len(snapshot.parse_error) <= MAX_PARSE_ERROR_LENGTH


@pytest.mark.django_db
def test_thread_write_100kb_strings():
    record = _fixture("thread_child.json")
    record["agent"]["name"] = "n" * 100_000
    record["agent"]["system"] = "s" * 100_000

    snapshot = _write_thread(record)

    stored = Thread.objects.get(id=record["id"])
    assert stored.agent_name == "n" * 512
    assert stored.raw["agent"]["name"] == "n" * 100_000
    assert "agent.name is 100000 characters long" in snapshot.parse_error


@pytest.mark.django_db
def test_session_write_100kb_title_whole():
    record = _fixture("session.json")
    record["title"] = "t" * 100_000

    snapshot = session_record_parse(record=record)
    _write(Session, snapshot)

    assert Session.objects.get(id=record["id"]).title == "t" * 100_000


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["nul\x00byte", "lone\ud800surrogate", "lone\udc00low surrogate"])
def test_session_write_unstorable_characters(bad):
    record = _fixture("session.json")
    record["title"] = bad
    record["metadata"] = {"note": bad}

    snapshot = session_record_parse(record=record)
    _write(Session, snapshot)

    stored = Session.objects.get(id=record["id"])
    replaced = bad.replace("\x00", "\ufffd").replace("\ud800", "\ufffd").replace("\udc00", "\ufffd")
    assert stored.title == replaced
    assert stored.raw["title"] == replaced
    assert stored.metadata == {"note": replaced}
    assert stored.raw_sha256 == snapshot_sha256(record)
    assert "U+FFFD" in snapshot.parse_error


@pytest.mark.parametrize("title", ["emoji \U0001f600 pair", "hangul \ud55c syllable"])
def test_session_parse_non_ascii_title_no_error(title):
    record = _fixture("session.json")
    record["title"] = title

    snapshot = session_record_parse(record=record)

    assert snapshot.parse_error == ""


@pytest.mark.django_db
@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_thread_write_non_finite_number(number):
    record = _fixture("thread_child.json")
    record["stats"]["duration_seconds"] = number

    snapshot = _write_thread(record)

    stored = Thread.objects.get(id=record["id"])
    assert stored.raw["stats"]["duration_seconds"] is None
    assert stored.duration_seconds is None
    assert stored.raw_sha256 == snapshot_sha256(record)
    assert "NaN or Infinity (stored as null)" in snapshot.parse_error


@pytest.mark.django_db
def test_thread_write_hostile_html_intact():
    record = _fixture("thread_child.json")
    record["agent"]["name"] = '"><img src=x onerror=alert(1)>'

    _write_thread(record)

    assert Thread.objects.get(id=record["id"]).agent_name == '"><img src=x onerror=alert(1)>'


# Batched writes


@pytest.mark.django_db
def test_batch_write_counts_created_updated_unchanged():
    first = _fixture("thread_child.json")
    second = _fixture("thread_advisor.json")
    _write(Thread, thread_record_parse(record=first))
    changed = copy.deepcopy(first)
    changed["status"] = "running"

    counts = _write(Thread, thread_record_parse(record=changed), thread_record_parse(record=second))

    assert counts.created == 1
    assert counts.updated == 1
    assert counts.unchanged == 0


@pytest.mark.django_db
def test_batch_write_repeated_id_keeps_last():
    first = _fixture("thread_child.json")
    changed = copy.deepcopy(first)
    changed["status"] = "running"

    counts = _write(Thread, thread_record_parse(record=first), thread_record_parse(record=changed))

    assert counts.created == 1
    assert counts.unchanged == 1
    assert Thread.objects.get(id=first["id"]).status == "running"


@pytest.mark.django_db
def test_batch_write_clears_gone_at():
    record = _fixture("thread_child.json")
    _write_thread(record)
    Thread.objects.filter(id=record["id"]).update(gone_at=timezone.now())

    counts = _write(Thread, thread_record_parse(record=record))

    assert counts.updated == 1
    assert Thread.objects.get(id=record["id"]).gone_at is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_batch_write_concurrent_upserts_same_ids():
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    records = []
    for index in range(50):
        record = _fixture("thread_child.json")
        record["id"] = "sthr_race%02d" % index
        records.append(record)

    def write(_):
        try:
            candidates = [snapshot_candidate(thread_record_parse(record=r)) for r in records]
            return snapshot_batch_write(model=Thread, candidates=candidates, fetched_at=timezone.now())
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(write, range(12)))

    assert Thread.objects.filter(id__startswith="sthr_race").count() == 50
    assert sum(r.created + r.updated + r.unchanged for r in results) == 600
