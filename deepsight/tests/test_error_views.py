"""Errors Django answers itself are JSON under the API, like the API's own, and pages elsewhere."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

import notebooks.views
from notebooks.api.views import NotebookViewSet

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nowhere/", "/api/v1/notebooks/not-a-uuid/", "/api/v1/notebooks/not-a-uuid/chat/sessions/"],
)
def test_an_api_url_that_matches_no_route_is_a_json_404(owner_client, path):
    response = owner_client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_page_that_does_not_exist_is_still_an_html_404(client):
    response = client.get("/nowhere/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_uncaught_error_in_the_api_is_a_json_500_that_tells_nothing(user, monkeypatch):
    def broken(self, request, *args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(NotebookViewSet, "list", broken)
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(user)

    response = api.get("/api/v1/notebooks/")

    assert response.status_code == 500
    assert response.json() == {"detail": "A server error occurred."}
    assert b"secret" not in response.content


def test_an_uncaught_error_in_a_page_is_still_an_html_500(client, user, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(notebooks.views.selectors, "notebook_list", broken)
    client.force_login(user)
    client.raise_request_exception = False

    response = client.get("/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert b"secret" not in response.content
