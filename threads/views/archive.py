"""Pages that create, follow and control archive jobs.

Every POST needs the `threads.archive_thread` permission (403 otherwise) and a CSRF
token. Nothing is sent to the API from here: confirming creates a job whose tasks
start after the grace period.
"""

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from threads.models import ArchiveJob, ArchiveJobScope, Thread
from threads.services.archive_jobs import (
    ArchivePlan,
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

ARCHIVE_PERMISSION = "threads.archive_thread"
# htmx stops polling when a response has this status.
HTMX_STOP_POLLING = 286
JOBS_PER_PAGE = 50
FAILED_ITEMS_SHOWN = 200
MAX_FILTER_LENGTH = 4000


class ArchiveConfirmForm(forms.Form):
    """The selection posted by the threads list, and the options of the confirmation page."""

    scope = forms.ChoiceField(choices=ArchiveJobScope.choices)
    filter = forms.CharField(required=False, max_length=MAX_FILTER_LENGTH)
    interrupt_running = forms.BooleanField(required=False)
    confirm = forms.BooleanField(required=False)


def _archive_required(view):
    return require_POST(permission_required(ARCHIVE_PERMISSION, raise_exception=True)(view))


@_archive_required
def archive_confirm(request):
    """Show the dry run of a selection; with `confirm`, create the job and go to its page."""
    form = ArchiveConfirmForm(request.POST)
    thread_ids = request.POST.getlist("thread_ids")
    context = {
        "form": form,
        "thread_ids": thread_ids,
        "plan_labels": ArchivePlan.LABELS,
        "grace_seconds": "%d seconds" % settings.ARCHIVE_GRACE_SECONDS,
    }
    if not form.is_valid():
        context["error"] = "The selection is invalid: %s" % form.errors.as_text()
        return render(request, "threads/archive/confirm.html", context, status=400)

    values = form.cleaned_data
    try:
        selection = archive_selection_build(
            scope=values["scope"], thread_ids=thread_ids, filter_querystring=values["filter"]
        )
    except ArchiveSelectionError as exc:
        context["error"] = str(exc)
        return render(request, "threads/archive/confirm.html", context, status=400)

    if values["confirm"]:
        try:
            job = archive_job_create(
                selection=selection, interrupt_running=values["interrupt_running"], user=request.user
            )
        except ArchiveSelectionError as exc:
            context["error"] = str(exc)
            return render(request, "threads/archive/confirm.html", context, status=400)
        # No flash message: it would stay on the job page after the job finished. The
        # page's progress fragment shows the confirmation while the job is scheduled.
        return redirect("threads:archive-job-detail", job_id=job.pk)

    context["selection"] = selection
    context["dry_run"] = archive_dry_run(selection=selection, interrupt_running=values["interrupt_running"])
    return render(request, "threads/archive/confirm.html", context)


@_archive_required
def thread_archive(request, session_id: str, thread_id: str):
    """Create a job of one thread and go to its page."""
    if not Thread.objects.filter(pk=thread_id, session_id=session_id).exists():
        raise Http404("No thread %s in session %s is stored." % (thread_id, session_id))

    selection = archive_selection_build(scope=ArchiveJobScope.SELECTED, thread_ids=[thread_id])
    job = archive_job_create(selection=selection, interrupt_running=False, user=request.user)
    return redirect("threads:archive-job-detail", job_id=job.pk)


@require_GET
def archive_job_index(request):
    """List archive jobs, newest first."""
    page = Paginator(archive_job_list(), JOBS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(job, archive_job_progress(job_id=job.pk)) for job in page.object_list]
    return render(request, "threads/archive/job_list.html", {"page": page, "rows": rows})


@require_GET
def archive_job_detail(request, job_id: int):
    """Show a job; an htmx request gets only the progress fragment, 286 once the job is finished."""
    job = get_object_or_404(ArchiveJob.objects.select_related("created_by", "cancelled_by"), pk=job_id)
    context = {
        "job": job,
        "progress": archive_job_progress(job_id=job.pk),
        "failed_items": archive_job_failed_items(job_id=job.pk)[:FAILED_ITEMS_SHOWN],
        "skipped_reasons": archive_job_skipped_reasons(job_id=job.pk),
        "filter_querystring": urlencode(job.filter_query, doseq=True),
    }
    if request.htmx:
        status = HTMX_STOP_POLLING if job.is_finished else 200
        return render(request, "threads/archive/_progress.html", context, status=status)
    return render(request, "threads/archive/job_detail.html", context)


@_archive_required
def archive_job_cancel_view(request, job_id: int):
    job = get_object_or_404(ArchiveJob, pk=job_id)
    if archive_job_cancel(job_id=job.pk, user=request.user):
        messages.success(
            request, "Archive job #%d cancelled; threads not yet sent will not be archived." % job.pk
        )
    else:
        messages.warning(request, "Archive job #%d has already finished or been cancelled." % job.pk)
    return redirect("threads:archive-job-detail", job_id=job.pk)


@_archive_required
def archive_job_retry_view(request, job_id: int):
    job = get_object_or_404(ArchiveJob, pk=job_id)
    retried = archive_job_retry_failed(job_id=job.pk)
    if retried:
        messages.success(
            request, ngettext("Retrying %d failed thread.", "Retrying %d failed threads.", retried) % retried
        )
    else:
        messages.info(request, "No failed threads to retry in archive job #%d." % job.pk)
    return redirect("threads:archive-job-detail", job_id=job.pk)


urlpatterns = [
    path("archive/confirm/", archive_confirm, name="archive-confirm"),
    path("archive/jobs/", archive_job_index, name="archive-job-list"),
    path("archive/jobs/<int:job_id>/", archive_job_detail, name="archive-job-detail"),
    path("archive/jobs/<int:job_id>/cancel/", archive_job_cancel_view, name="archive-job-cancel"),
    path("archive/jobs/<int:job_id>/retry-failed/", archive_job_retry_view, name="archive-job-retry-failed"),
    path("sessions/<str:session_id>/threads/<str:thread_id>/archive/", thread_archive, name="thread-archive"),
]
