"""Error bodies of the REST API.

Every error body has a top-level `detail` sentence. A validation error also keeps
DRF's `{"field": ["message"]}` entries next to it, so a client can tell which field
was wrong, and `detail` names those fields.
"""

from django.http import JsonResponse
from django.views import defaults
from rest_framework.views import exception_handler

MAX_DETAIL_FIELDS = 5
# Path prefix at which dashboard/urls.py mounts the API.
API_PATH_PREFIX = "/api/"


def api_exception_handler(exc, context):
    """Render an API exception as DRF does, then add `detail` where DRF left it out."""
    response = exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(response.data, list):
        response.data = {"non_field_errors": response.data}
    if isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": _validation_summary(response.data), **response.data}
    return response


def not_found(request, exception):
    """Render a 404: JSON with `detail` for a path under /api/, Django's HTML page otherwise.

    Django calls this (as handler404) for a path no view matched and for an Http404
    raised by a plain Django view, and only while DEBUG is off. DRF views render
    their own 404s through api_exception_handler.
    """
    if request.path_info.startswith(API_PATH_PREFIX):
        detail = "No API endpoint at %s; see /api/docs/ for the endpoints." % request.path_info[:200]
        return JsonResponse({"detail": detail}, status=404)
    return defaults.page_not_found(request, exception)


def _validation_summary(errors: dict) -> str:
    parts = []
    for name, messages in list(errors.items())[:MAX_DETAIL_FIELDS]:
        parts.append("%s: %s" % (name, _first_message(messages)))
    more = len(errors) - MAX_DETAIL_FIELDS
    suffix = " (and %d more fields)" % more if more > 0 else ""
    return "Invalid request. %s%s." % ("; ".join(parts).rstrip("."), suffix)


def _first_message(messages) -> str:
    # Nested serializers and list fields give dicts and lists of messages.
    while isinstance(messages, dict | list) and messages:
        if isinstance(messages, dict):
            key, messages = next(iter(messages.items()))
            return "%s: %s" % (key, _first_message(messages))
        messages = messages[0]
    return str(messages)
