"""URLs of the REST API (namespace `api`), mounted at /api/ by dashboard/urls.py.

The schema and the docs page are outside /api/v1/ so that they describe the whole
version rather than belong to it.
"""

from django.contrib.auth.decorators import login_required
from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from . import views

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularJSONAPIView.as_view(), name="schema"),
    # A page for people: an anonymous visitor is sent to the login page, unlike the
    # JSON endpoints, which answer 401. The page fetches the schema with the session.
    path("docs/", login_required(SpectacularSwaggerView.as_view(url_name="api:schema")), name="docs"),
    path("v1/sessions/", views.SessionListView.as_view(), name="session-list"),
    path("v1/sessions/<str:session_id>/", views.SessionDetailView.as_view(), name="session-detail"),
    path(
        "v1/sessions/<str:session_id>/threads/<str:thread_id>/",
        views.ThreadDetailView.as_view(),
        name="thread-detail",
    ),
    path("v1/threads/", views.ThreadListView.as_view(), name="thread-list"),
    path("v1/usage/", views.UsageView.as_view(), name="usage"),
    path("v1/usage/breakdown/", views.UsageBreakdownView.as_view(), name="usage-breakdown"),
    path("v1/archive-jobs/", views.ArchiveJobListCreateView.as_view(), name="archive-job-list"),
    path("v1/archive-jobs/<int:job_id>/", views.ArchiveJobDetailView.as_view(), name="archive-job-detail"),
    path(
        "v1/archive-jobs/<int:job_id>/failed-items/",
        views.ArchiveJobFailedItemsView.as_view(),
        name="archive-job-failed-items",
    ),
    path(
        "v1/archive-jobs/<int:job_id>/cancel/",
        views.ArchiveJobCancelView.as_view(),
        name="archive-job-cancel",
    ),
    path(
        "v1/archive-jobs/<int:job_id>/retry-failed/",
        views.ArchiveJobRetryFailedView.as_view(),
        name="archive-job-retry-failed",
    ),
]
