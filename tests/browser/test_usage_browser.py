"""The usage page in a real browser: Debian's chromium driven by Playwright."""

import csv
import io
from datetime import UTC, datetime

import pytest

from tests.factories import SessionFactory, ThreadFactory

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


@pytest.fixture
def usage_data(transactional_db, django_user_model):
    django_user_model.objects.create_user(username="viewer", password="secret-password")
    now = datetime.now(UTC)
    session = SessionFactory(created_at=now, title="Weekly digest", list_cost_amount=123_500)
    ThreadFactory(
        session=session,
        agent_id="agent_writer",
        agent_name="Writer",
        input_tokens=1_234_567,
        list_cost_amount=98_765,
    )
    ThreadFactory(
        session=session, agent_id="agent_cheap", agent_name="=Cheap", input_tokens=10, list_cost_amount=1
    )
    return session


def log_in(page, base_url: str) -> None:
    page.goto(base_url + "/login/?next=/usage/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "secret-password")
    page.click("button[type=submit]")
    page.wait_for_url("**/usage/**")


@pytest.mark.browser
def test_usage_page_shows_chart_and_downloads_csv(live_server, usage_data, browser_page):
    page = browser_page
    log_in(page, live_server.url)

    page.click("text=Last 7 days")
    page.wait_for_url("**period=7d**")

    assert page.locator("h1").inner_text() == "Token usage"
    assert page.locator("svg rect.usage-bar").count() == 2
    assert page.locator("svg rect.usage-input").count() >= 1
    first_agent = page.locator("#usage-breakdown-heading ~ table tbody tr").first
    assert "Writer" in first_agent.inner_text()
    assert "$987.65" in first_agent.inner_text()
    link = first_agent.locator("a").first.get_attribute("href")
    assert "agent=agent_writer" in link
    assert "sort=-cost" in link

    with page.expect_download() as download_info:
        page.click("text=Agents CSV")
    download = download_info.value
    text = open(download.path(), encoding="utf-8").read()
    rows = list(csv.reader(io.StringIO(text)))

    assert download.suggested_filename.startswith("usage-agent-")
    assert rows[0][:3] == ["agent_key", "agent_name", "agent_type"]
    assert [row[1] for row in rows[1:]] == ["Writer", "'=Cheap"]
