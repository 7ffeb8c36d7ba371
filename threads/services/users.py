"""Users and permissions the dashboard sets up for itself."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction


def archive_permission() -> Permission:
    """Return the permission that allows archiving threads (`threads.archive_thread`)."""
    return Permission.objects.get(content_type__app_label="threads", codename="archive_thread")


@transaction.atomic
def demo_users_ensure(
    *, archiver_username: str, archiver_password: str, viewer_username: str, viewer_password: str
) -> None:
    """Create or reset two demo users: one with the archive permission, one without.

    Idempotent: running it again resets both passwords and permissions.
    """
    User = get_user_model()

    archiver, _ = User.objects.get_or_create(username=archiver_username)
    archiver.set_password(archiver_password)
    archiver.is_staff = True
    archiver.save()
    archiver.user_permissions.add(archive_permission())

    viewer, _ = User.objects.get_or_create(username=viewer_username)
    viewer.set_password(viewer_password)
    viewer.is_staff = False
    viewer.save()
    viewer.user_permissions.remove(archive_permission())
