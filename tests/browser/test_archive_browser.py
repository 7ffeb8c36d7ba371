"""Archive flow in Debian's chromium: select all threads matching a filter, confirm, watch the bar fill.

A real Celery worker archives against the emulator, so the bar reaches 100% through
the htmx polling fragment, which stops when the server returns 286.
"""

import re

import pytest
from django.contrib.auth.models import Permission, User

from tests.threads.archive_helpers import snapshots_seed

pytestmark = [pytest.mark.browser, pytest.mark.worker]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FILTER_QUERY = "?status=idle&kind=child"


@pytest.fixture
def archive_data(celery_worker_factory):
    """Seed snapshots, a user allowed to archive, and a worker, before Playwright's event loop starts."""
    snapshots_seed()
    user = User.objects.create_user("archiver", password="pw-archiver-123")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="threads", codename="archive_thread")
    )
    celery_worker_factory(concurrency=4, extra_env={"ARCHIVE_MAX_ATTEMPTS": "3"})


@pytest.fixture
def page(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
        )
        browser_page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield browser_page
        browser.close()


def test_archive_all_matching_reaches_full_bar(archive_data, live_server, page):
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "archiver")
    page.fill("#id_password", "pw-archiver-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")

    page.goto(live_server.url + "/threads/" + FILTER_QUERY)
    page.click("button[name=scope][value=filter]")
    page.wait_for_url("**/archive/confirm/")
    planned = int(page.locator("[data-testid=planned-count]").inner_text())
    page.screenshot(path="/tmp/archive-flow-confirm.png", full_page=True)
    assert planned > 0

    page.click("button[name=confirm]")
    page.wait_for_url(re.compile(r".*/archive/jobs/\d+/$"))
    page.wait_for_selector("[data-testid=progress-percent]:has-text('100%')", timeout=120_000)
    page.screenshot(path="/tmp/archive-flow-done.png", full_page=True)

    assert page.locator("#archive-progress").get_attribute("data-job-status") == "finished"
    assert page.locator("#archive-progress").get_attribute("hx-trigger") is None
    assert page.locator("[data-testid=count-queued]").inner_text().startswith("0")
    assert page.locator("[data-testid=count-failed]").inner_text() == "0"
