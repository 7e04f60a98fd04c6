"""CSRF stays on for cookie-authenticated writes on every route; token clients need none. Admin is staff-only.

The routes come from the permission matrix (itself checked against the URL resolver), so a new
route with a write method is checked here as soon as it is in the matrix.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from chat_sessions.models import ChatSession
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory
from deepsight.tests.security.conftest import world_create
from deepsight.tests.security.test_permission_matrix import MATRIX, UNSAFE, fill, snapshot

pytestmark = pytest.mark.django_db

WRITES = [
    pytest.param(route, method, id=f"{method.upper()} /{route}")
    for route, spec in MATRIX.items()
    for method in sorted(spec.allowed & UNSAFE)
    if not route.startswith("api/v1/auth/")  # DRF's login pages for the browsable API: Django's own views
]


@pytest.mark.parametrize(("route", "method"), WRITES)
def test_a_cookie_authenticated_write_without_the_csrf_token_is_refused(route, method, user):
    world = world_create(user)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get("/accounts/login/")  # a CSRF cookie, as a browser would hold, but no token sent
    before = snapshot(world)

    response = getattr(browser, method)(fill(route, world), {}, content_type="application/json")

    assert response.status_code == 403, response.content[:200]
    assert snapshot(world) == before


# The streaming send is left out: every send in chat_sessions/tests/test_streaming_live.py is a
# token client over a real socket, with no CSRF token.
TOKEN_WRITES = [w for w in WRITES if w.values[0].startswith("api/") and not MATRIX[w.values[0]].transactional]


@pytest.mark.parametrize(("route", "method"), TOKEN_WRITES)
def test_a_token_authenticated_write_needs_no_csrf_token(route, method, user, user_token):
    world = world_create(user)
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_token}")
    spec = MATRIX[route]

    response = getattr(client, method)(
        fill(route, world), spec.bodies.get(method, dict)(), format="json", HTTP_ACCEPT="application/json"
    )

    assert response.status_code != 403, response.content[:200]
    assert response.status_code < 500


def test_a_cookie_authenticated_write_with_the_csrf_token_is_accepted(user):
    notebook = NotebookFactory(owner=user)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    token = browser.get(f"/notebooks/{notebook.id}/").cookies["csrftoken"].value

    response = browser.post(
        f"/api/v1/notebooks/{notebook.id}/chat/sessions/", {}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )

    assert response.status_code == 201


@pytest.mark.django_db(transaction=True)  # the answer is generated and saved by another thread
def test_the_browsable_apis_html_forms_post_with_their_csrf_field_and_are_accepted(user):
    # Those forms send the token as a `csrfmiddlewaretoken` field beside the fields: the
    # strict serializers refused it as a field the client may not set, so no form could post.
    notebook = NotebookFactory(owner=user)
    session = ChatSessionFactory(container=notebook, created_by=user)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    token = browser.get("/api/v1/notebooks/", HTTP_ACCEPT="text/html").cookies["csrftoken"].value
    chat = f"/api/v1/notebooks/{notebook.id}/chat/sessions/"
    forms = [
        ("/api/v1/notebooks/", {"name": "From the form"}, 201),
        (f"/api/v1/notebooks/{notebook.id}/sources/", {"title": "Notes", "content": "Leaves are green."}, 201),
        (chat, {"title": "A tab from the form"}, 201),
        (f"{chat}{session.id}/messages/", {"message": "Hello from the form"}, 201),
    ]

    for url, fields, status in forms:
        response = browser.post(url, {**fields, "csrfmiddlewaretoken": token}, HTTP_ACCEPT="application/json")

        assert response.status_code == status, (url, response.content[:300])

    # Other methods carry the token in a header too (Django reads the field of a POST only); the
    # form's fields, the hidden token among them, still come as the body.
    renamed = browser.generic(
        "PATCH",
        f"{chat}{session.id}/",
        f"title=Renamed&csrfmiddlewaretoken={token}",
        content_type="application/x-www-form-urlencoded",
        HTTP_ACCEPT="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert renamed.status_code == 200, renamed.content[:300]
    assert renamed.json()["session"]["title"] == "Renamed"
    # Sent as JSON, the same name is still a field no client may set.
    refused = browser.post(
        chat, {"csrfmiddlewaretoken": token}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert refused.status_code == 400
    assert refused.json() == {"csrfmiddlewaretoken": ["This field cannot be set."]}


def test_staff_see_every_users_notebooks_and_sessions_in_the_admin_by_design(client, user, other_user, staff_user):
    mine = ChatSessionFactory(container=NotebookFactory(owner=user, name="Alpha notebook"), title="Alpha chat")
    theirs = ChatSessionFactory(container=NotebookFactory(owner=other_user, name="Beta notebook"), title="Beta chat")
    client.force_login(staff_user)

    notebooks = client.get("/admin/notebooks/notebook/").content.decode()
    sessions = client.get("/admin/chat_sessions/chatsession/").content.decode()
    detail = client.get(f"/admin/chat_sessions/chatsession/{theirs.pk}/change/")

    assert "Alpha notebook" in notebooks
    assert "Beta notebook" in notebooks
    assert "Alpha chat" in sessions
    assert "Beta chat" in sessions
    assert detail.status_code == 200
    assert mine.pk != theirs.pk


def test_users_never_see_others_sessions_anywhere_not_even_staff_through_the_api(
    user, other_user, staff_user, api_client
):
    theirs = ChatSessionFactory(container=NotebookFactory(owner=other_user), title="Beta chat")
    url = f"/api/v1/notebooks/{theirs.container_id}/chat/sessions/"

    for who in (user, staff_user):
        api_client.force_authenticate(who)
        assert api_client.get(url).status_code == 404
        assert api_client.get(f"{url}{theirs.id}/").status_code == 404
    assert ChatSession.objects.get(pk=theirs.pk).title == "Beta chat"


def test_a_staff_user_without_model_permissions_sees_no_sessions(client, other_user):
    from chat_sessions.tests.factories import UserFactory

    ChatSessionFactory(container=NotebookFactory(owner=other_user), title="Beta chat")
    clerk = UserFactory(is_staff=True)
    client.force_login(clerk)

    response = client.get("/admin/chat_sessions/chatsession/")

    assert response.status_code == 403
    assert b"Beta chat" not in response.content
