"""Error bodies of the REST API.

Every error body has a top-level `detail` sentence. A validation error also keeps
DRF's `{"field": ["message"]}` entries next to it, so a client can tell which field
was wrong, and `detail` names those fields.
"""

from rest_framework.views import exception_handler

MAX_DETAIL_FIELDS = 5


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
