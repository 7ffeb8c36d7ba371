"""Archive pages: permission, CSRF, the confirmation page, job pages and the htmx fragment."""

import logging

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import SessionFactory, ThreadFactory
from threads.models import ArchiveItem, ArchiveItemState, ArchiveJob, ArchiveJobStatus, SnapshotStatus
from threads.services.archive_jobs import archive_job_create, archive_selection_build

pytestmark = pytest.mark.django_db

HTMX_HEADERS = {"HX-Request": "true"}


@pytest.fixture
def viewer(django_user_model):
    return django_user_model.objects.create_user("viewer", password="pw-viewer-123")


@pytest.fixture
def archiver(django_user_model):
    user = django_user_model.objects.create_user("archiver", password="pw-archiver-123")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="threads", codename="archive_thread")
    )
    return user


def _client(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def _csrf_token(client: Client) -> str:
    client.get(reverse("threads:archive-job-list"))
    return client.cookies["csrftoken"].value


@pytest.fixture
def threads():
    session = SessionFactory()
    primary = ThreadFactory(session=session)
    idle = ThreadFactory.create_batch(3, session=session, parent=primary, is_primary=False)
    running = ThreadFactory(session=session, parent=primary, is_primary=False, status=SnapshotStatus.RUNNING)
    return {"primary": primary, "idle": idle, "running": running, "session": session}


def _job(threads) -> ArchiveJob:
    selection = archive_selection_build(
        scope="selected", thread_ids=[thread.id for thread in threads["idle"]]
    )
    return archive_job_create(selection=selection, interrupt_running=False)


def test_confirm_without_permission_forbidden(viewer, threads):
    response = _client(viewer).post(
        reverse("threads:archive-confirm"), {"scope": "selected", "thread_ids": [threads["idle"][0].id]}
    )

    assert response.status_code == 403
    assert not ArchiveJob.objects.exists()


def test_confirm_forbidden_logs_one_warning(viewer, threads, caplog):
    path = reverse("threads:archive-confirm")

    with caplog.at_level(logging.INFO, logger="django.request"):
        _client(viewer).post(path, {"scope": "selected", "thread_ids": [threads["idle"][0].id]})

    [record] = [record for record in caplog.records if record.name == "django.request"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.user_id == viewer.pk
    assert path in record.getMessage()


def test_request_log_has_one_handler_in_debug(settings):
    # Django's default logging config adds a console handler to "django" that prints while DEBUG is on.
    settings.DEBUG = True
    record = logging.makeLogRecord({"name": "django.request", "levelno": logging.WARNING})

    handlers = []
    logger = logging.getLogger("django.request")
    while logger is not None:
        handlers += [handler for handler in logger.handlers if not _is_pytest_handler(handler)]
        logger = logger.parent if logger.propagate else None
    emitting = [handler for handler in handlers if handler.filter(record)]

    assert [type(handler).__name__ for handler in emitting] == ["StreamHandler"]


def _is_pytest_handler(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")


def test_thread_archive_without_permission_forbidden(viewer, threads):
    thread = threads["idle"][0]
    url = reverse("threads:thread-archive", args=[thread.session_id, thread.id])

    response = _client(viewer).post(url)

    assert response.status_code == 403
    assert not ArchiveJob.objects.exists()


def test_cancel_and_retry_without_permission_forbidden(viewer, threads):
    job = _job(threads)
    client = _client(viewer)

    cancel = client.post(reverse("threads:archive-job-cancel", args=[job.pk]))
    retry = client.post(reverse("threads:archive-job-retry-failed", args=[job.pk]))

    job.refresh_from_db()
    assert cancel.status_code == 403
    assert retry.status_code == 403
    assert job.status == ArchiveJobStatus.SCHEDULED


def test_job_page_hides_controls_without_permission(viewer, threads):
    job = _job(threads)

    response = _client(viewer).get(reverse("threads:archive-job-detail", args=[job.pk]))

    assert response.status_code == 200
    assert reverse("threads:archive-job-cancel", args=[job.pk]) not in response.content.decode()


def test_job_page_shows_cancel_with_permission(archiver, threads):
    job = _job(threads)

    response = _client(archiver).get(reverse("threads:archive-job-detail", args=[job.pk]))

    assert reverse("threads:archive-job-cancel", args=[job.pk]) in response.content.decode()


def test_thread_list_hides_controls_without_permission(viewer, threads):
    response = _client(viewer).get(reverse("threads:thread-list"))

    assert response.status_code == 200
    assert reverse("threads:archive-confirm") not in response.content.decode()


def test_thread_list_shows_controls_with_permission(archiver, threads):
    response = _client(archiver).get(reverse("threads:thread-list"))

    assert reverse("threads:archive-confirm") in response.content.decode()


def test_confirm_without_csrf_token_rejected(archiver, threads):
    client = _client(archiver, csrf=True)

    response = client.post(
        reverse("threads:archive-confirm"),
        {"scope": "selected", "thread_ids": [threads["idle"][0].id], "confirm": "on"},
    )

    assert response.status_code == 403
    assert not ArchiveJob.objects.exists()


def test_confirm_with_csrf_token_accepted(archiver, threads):
    client = _client(archiver, csrf=True)
    token = _csrf_token(client)

    response = client.post(
        reverse("threads:archive-confirm"),
        {"scope": "selected", "thread_ids": [threads["idle"][0].id], "csrfmiddlewaretoken": token},
    )

    assert response.status_code == 200


def test_cancel_without_csrf_token_rejected(archiver, threads):
    job = _job(threads)

    response = _client(archiver, csrf=True).post(reverse("threads:archive-job-cancel", args=[job.pk]))

    job.refresh_from_db()
    assert response.status_code == 403
    assert job.status == ArchiveJobStatus.SCHEDULED


def test_confirm_page_shows_dry_run_and_sends_nothing(archiver, threads):
    ids = [thread.id for thread in threads["idle"]] + [threads["running"].id, threads["primary"].id]

    response = _client(archiver).post(
        reverse("threads:archive-confirm"), {"scope": "selected", "thread_ids": ids}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert response.context["dry_run"].planned_count == 3
    assert response.context["dry_run"].skipped_count == 2
    assert 'data-skip-reason="running"' in page
    assert 'data-skip-reason="primary"' in page
    assert "Archive 3 threads" in page
    assert not ArchiveJob.objects.exists()


def test_confirm_creates_job_and_redirects(archiver, threads):
    ids = [thread.id for thread in threads["idle"]]

    response = _client(archiver).post(
        reverse("threads:archive-confirm"), {"scope": "selected", "thread_ids": ids, "confirm": "on"}
    )

    job = ArchiveJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("threads:archive-job-detail", args=[job.pk])
    assert job.created_by == archiver
    assert job.planned_count == 3
    assert set(ArchiveItem.objects.filter(job=job).values_list("thread_id", flat=True)) == set(ids)


def test_job_page_shows_confirmation_while_scheduled(viewer, threads):
    job = _job(threads)

    response = _client(viewer).get(reverse("threads:archive-job-detail", args=[job.pk]))

    assert "Archive job #%d confirmed: 3 threads will be archived." % job.pk in response.content.decode()


def test_job_page_hides_confirmation_when_finished(archiver, threads):
    client = _client(archiver)
    ids = [thread.id for thread in threads["idle"]]
    client.post(reverse("threads:archive-confirm"), {"scope": "selected", "thread_ids": ids, "confirm": "on"})
    job = ArchiveJob.objects.get()
    ArchiveItem.objects.filter(job=job).update(state=ArchiveItemState.ARCHIVED)
    ArchiveJob.objects.filter(pk=job.pk).update(status=ArchiveJobStatus.FINISHED, finished_at=timezone.now())

    page = client.get(reverse("threads:archive-job-detail", args=[job.pk])).content.decode()

    assert "Finished" in page
    assert "will be archived" not in page
    assert 'data-testid="archive-confirmed"' not in page


def test_progress_fragment_hides_confirmation_when_running(viewer, threads):
    job = _job(threads)
    ArchiveJob.objects.filter(pk=job.pk).update(status=ArchiveJobStatus.RUNNING, started_at=timezone.now())

    response = _client(viewer).get(reverse("threads:archive-job-detail", args=[job.pk]), headers=HTMX_HEADERS)

    assert 'data-testid="archive-confirmed"' not in response.content.decode()


def test_confirm_filter_scope_ignores_posted_ids(archiver, threads):
    response = _client(archiver).post(
        reverse("threads:archive-confirm"),
        {
            "scope": "filter",
            "filter": "status=running&kind=child",
            "thread_ids": [threads["idle"][0].id],
            "interrupt_running": "on",
            "confirm": "on",
        },
    )

    job = ArchiveJob.objects.get()
    assert response.status_code == 302
    assert list(ArchiveItem.objects.filter(job=job).values_list("thread_id", flat=True)) == [
        threads["running"].id
    ]
    assert job.filter_query == {"status": ["running"], "kind": "child"}
    assert job.interrupt_running is True


def test_confirm_invalid_filter_shows_error(archiver, threads):
    response = _client(archiver).post(
        reverse("threads:archive-confirm"),
        {"scope": "filter", "filter": "created_to=yesterday", "confirm": "on"},
    )

    assert response.status_code == 400
    assert "The filter is invalid" in response.content.decode()
    assert not ArchiveJob.objects.exists()


def test_confirm_get_not_allowed(archiver):
    response = _client(archiver).get(reverse("threads:archive-confirm"))

    assert response.status_code == 405


def test_thread_archive_creates_single_item_job(archiver, threads):
    thread = threads["idle"][0]

    response = _client(archiver).post(reverse("threads:thread-archive", args=[thread.session_id, thread.id]))

    job = ArchiveJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("threads:archive-job-detail", args=[job.pk])
    assert list(ArchiveItem.objects.filter(job=job).values_list("thread_id", flat=True)) == [thread.id]


def test_thread_archive_wrong_session_not_found(archiver, threads):
    thread = threads["idle"][0]

    response = _client(archiver).post(reverse("threads:thread-archive", args=["sesn_other", thread.id]))

    assert response.status_code == 404


def test_progress_fragment_polls_while_running(viewer, threads):
    job = _job(threads)

    response = _client(viewer).get(reverse("threads:archive-job-detail", args=[job.pk]), headers=HTMX_HEADERS)

    assert response.status_code == 200
    assert 'hx-trigger="every 1s"' in response.content.decode()


def test_progress_fragment_stops_polling_when_finished(viewer, threads):
    job = _job(threads)
    ArchiveItem.objects.filter(job=job).update(state=ArchiveItemState.ARCHIVED)
    ArchiveJob.objects.filter(pk=job.pk).update(status=ArchiveJobStatus.FINISHED, finished_at=timezone.now())

    response = _client(viewer).get(reverse("threads:archive-job-detail", args=[job.pk]), headers=HTMX_HEADERS)

    assert response.status_code == 286
    assert "100%" in response.content.decode()


def test_job_page_lists_failed_items(viewer, threads):
    job = _job(threads)
    ArchiveItem.objects.filter(job=job, thread_id=threads["idle"][0].id).update(
        state=ArchiveItemState.FAILED,
        reason="gave up after 8 attempts: InternalServerError",
        last_request_id="req_1",
    )

    response = _client(viewer).get(reverse("threads:archive-job-detail", args=[job.pk]))

    page = response.content.decode()
    assert "gave up after 8 attempts" in page
    assert "req_1" in page


def test_cancel_during_grace_cancels_job(archiver, threads):
    job = _job(threads)

    response = _client(archiver).post(reverse("threads:archive-job-cancel", args=[job.pk]))

    job.refresh_from_db()
    assert response.status_code == 302
    assert job.status == ArchiveJobStatus.CANCELLED
    assert job.cancelled_by == archiver


def test_job_list_shows_jobs(viewer, threads):
    job = _job(threads)

    response = _client(viewer).get(reverse("threads:archive-job-list"))

    assert response.status_code == 200
    assert reverse("threads:archive-job-detail", args=[job.pk]) in response.content.decode()


def test_confirm_unknown_ids_only_rejected(archiver, threads):
    response = _client(archiver).post(
        reverse("threads:archive-confirm"),
        {"scope": "selected", "thread_ids": ["sthr_doesnotexist"], "confirm": "on"},
    )

    assert response.status_code == 400
    assert "None of the selected threads is stored" in response.content.decode()
    assert "sthr_doesnotexist" in response.content.decode()
    assert not ArchiveJob.objects.exists()


def test_confirm_filter_matching_nothing_rejected(archiver, threads):
    response = _client(archiver).post(
        reverse("threads:archive-confirm"),
        {"scope": "filter", "filter": "agent=nobody-has-this-name", "confirm": "on"},
    )

    assert response.status_code == 400
    assert "The filter matches no stored threads" in response.content.decode()
    assert not ArchiveJob.objects.exists()


def _idle_children(count: int) -> list:
    primary = ThreadFactory(session=SessionFactory())
    return ThreadFactory.create_batch(count, session=primary.session, parent=primary, is_primary=False)


@pytest.mark.parametrize(
    ("count", "selected", "button"),
    [
        (1, "The 1 selected thread:", "Archive 1 thread</button>"),
        (2, "The 2 selected threads:", "Archive 2 threads</button>"),
    ],
)
def test_confirm_page_thread_count_wording(archiver, count, selected, button):
    ids = [thread.id for thread in _idle_children(count)]

    response = _client(archiver).post(
        reverse("threads:archive-confirm"), {"scope": "selected", "thread_ids": ids}
    )
    page = response.content.decode()

    assert selected in page
    assert button in page


@pytest.mark.parametrize(
    ("count", "selection", "confirmed"),
    [
        (1, "1 selected thread</dd>", "1 thread will be archived."),
        (2, "2 selected threads</dd>", "2 threads will be archived."),
    ],
)
def test_job_page_thread_count_wording(viewer, count, selection, confirmed):
    selection_ids = [thread.id for thread in _idle_children(count)]
    job = archive_job_create(
        selection=archive_selection_build(scope="selected", thread_ids=selection_ids), interrupt_running=False
    )

    page = _client(viewer).get(reverse("threads:archive-job-detail", args=[job.pk])).content.decode()

    assert selection in page
    assert confirmed in page


@pytest.mark.parametrize(
    ("count", "expected"),
    [(1, "(1 was already archived upstream)"), (2, "(2 were already archived upstream)")],
)
def test_job_page_already_archived_wording(viewer, count, expected):
    selection_ids = [thread.id for thread in _idle_children(count)]
    job = archive_job_create(
        selection=archive_selection_build(scope="selected", thread_ids=selection_ids), interrupt_running=False
    )
    ArchiveItem.objects.filter(job=job).update(state=ArchiveItemState.ARCHIVED, already_archived=True)
    ArchiveJob.objects.filter(pk=job.pk).update(status=ArchiveJobStatus.FINISHED, finished_at=timezone.now())

    page = _client(viewer).get(reverse("threads:archive-job-detail", args=[job.pk])).content.decode()

    assert expected in page


@pytest.mark.parametrize(
    ("count", "expected"), [(1, "Retrying 1 failed thread."), (2, "Retrying 2 failed threads.")]
)
def test_retry_message_thread_count_wording(archiver, count, expected):
    selection_ids = [thread.id for thread in _idle_children(count)]
    job = archive_job_create(
        selection=archive_selection_build(scope="selected", thread_ids=selection_ids), interrupt_running=False
    )
    ArchiveItem.objects.filter(job=job).update(state=ArchiveItemState.FAILED, reason="gave up")
    ArchiveJob.objects.filter(pk=job.pk).update(status=ArchiveJobStatus.FINISHED, finished_at=timezone.now())

    response = _client(archiver).post(reverse("threads:archive-job-retry-failed", args=[job.pk]), follow=True)
    page = response.content.decode()

    assert expected in page
