"""REST API views: parse the request, call a selector or service, render JSON.

Reads need a logged-in user (a token or a session); every write also needs the
`threads.archive_thread` permission, as on the pages. Invalid input is answered with
400 and `{"detail": ..., "<field>": ["message"]}`.
"""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from threads import selectors
from threads.filters import ThreadFilter, thread_filter_from_query
from threads.models import ArchiveJob, ArchiveJobScope, ArchiveJobStatus, Session, Thread
from threads.selectors_usage import (
    thread_tree_usage,
    usage_breakdown_rows,
    usage_overview,
    usage_params_from_query,
    usage_session_figures,
)
from threads.services.archive_jobs import (
    ArchiveSelectionError,
    archive_dry_run,
    archive_job_cancel,
    archive_job_create,
    archive_job_failed_items,
    archive_job_list,
    archive_job_progress,
    archive_job_retry_failed,
    archive_job_skipped_reasons,
    archive_selection_build,
)

from .pagination import (
    ArchiveItemCursorPagination,
    ArchiveJobCursorPagination,
    keyset_page_data,
    keyset_params_parse,
)
from .permissions import CanArchiveThreads
from .serializers import (
    ArchiveDryRunSerializer,
    ArchiveItemSerializer,
    ArchiveJobCreateSerializer,
    ArchiveJobDetailSerializer,
    ArchiveJobRetrySerializer,
    ArchiveJobSerializer,
    SessionDetailSerializer,
    SessionFilterSerializer,
    SessionListQuerySerializer,
    SessionPageSerializer,
    SessionSerializer,
    ThreadDetailSerializer,
    ThreadFilterSerializer,
    ThreadListQuerySerializer,
    ThreadPageSerializer,
    ThreadSerializer,
    UsageBreakdownQuerySerializer,
    UsageBreakdownSerializer,
    UsageQuerySerializer,
    UsageSerializer,
)

# The largest id PostgreSQL's bigint holds; a larger one in a URL cannot exist.
MAX_JOB_ID = 2**63 - 1
# API ids such as sesn_... and sthr_...; the URL takes any segment, the schema documents these.
ID_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}
SESSION_ID_PARAMETER = OpenApiParameter("session_id", ID_SCHEMA, OpenApiParameter.PATH)
THREAD_ID_PARAMETER = OpenApiParameter("thread_id", ID_SCHEMA, OpenApiParameter.PATH)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the archive job's state."
    default_code = "conflict"


class ErrorSerializer(serializers.Serializer):
    """An error body: `detail` says what failed; a 400 adds one entry per invalid field."""

    detail = serializers.CharField()


def _errors(*codes: int) -> dict:
    descriptions = {
        400: "Invalid input; the body names each invalid field.",
        401: "No or invalid credentials. Send `Authorization: Token <key>`.",
        403: "Logged in, but without the permission this endpoint needs.",
        404: "No such object.",
        409: "The archive job's state does not allow this.",
        429: "Too many requests; wait the seconds in the Retry-After header.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=descriptions[code]) for code in codes}


def _form_errors(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    # A form's cross-field errors come under "__all__"; DRF calls that key non_field_errors.
    return {
        ("non_field_errors" if name == "__all__" else name): messages for name, messages in errors.items()
    }


def _list_params_parse(request, *, query_serializer_class, keys) -> tuple[ThreadFilter, object]:
    """Validate the filter and the paging parameters together, so one 400 names every bad field."""
    thread_filter, _form = thread_filter_from_query(request.query_params)
    errors = _form_errors(thread_filter.errors)

    params = None
    try:
        params = keyset_params_parse(
            query=request.query_params,
            query_serializer_class=query_serializer_class,
            keys=keys,
            default_sort=selectors.DEFAULT_SORT,
        )
    except ValidationError as exc:
        errors.update(exc.detail)

    if errors:
        raise ValidationError(errors)
    return thread_filter, params


# ---------------------------------------------------------------------------
# Sessions and threads
# ---------------------------------------------------------------------------


class SessionListView(APIView):
    @extend_schema(
        operation_id="sessions_list",
        summary="List sessions",
        description="Sessions matching the filter, one cursor page at a time; the filter is the pages'.",
        parameters=[SessionFilterSerializer, SessionListQuerySerializer],
        responses={200: SessionPageSerializer, **_errors(400, 401, 429)},
    )
    def get(self, request):
        thread_filter, params = _list_params_parse(
            request, query_serializer_class=SessionListQuerySerializer, keys=selectors.SESSION_SORT_KEYS
        )

        page = selectors.session_list_page(
            thread_filter=thread_filter, sort=params.sort, cursor=params.cursor, page_size=params.page_size
        )

        results = SessionSerializer(page.rows, many=True).data
        return Response(keyset_page_data(request=request, page=page, results=results))


class ThreadListView(APIView):
    @extend_schema(
        operation_id="threads_list",
        summary="List threads",
        description="Threads matching the filter, one cursor page at a time; the filter is the pages'.",
        parameters=[ThreadFilterSerializer, ThreadListQuerySerializer],
        responses={200: ThreadPageSerializer, **_errors(400, 401, 429)},
    )
    def get(self, request):
        thread_filter, params = _list_params_parse(
            request, query_serializer_class=ThreadListQuerySerializer, keys=selectors.THREAD_SORT_KEYS
        )

        page = selectors.thread_list_page(
            thread_filter=thread_filter, sort=params.sort, cursor=params.cursor, page_size=params.page_size
        )

        results = ThreadSerializer(page.rows, many=True).data
        return Response(keyset_page_data(request=request, page=page, results=results))


class SessionDetailView(APIView):
    @extend_schema(
        operation_id="sessions_retrieve",
        summary="Get a session with its thread tree",
        parameters=[SESSION_ID_PARAMETER],
        responses={200: SessionDetailSerializer, **_errors(401, 404, 429)},
    )
    def get(self, request, session_id: str):
        try:
            session = selectors.session_get(session_id=session_id)
        except Session.DoesNotExist:
            raise NotFound(
                "No session with id %r is stored. Sync, or check the id." % session_id[:200]
            ) from None

        tree = selectors.session_thread_tree(session=session)

        data = {"session": session, "raw": session.raw, "thread_tree": tree}
        return Response(SessionDetailSerializer(data).data)


class ThreadDetailView(APIView):
    @extend_schema(
        operation_id="threads_retrieve",
        summary="Get a thread with usage summed over its descendants",
        parameters=[SESSION_ID_PARAMETER, THREAD_ID_PARAMETER],
        responses={200: ThreadDetailSerializer, **_errors(401, 404, 429)},
    )
    def get(self, request, session_id: str, thread_id: str):
        try:
            thread = selectors.thread_get(session_id=session_id, thread_id=thread_id)
        except Thread.DoesNotExist:
            raise NotFound(
                "No thread with id %r is stored in session %r." % (thread_id[:200], session_id[:200])
            ) from None

        tree_usage = thread_tree_usage(thread_id=thread.id)

        data = {"thread": thread, "raw": thread.raw, "tree_usage": tree_usage}
        return Response(ThreadDetailSerializer(data).data)


# ---------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------


def _usage_params_parse(request, *, query_serializer_class):
    """Validate the usage parameters; the usage page falls back to defaults, the API answers 400."""
    query_serializer = query_serializer_class(data=request.query_params)
    errors = {} if query_serializer.is_valid() else dict(query_serializer.errors)
    params = usage_params_from_query(request.query_params, today=timezone.now().date())
    errors.update(_form_errors(params.thread_filter.errors))
    if errors:
        raise ValidationError(errors)
    return params, query_serializer.validated_data


def _usage_row(row: dict) -> dict:
    # Session rows carry the Session (None when not synced) and sums over all its threads.
    if "all_threads" in row:
        return {**row, "all_threads": row["all_threads"] or None}
    return row


class UsageView(APIView):
    @extend_schema(
        operation_id="usage_retrieve",
        summary="Usage totals, daily sums, a breakdown and top lists",
        description=(
            "The usage page's figures for the threads filter and period. Archived threads count unless "
            "`archived` is given, because archiving does not undo spend."
        ),
        parameters=[ThreadFilterSerializer, UsageQuerySerializer],
        responses={200: UsageSerializer, **_errors(400, 401, 429)},
    )
    def get(self, request):
        params, _values = _usage_params_parse(request, query_serializer_class=UsageQuerySerializer)

        overview = usage_overview(params=params)

        data = {
            "period": params.period,
            "created_from": params.thread_filter.created_from,
            "created_to": params.thread_filter.created_to,
            "totals": overview["totals"],
            "session_totals": overview["session_totals"],
            "daily": overview["daily"],
            "breakdown": params.breakdown,
            "breakdown_rows": [_usage_row(row) for row in overview["breakdown"]["rows"]],
            "breakdown_count": overview["breakdown"]["row_count"],
            "top_threads_by_tokens": overview["top_threads_by_tokens"],
            "top_threads_by_cost": overview["top_threads_by_cost"],
            "top_sessions_by_tokens": [_usage_row(row) for row in overview["top_sessions_by_tokens"]],
            "top_sessions_by_cost": [_usage_row(row) for row in overview["top_sessions_by_cost"]],
        }
        return Response(UsageSerializer(data).data)


class UsageBreakdownView(APIView):
    @extend_schema(
        operation_id="usage_breakdown_list",
        summary="Every row of a usage breakdown by agent, model or session",
        parameters=[ThreadFilterSerializer, UsageBreakdownQuerySerializer],
        responses={200: UsageBreakdownSerializer, **_errors(400, 401, 429)},
    )
    def get(self, request):
        params, values = _usage_params_parse(request, query_serializer_class=UsageBreakdownQuerySerializer)
        limit, offset = values["limit"], values["offset"]

        rows_queryset = usage_breakdown_rows(
            thread_filter=params.thread_filter, breakdown=params.breakdown, sort=params.sort
        )
        count = rows_queryset.count()
        rows = list(rows_queryset[offset : offset + limit])
        if params.breakdown == "session":
            rows = usage_session_figures(rows=rows)

        url = request.build_absolute_uri()
        data = {
            "breakdown": params.breakdown,
            "count": count,
            "next": replace_query_param(url, "offset", offset + limit) if offset + limit < count else None,
            "previous": replace_query_param(url, "offset", max(0, offset - limit)) if offset > 0 else None,
            "results": [_usage_row(row) for row in rows],
        }
        return Response(UsageBreakdownSerializer(data).data)


# ---------------------------------------------------------------------------
# Archive jobs
# ---------------------------------------------------------------------------

JOB_ID_PARAMETER = OpenApiParameter(
    "job_id",
    {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID},
    OpenApiParameter.PATH,
    description="Archive job id.",
)


def _job_or_404(job_id: int) -> ArchiveJob:
    job = archive_job_list().filter(pk=job_id).first() if 1 <= job_id <= MAX_JOB_ID else None
    if job is None:
        raise NotFound("No archive job with id %d." % job_id)
    return job


def _job_detail_data(job: ArchiveJob) -> dict:
    return {
        "job": job,
        "selected_ids": job.selected_ids,
        "progress": archive_job_progress(job_id=job.pk),
        "skipped_reasons": archive_job_skipped_reasons(job_id=job.pk),
    }


class ArchiveJobListCreateView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, CanArchiveThreads]
    pagination_class = ArchiveJobCursorPagination
    serializer_class = ArchiveJobSerializer

    def get_queryset(self):
        return archive_job_list()

    @extend_schema(
        operation_id="archive_jobs_list",
        summary="List archive jobs, newest first",
        responses={200: ArchiveJobSerializer(many=True), **_errors(400, 401, 429)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ArchiveJobSerializer(page, many=True).data)

    @extend_schema(
        operation_id="archive_jobs_create",
        summary="Create an archive job, or dry-run one",
        description=(
            "Select threads by `thread_ids` or by `filter`. With `dry_run: true` the answer is the dry "
            "run (200) and nothing is created; otherwise the job is created (201) and starts after the "
            "grace period, during which it can still be cancelled."
        ),
        request=ArchiveJobCreateSerializer,
        responses={
            200: OpenApiResponse(ArchiveDryRunSerializer, description="The dry run; nothing was created."),
            201: OpenApiResponse(ArchiveJobDetailSerializer, description="The job was created."),
            **_errors(400, 401, 403, 429),
        },
    )
    def post(self, request):
        body = ArchiveJobCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        by_filter = "filter" in values
        try:
            selection = archive_selection_build(
                scope=ArchiveJobScope.FILTER if by_filter else ArchiveJobScope.SELECTED,
                thread_ids=values.get("thread_ids"),
                filter_query=values["filter"] if by_filter else None,
            )
        except ArchiveSelectionError as exc:
            raise ValidationError({"filter" if by_filter else "thread_ids": [str(exc)]}) from exc

        if values["dry_run"]:
            dry_run = archive_dry_run(selection=selection, interrupt_running=values["interrupt_running"])
            return Response(ArchiveDryRunSerializer(dry_run).data)

        try:
            job = archive_job_create(
                selection=selection, interrupt_running=values["interrupt_running"], user=request.user
            )
        except ArchiveSelectionError as exc:
            raise ValidationError({"filter" if by_filter else "thread_ids": [str(exc)]}) from exc

        location = reverse("api:archive-job-detail", kwargs={"job_id": job.pk}, request=request)
        data = ArchiveJobDetailSerializer(_job_detail_data(job)).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})


class ArchiveJobDetailView(APIView):
    permission_classes = [IsAuthenticated, CanArchiveThreads]

    @extend_schema(
        operation_id="archive_jobs_retrieve",
        summary="Get an archive job with its live progress",
        parameters=[JOB_ID_PARAMETER],
        responses={200: ArchiveJobDetailSerializer, **_errors(401, 404, 429)},
    )
    def get(self, request, job_id: int):
        job = _job_or_404(job_id)
        return Response(ArchiveJobDetailSerializer(_job_detail_data(job)).data)


class ArchiveJobFailedItemsView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, CanArchiveThreads]
    pagination_class = ArchiveItemCursorPagination
    serializer_class = ArchiveItemSerializer

    @extend_schema(
        operation_id="archive_jobs_failed_items_list",
        summary="List an archive job's failed items with their last error",
        parameters=[JOB_ID_PARAMETER],
        responses={200: ArchiveItemSerializer(many=True), **_errors(400, 401, 404, 429)},
    )
    def get(self, request, job_id: int):
        job = _job_or_404(job_id)

        page = self.paginate_queryset(archive_job_failed_items(job_id=job.pk))

        return self.get_paginated_response(ArchiveItemSerializer(page, many=True).data)


class ArchiveJobCancelView(APIView):
    permission_classes = [IsAuthenticated, CanArchiveThreads]

    @extend_schema(
        operation_id="archive_jobs_cancel",
        summary="Cancel an archive job",
        description="Pending items are skipped and never sent; items already archived stay archived.",
        request=None,
        parameters=[JOB_ID_PARAMETER],
        responses={200: ArchiveJobDetailSerializer, **_errors(401, 403, 404, 409, 429)},
    )
    def post(self, request, job_id: int):
        job = _job_or_404(job_id)

        cancelled = archive_job_cancel(job_id=job.pk, user=request.user)

        job.refresh_from_db()
        if not cancelled:
            raise Conflict(
                "Archive job %d is already %s; only a scheduled or running job can be cancelled."
                % (job.pk, job.status)
            )
        return Response(ArchiveJobDetailSerializer(_job_detail_data(job)).data)


class ArchiveJobRetryFailedView(APIView):
    permission_classes = [IsAuthenticated, CanArchiveThreads]

    @extend_schema(
        operation_id="archive_jobs_retry_failed",
        summary="Retry an archive job's failed items",
        description="Failed items go back to pending with a fresh attempt budget. 0 when none failed.",
        request=None,
        parameters=[JOB_ID_PARAMETER],
        responses={200: ArchiveJobRetrySerializer, **_errors(401, 403, 404, 409, 429)},
    )
    def post(self, request, job_id: int):
        job = _job_or_404(job_id)

        retried = archive_job_retry_failed(job_id=job.pk)

        job.refresh_from_db()
        if not retried and job.status in (ArchiveJobStatus.SCHEDULED, ArchiveJobStatus.CANCELLED):
            raise Conflict(
                "Archive job %d is %s; only a running or finished job can retry failed items."
                % (job.pk, job.status)
            )
        return Response(ArchiveJobRetrySerializer({"retried": retried, "job": job}).data)
