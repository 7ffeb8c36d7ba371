"""Per-user rates: reads and writes are counted apart and answered 429 with Retry-After."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(settings):
    rates = {"api_read": "3/min", "api_write": "2/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    return rates


def test_reads_throttled_after_rate(viewer_client, low_rates):
    statuses = [viewer_client.get(reverse("api:thread-list")).status_code for _ in range(4)]
    response = viewer_client.get(reverse("api:thread-list"))

    assert statuses == [200, 200, 200, 429]
    assert int(response["Retry-After"]) > 0
    assert response.json()["detail"].startswith("Request was throttled.")


def test_writes_counted_apart_from_reads(archiver_client, low_rates):
    for _ in range(3):
        archiver_client.get(reverse("api:thread-list"))
    body = {"thread_ids": ["sthr_none"], "dry_run": True}

    writes = [
        archiver_client.post(reverse("api:archive-job-list"), body, format="json").status_code
        for _ in range(3)
    ]

    assert writes == [200, 200, 429]


def test_each_user_has_own_counter(viewer_client, archiver_client, low_rates):
    for _ in range(3):
        viewer_client.get(reverse("api:thread-list"))

    response = archiver_client.get(reverse("api:thread-list"))

    assert response.status_code == 200
