"""Log lines carry `extra=` fields and never the API key."""

import logging
import sys
from types import SimpleNamespace

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from dashboard.logging import KeyValueFormatter, PermissionDeniedFilter, RedactSecretsFilter

API_KEY = "sk-ant-test-0123456789-secret"


def make_record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("threads.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_key_value_formatter_appends_extra_fields():
    record = make_record("archive job started", archive_job_id=12, thread_id="sthr_1")

    line = KeyValueFormatter().format(record)

    assert line.endswith("archive job started archive_job_id=12 thread_id=sthr_1")


def test_key_value_formatter_quotes_values_with_spaces():
    record = make_record("sync failed", error='read timed "out"')

    line = KeyValueFormatter().format(record)

    assert line.endswith('error="read timed \\"out\\""')


def test_redact_filter_removes_key_from_message(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    record = make_record("request failed with key %s", API_KEY)

    RedactSecretsFilter().filter(record)

    assert API_KEY not in record.getMessage()


def test_redact_filter_removes_key_from_extra_fields(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    record = make_record("request failed", error="Bearer " + API_KEY)

    RedactSecretsFilter().filter(record)

    assert record.error == "Bearer [redacted]"


def test_permission_denied_filter_keeps_other_tracebacks():
    try:
        raise ValueError("boom")
    except ValueError:
        record = make_record("Internal Server Error: /", status_code=500)
        record.exc_info = sys.exc_info()

    PermissionDeniedFilter().filter(record)

    assert record.exc_info is not None
    assert not hasattr(record, "user_id")


def test_permission_denied_filter_drops_traceback():
    try:
        raise PermissionDenied
    except PermissionDenied:
        record = make_record(
            "Forbidden (Permission denied): /archive/",
            status_code=403,
            request=SimpleNamespace(user=AnonymousUser()),
        )
        record.exc_info = sys.exc_info()

    PermissionDeniedFilter().filter(record)

    assert record.exc_info is None
    assert record.user_id is None
