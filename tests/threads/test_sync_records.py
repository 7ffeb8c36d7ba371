"""What a sync stores from the emulator's hostile strings and odd records."""

import json
import urllib.request

import pytest

from tests.threads.sync_support import sync_settings  # noqa: F401
from threads.models import Session, SyncRunStatus, Thread
from threads.services.snapshot_parse import snapshot_sha256
from threads.services.sync import sync_full

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sync_settings")]

HOSTILE_TITLES = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)> title',
)


def _api_get(emulator, path: str):
    request = urllib.request.Request(
        emulator.base_url + path,
        headers={
            "x-api-key": emulator.api_key,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "managed-agents-2026-04-01",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_sync_raw_is_record_as_received(emulator):
    sync_full()
    session = Session.objects.exclude(threads__isnull=True).first()

    upstream = _api_get(emulator, "/v1/sessions/%s" % session.id)

    assert session.raw == upstream
    assert session.raw_sha256 == snapshot_sha256(upstream)


def test_sync_hostile_titles_stored_intact(emulator):
    sync_full()

    titles = set(Session.objects.values_list("title", flat=True))
    for title in HOSTILE_TITLES:
        assert title in titles


def test_sync_long_title_stored_whole(emulator):
    sync_full()

    longest = max(Session.objects.exclude(title=None), key=lambda s: len(s.title))
    assert len(longest.title) == 10_240
    assert longest.raw["title"] == longest.title


def test_sync_unicode_metadata_searchable(emulator):
    sync_full()

    session = Session.objects.filter(metadata__has_key="note").exclude(search_text="").first()
    assert session.metadata["note"].lower() in session.search_text


def test_sync_odd_records_flagged(emulator_factory, settings):
    odd = emulator_factory("--sessions", "6", "--odd-records", "2")
    settings.ANTHROPIC_BASE_URL = odd.base_url

    run = sync_full()

    flagged = Thread.objects.exclude(parse_error="")
    assert run.status == SyncRunStatus.SUCCEEDED
    assert flagged.count() == 6
    assert Thread.objects.count() == len(odd.state_threads())


def test_sync_odd_unknown_status_kept(emulator_factory, settings):
    odd = emulator_factory("--sessions", "3", "--odd-records", "1")
    settings.ANTHROPIC_BASE_URL = odd.base_url

    sync_full()

    thread = Thread.objects.get(status="paused_for_review")
    assert "status" in thread.parse_error


def test_sync_odd_unknown_agent_type_kept(emulator_factory, settings):
    odd = emulator_factory("--sessions", "3", "--odd-records", "1")
    settings.ANTHROPIC_BASE_URL = odd.base_url

    sync_full()

    thread = Thread.objects.get(agent_type="scripted_agent")
    assert thread.parse_error.startswith("agent.type 'scripted_agent' is not a known variant")
    assert thread.agent_name == "Legacy scripted agent"


def test_sync_odd_missing_created_at_kept(emulator_factory, settings):
    odd = emulator_factory("--sessions", "3", "--odd-records", "1")
    settings.ANTHROPIC_BASE_URL = odd.base_url

    sync_full()

    thread = Thread.objects.get(created_at__isnull=True)
    assert thread.parse_error == "created_at: Field required"
