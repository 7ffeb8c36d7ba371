"""Pages that create, follow and control archive jobs."""

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.http import require_POST


@require_POST
def archive_confirm(request):
    # TODO: placeholder so the threads list can post its selection; the archive
    # pages replace it with the confirmation step.
    return HttpResponse("Archiving is not available yet.", content_type="text/plain", status=501)


urlpatterns = [
    path("archive/confirm/", archive_confirm, name="archive-confirm"),
]
