"""Who may use which API endpoint: the same rules as the pages."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

ARCHIVE_PERMISSION = "threads.archive_thread"


class CanArchiveThreads(BasePermission):
    """Allow reads to any logged-in user and writes only with `threads.archive_thread`."""

    message = (
        "Archiving threads needs the threads.archive_thread permission. "
        "Ask an administrator to grant it to your user."
    )

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return request.user.has_perm(ARCHIVE_PERMISSION)
