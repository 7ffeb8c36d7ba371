"""The `api_token` management command."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    from io import StringIO

    output = StringIO()
    call_command("api_token", *args, stdout=output)
    return output.getvalue().strip()


def test_api_token_creates_then_prints_same(django_user_model):
    user = django_user_model.objects.create_user(username="operator")

    first = _run("operator")
    second = _run("operator")

    assert first == Token.objects.get(user=user).key
    assert second == first


def test_api_token_reset_replaces_token(django_user_model):
    django_user_model.objects.create_user(username="operator")
    old = _run("operator")

    new = _run("operator", "--reset")

    assert new != old
    assert not Token.objects.filter(key=old).exists()


def test_api_token_unknown_user_fails():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        _run("ghost")


def test_api_token_works_as_credentials(client, django_user_model):
    django_user_model.objects.create_user(username="operator")
    key = _run("operator")

    response = client.get("/api/v1/sessions/", HTTP_AUTHORIZATION="Token " + key)

    assert response.status_code == 200
