"""Browse flow in Debian's chromium: log in, filter, open a session, follow the tree, refresh.

The refresh step checks the queued state and the polling fragment, not a finished
refresh: a real worker would also need the emulator and makes this test much slower;
the 286 stop is covered in tests/threads/test_views_browse.py.
"""

import pytest
from django.contrib.auth.models import User

from tests.factories import SessionFactory, ThreadFactory

pytestmark = [pytest.mark.browser, pytest.mark.redis]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browse_data(transactional_db):
    """Create the rows first: Django refuses database calls inside Playwright's event loop."""
    User.objects.create_user("operator", password="pw-operator-123")
    session = SessionFactory(title="Quarterly research", status="running")
    SessionFactory(title="Idle session", status="idle")
    primary = ThreadFactory(session=session, agent_name="Research lead")
    child = ThreadFactory(session=session, parent=primary, agent_name="Web researcher")
    return child


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


def test_browse_flow(browse_data, redis_url, live_server, page):
    child = browse_data

    page.goto(live_server.url + "/")
    assert "/login/" in page.url
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw-operator-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    page.screenshot(path="/tmp/browse-flow-sessions.png")

    page.check("input[name=status][value=running]")
    page.wait_for_url("**/?*status=running*")
    page.wait_for_selector("text=Idle session", state="detached")
    assert page.locator("text=Quarterly research").count() == 1
    page.screenshot(path="/tmp/browse-flow-filtered.png")

    page.click("text=Quarterly research")
    page.wait_for_selector("h2:has-text('Threads')")
    page.screenshot(path="/tmp/browse-flow-session.png", full_page=True)

    page.click(".tree-cell a:has-text('Web researcher')")
    page.wait_for_url("**/threads/%s/" % child.id)
    assert page.locator("text=Research lead").count() >= 1
    page.click("#snapshot-age button:has-text('Refresh')")
    page.wait_for_selector("#snapshot-age[data-refresh-state=pending]")
    assert page.locator("#snapshot-age").get_attribute("hx-trigger") == "every 1s"
    page.screenshot(path="/tmp/browse-flow-thread.png", full_page=True)

    page.go_back()
    page.go_back()
    page.wait_for_url("**/?*status=running*")
    assert page.locator("input[name=status][value=running]").is_checked()
