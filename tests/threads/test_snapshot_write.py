"""The batched snapshot upsert, on both database paths (VALUES on PostgreSQL, bulk_create on SQLite)."""

import copy
import json
from pathlib import Path

import pytest
from django.utils import timezone

from threads.models import Session, Thread
from threads.services.snapshot_parse import session_record_parse, thread_record_parse
from threads.services.snapshot_write import snapshot_batch_write, snapshot_candidate

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "api"
# Quotes, backslashes, a percent sign, a placeholder look-alike and non-ASCII text:
# each one is special somewhere in SQL or in a driver's parameter syntax.
AWKWARD_TEXT = "O'Brien \"quoted\" back\\slash 100% %s %(name)s ü 你好 </script>"


def _record(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _write(model, records: list[dict]):
    parse = session_record_parse if model is Session else thread_record_parse
    candidates = [snapshot_candidate(parse(record=record)) for record in records]
    return snapshot_batch_write(model=model, candidates=candidates, fetched_at=timezone.now())


def _threads(count: int) -> list[dict]:
    records = []
    for number in range(count):
        record = copy.deepcopy(_record("thread_child.json"))
        record["id"] = "sthr_write%03d" % number
        record["agent"]["name"] = AWKWARD_TEXT
        records.append(record)
    return records


def test_batch_write_awkward_text_intact():
    records = _threads(3)

    _write(Thread, records)

    stored = Thread.objects.get(pk="sthr_write001")
    assert stored.agent_name == AWKWARD_TEXT


def test_batch_write_raw_equals_record():
    records = _threads(3)

    _write(Thread, records)

    assert Thread.objects.get(pk="sthr_write002").raw == records[2]


def test_batch_write_counts_created():
    counts = _write(Thread, _threads(25))

    assert counts.created == 25


def test_batch_write_updates_changed_row():
    records = _threads(2)
    _write(Thread, records)
    records[1]["status"] = "terminated"

    counts = _write(Thread, records)

    assert (counts.updated, Thread.objects.get(pk="sthr_write001").status) == (1, "terminated")


def test_batch_write_default_for_unwritten_column():
    _write(Session, [_record("session.json")])

    assert Session.objects.get().thread_count == 0


def test_batch_write_clears_gone_at():
    records = _threads(1)
    _write(Thread, records)
    Thread.objects.update(gone_at=timezone.now())

    _write(Thread, records)

    assert Thread.objects.get().gone_at is None
