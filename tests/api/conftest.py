"""Fixtures for the REST API tests: users with tokens, and clients that send them."""

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from threads.services.users import archive_permission


@pytest.fixture(autouse=True)
def _throttle_counters_cleared():
    """Start each test with empty rate-limit counters (they live in the default cache)."""
    cache.clear()
    yield
    cache.clear()


def _user_with_token(django_user_model, *, username: str, can_archive: bool):
    user = django_user_model.objects.create_user(username=username, password="password-for-tests")
    if can_archive:
        user.user_permissions.add(archive_permission())
    token = Token.objects.create(user=user)
    return user, token.key


@pytest.fixture
def viewer(django_user_model):
    """A user without the archive permission, and its token."""
    return _user_with_token(django_user_model, username="viewer", can_archive=False)


@pytest.fixture
def archiver(django_user_model):
    """A user with `threads.archive_thread`, and its token."""
    return _user_with_token(django_user_model, username="archiver", can_archive=True)


@pytest.fixture
def anonymous_client():
    return APIClient()


@pytest.fixture
def viewer_client(viewer):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + viewer[1])
    return client


@pytest.fixture
def archiver_client(archiver):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + archiver[1])
    return client
