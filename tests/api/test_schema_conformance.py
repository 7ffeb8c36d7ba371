"""Schemathesis against the served OpenAPI schema, on a live server.

Every GET endpoint and the archive job dry run get generated requests; each answer
must match the schema (status code, content type, body) and never be a 5xx. The
create endpoint is called with `dry_run` forced on, so nothing is archived.

The check that every schema-valid request gets a 2xx is left out: a cursor is opaque,
so a generated one is rightly rejected with 400, and so is a date range whose start
is after its end, although each value alone matches the schema.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.factories import ArchiveJobFactory, ThreadFactory
from threads.services.users import archive_permission

# Operations under test: every read, and the create endpoint only as a dry run.
OPERATION_IDS = [
    "sessions_list",
    "sessions_retrieve",
    "threads_list",
    "threads_retrieve",
    "usage_retrieve",
    "usage_breakdown_list",
    "archive_jobs_list",
    "archive_jobs_retrieve",
    "archive_jobs_failed_items_list",
    "archive_jobs_create",
]
# Far above what one run sends, so throttling never answers 429 here.
MAX_EXAMPLES = 40
HIGH_RATES = {"api_read": "100000/min", "api_write": "100000/min"}


@pytest.fixture
def auth_headers(transactional_db, django_user_model, settings):
    from rest_framework.authtoken.models import Token

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": HIGH_RATES}
    user = django_user_model.objects.create_user(username="schemathesis")
    user.user_permissions.add(archive_permission())
    return {"Authorization": "Token " + Token.objects.create(user=user).key}


@pytest.fixture
def api_schema(live_server, auth_headers):
    primary = ThreadFactory()
    ThreadFactory.create_batch(3, session=primary.session, parent=primary)
    ArchiveJobFactory()

    schema = schemathesis.openapi.from_url(live_server.url + "/api/schema/", headers=auth_headers, timeout=30)
    return schema.include(operation_id=OPERATION_IDS)


def _operation_check(operation, *, base_url: str, headers: dict) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case):
        if case.method == "POST":
            # The body is optional in the schema; without one the API answers 400.
            body = case.body if isinstance(case.body, dict) else {}
            case.body = {**body, "dry_run": True}
        case.call_and_validate(base_url=base_url, headers=headers, excluded_checks=[positive_data_acceptance])

    check()


# NOTE: schemathesis 4.32.5's pytest loader (`schemathesis.pytest.from_fixture`) fails
# under pytest 9.2 with "'Function' object has no attribute '_nodeid'", so each
# operation's strategy is run with Hypothesis directly instead.
def test_api_conforms_to_schema(api_schema, live_server, auth_headers):
    operations = [result.ok() for result in api_schema.get_all_operations()]

    for operation in operations:
        _operation_check(operation, base_url=live_server.url, headers=auth_headers)

    assert sorted(operation.definition.raw["operationId"] for operation in operations) == sorted(
        OPERATION_IDS
    )
