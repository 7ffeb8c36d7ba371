"""Log formatting shared by the web server, the Celery worker and beat."""

import logging
import os
from http import HTTPStatus

from django.core.exceptions import PermissionDenied

# Attributes every LogRecord has; anything else on a record came from `extra=`.
STANDARD_RECORD_ATTRIBUTES = set(
    vars(logging.LogRecord("", 0, "", 0, "", (), None))
) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    """Format a record as `time level logger message key=value ...`.

    The key=value pairs are the fields passed with `extra=`, so a log line can be
    grepped for `thread_id=sthr_...` or `archive_job_id=12`.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            "%s=%s" % (key, _quote(value))
            for key, value in vars(record).items()
            if key not in STANDARD_RECORD_ATTRIBUTES and not key.startswith("_")
        ]
        if fields:
            line = line + " " + " ".join(fields)
        return line


class RedactSecretsFilter(logging.Filter):
    """Replace the configured API key with `[redacted]` wherever it reaches a log line.

    Nothing in the project logs the key on purpose; this is the net under a library
    or an exception message that might.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        secret = os.environ.get("ANTHROPIC_API_KEY", "")
        if len(secret) < 8:
            return True

        message = record.getMessage()
        if secret in message:
            record.msg = message.replace(secret, "[redacted]")
            record.args = None
        for key, value in list(vars(record).items()):
            if key not in STANDARD_RECORD_ATTRIBUTES and isinstance(value, str) and secret in value:
                setattr(record, key, value.replace(secret, "[redacted]"))
        return True


class PermissionDeniedFilter(logging.Filter):
    """Add `user_id` to django.request's 403 records and drop a PermissionDenied traceback.

    Django logs a PermissionDenied raised by a view with its traceback, but a viewer
    posting to an archive page is an expected outcome, not a bug. The record keeps
    its WARNING level and its message, which names the path. `user_id` is None for
    an anonymous request. Attach it to the "django.request" logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) != HTTPStatus.FORBIDDEN:
            return True

        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        user = getattr(getattr(record, "request", None), "user", None)
        record.user_id = getattr(user, "pk", None)
        return True


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(ch.isspace() or ch in "\"=" for ch in text):
        return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text
