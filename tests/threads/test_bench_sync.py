"""The `bench_sync` command at a tiny size: what it prints, and the empty database it leaves."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from threads.client import reset_api_clients
from threads.models import Session, Thread, UsageDailyRollup, UsageSessionDayRollup
from threads.rate_limit import reset_rate_limiter

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bench_output(settings):
    settings.SYNC_CONCURRENCY = 2
    settings.ANTHROPIC_RATE_LIMIT_PER_SECOND = 10_000
    settings.ANTHROPIC_RATE_LIMIT_BURST = 1_000
    output = StringIO()
    call_command("bench_sync", sessions=4, children=3, latency_ms=1, no_tracemalloc=True, stdout=output)
    yield output.getvalue()

    # The command pointed the cached client and limiter at its own emulator, now stopped.
    reset_api_clients()
    reset_rate_limiter()


def test_bench_sync_counts_sessions_and_threads(bench_output):
    full = bench_output.split("\nFull sync", 1)[1]

    assert re.search(r"records: 20 seen, 20 created", full)


def test_bench_sync_reports_peak_memory(bench_output):
    assert len(re.findall(r"ru_maxrss [\d.]+ MiB", bench_output)) == 2


def test_bench_sync_leaves_no_threads(bench_output):
    assert not Thread.objects.exists()


def test_bench_sync_leaves_no_sessions(bench_output):
    assert not Session.objects.exists()


def test_bench_sync_leaves_no_rollups(bench_output):
    assert not UsageDailyRollup.objects.exists()


def test_bench_sync_leaves_no_session_rollups(bench_output):
    assert not UsageSessionDayRollup.objects.exists()


def test_bench_sync_reports_process_cpu(bench_output):
    assert len(re.findall(r"process CPU [\d.]+ s, \d+% of one core", bench_output)) == 2
