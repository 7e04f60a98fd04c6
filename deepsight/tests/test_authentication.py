"""API tokens: DRF's rules, read in one query (deepsight/authentication.py).

A refused or missing token is a 401 naming the `Token` scheme, with DRF's message: token
authentication comes first in `DEFAULT_AUTHENTICATION_CLASSES`, and DRF takes the scheme from the
first class (session authentication names none, which would make it a 403).
"""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

NOTEBOOKS = "/api/v1/notebooks/"


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_valid_token_authenticates_its_user_in_one_query(user, user_token, django_assert_num_queries):
    from rest_framework.test import APIRequestFactory

    from deepsight.authentication import TokenAuthentication

    http = APIRequestFactory().get(NOTEBOOKS, HTTP_AUTHORIZATION=f"Token {user_token}")

    with django_assert_num_queries(1):
        authenticated, token = TokenAuthentication().authenticate(http)

    stored = Token.objects.get(key=user_token)
    read_by_the_orm = type(user).objects.get(pk=user.pk)
    for field in type(user)._meta.concrete_fields:  # every column, converted as the ORM converts it
        assert getattr(authenticated, field.attname) == getattr(read_by_the_orm, field.attname), field.name
    assert authenticated._state.adding is False
    assert (token.key, token.user_id, token.created) == (stored.key, stored.user_id, stored.created)
    assert token.user is authenticated


def test_the_api_answers_a_token_user_and_refuses_an_unknown_token(user, user_token):
    assert client_with(user_token).get(NOTEBOOKS).status_code == 200

    response = client_with("0" * 40).get(NOTEBOOKS)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Invalid token."}


def test_an_inactive_users_token_is_refused(user, user_token):
    user.is_active = False
    user.save()

    response = client_with(user_token).get(NOTEBOOKS)

    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


def test_a_deleted_token_stops_working_at_once(user, user_token):
    Token.objects.filter(key=user_token).delete()

    assert client_with(user_token).get(NOTEBOOKS).status_code == 401
