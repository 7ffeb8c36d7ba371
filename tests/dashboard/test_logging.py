"""Log lines carry `extra=` fields and never the API key."""

import logging

from dashboard.logging import KeyValueFormatter, RedactSecretsFilter

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
