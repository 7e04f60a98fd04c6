"""The notebook web pages: who may see them, and what their forms do (Django's test client)."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chat_sessions.tests.factories import NotebookFactory, SourceFactory
from notebooks.models import Notebook, Source

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def notebook(user):
    return NotebookFactory(owner=user, name="Mine")


def page_url(notebook):
    return reverse("notebook-page", kwargs={"notebook_id": notebook.pk})


def test_pages_ask_an_anonymous_visitor_to_log_in(client, notebook):
    for url in (reverse("notebook-list"), page_url(notebook)):
        response = client.get(url)

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_home_page_is_the_notebook_list(client_in, notebook):
    NotebookFactory(name="Not mine")

    response = client_in.get("/")

    assert reverse("notebook-list") == "/"
    assert response.status_code == 200
    assert [n.name for n in response.context["notebooks"]] == ["Mine"]


@pytest.mark.parametrize(
    ("name", "method", "data"),
    [
        ("notebook-page", "get", None),
        ("notebook-rename", "post", {"name": "Taken over"}),
        ("notebook-delete", "get", None),
        ("notebook-delete", "post", {}),
        ("source-add-text", "post", {"content": "Injected"}),
    ],
)
def test_another_users_notebook_is_not_found(client_in, name, method, data):
    foreign = NotebookFactory(name="Theirs")

    response = getattr(client_in, method)(reverse(name, kwargs={"notebook_id": foreign.pk}), data)

    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "Theirs"
    assert not foreign.sources.exists()


def test_another_users_source_cannot_be_removed(client_in, notebook):
    foreign = SourceFactory()

    url = reverse("source-delete", kwargs={"notebook_id": notebook.pk, "source_id": foreign.pk})
    response = client_in.post(url)

    assert response.status_code == 404
    assert Source.objects.filter(pk=foreign.pk).exists()


def test_the_notebook_page_points_the_chat_panel_at_its_api_and_sets_the_csrf_cookie(client_in, notebook):
    response = client_in.get(page_url(notebook))

    assert response.status_code == 200
    assert f'data-chat-sessions-url="/api/v1/notebooks/{notebook.pk}/chat/sessions/"' in response.text
    assert "csrftoken" in response.cookies
    scripts = re.findall(r"<script\b[^>]*>", response.text)
    assert scripts
    assert all(' src="/static/' in tag for tag in scripts)  # no inline script (CSP)
    assert re.search(r"\son[a-z]+\s*=", response.text) is None  # no inline event handler


def test_a_notebook_without_a_name_is_refused_with_the_reason(client_in):
    response = client_in.post(reverse("notebook-list"), {"name": "   "})

    assert response.status_code == 400
    assert "This field is required." in response.text
    assert not Notebook.objects.exists()


def test_pasting_blank_text_is_refused(client_in, notebook):
    response = client_in.post(reverse("source-add-text", kwargs={"notebook_id": notebook.pk}), {"content": "  \n "})

    assert response.status_code == 400
    assert "Paste some text first." in response.text
    assert not notebook.sources.exists()


def test_an_upload_of_a_type_we_do_not_take_is_refused_with_the_reason(client_in, notebook):
    upload = SimpleUploadedFile("tool.exe", b"MZ\x90\x00binary", content_type="application/octet-stream")

    response = client_in.post(reverse("source-add-file", kwargs={"notebook_id": notebook.pk}), {"file": upload})

    assert response.status_code == 400
    assert 'id="source-file-errors"' in response.text
    assert not notebook.sources.exists()


def test_rename_returns_only_to_a_page_of_this_site(client_in, notebook):
    url = reverse("notebook-rename", kwargs={"notebook_id": notebook.pk})

    inside = client_in.post(url, {"name": "Renamed", "next": "/"})
    outside = client_in.post(url, {"name": "Renamed again", "next": "https://evil.example/"})

    assert inside["Location"] == "/"
    assert outside["Location"] == page_url(notebook)
    notebook.refresh_from_db()
    assert notebook.name == "Renamed again"
