"""Output safety: user and model text, hostile on purpose, never runs wherever it is shown.

Every place that shows a notebook's name or description, a source's title, a session's title or a
message is loaded with every vector of `xss.py` at once, then parsed: the marker may appear as text
but never in executable position. The web pages, the browsable API, the admin (including its
rendered Markdown), the JSON API and the error pages are all covered. The chat panel renders
messages in the browser; its renderer is tested in Chromium (deepsight/tests/browser/test_safety.py).
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote

import pytest
from django.test import Client

from chat_sessions.models import Sender
from chat_sessions.rendering import ATTRIBUTES, TAGS, markdown_to_safe_html
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, NotebookFactory, SourceFactory
from deepsight.tests.security.xss import (
    ALL_VECTORS,
    HTML_VECTORS,
    MARK,
    MARKDOWN_VECTORS,
    MUTATION_VECTORS,
    elements,
    executable_markers,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def hostile(user):
    """One user's notebooks, sources, sessions and messages, named and filled with every vector."""
    notebooks = [NotebookFactory(owner=user, name=vector[:200], description=vector) for vector in ALL_VECTORS]
    first = notebooks[0]
    for vector in ALL_VECTORS:
        SourceFactory(notebook=first, title=vector[:255], content=vector)
    session = ChatSessionFactory(container=first, created_by=user, title=ALL_VECTORS[0][:200])
    order = 0
    for vector in ALL_VECTORS:
        ChatSessionFactory(container=first, created_by=user, title=vector[:200])
        MessageFactory(session=session, sender=Sender.USER, message=vector, message_order=(order := order + 1))
        MessageFactory(session=session, sender=Sender.ASSISTANT, message=vector, message_order=(order := order + 1))
    session.message_count = order
    session.save(update_fields=["message_count"])
    return {"notebook": first, "session": session}


def assert_nothing_runs(response) -> None:
    page = response.content.decode()
    assert response.status_code == 200, response.status_code
    assert MARK in page or html.escape(MARK) in page, "the hostile text is not on the page: the check proves nothing"
    findings = executable_markers(page)
    assert not findings, f"{response.request['PATH_INFO']}: {findings[:5]}"


def test_the_detector_sees_every_vector_that_is_not_escaped():
    for vector in HTML_VECTORS:
        assert executable_markers(f"<html><body><p>{vector}</p></body></html>"), vector
        assert not executable_markers(f"<html><body><p>{html.escape(vector)}</p></body></html>"), vector


def test_the_web_pages_show_hostile_names_as_text(client, user, hostile):
    notebook = hostile["notebook"]
    client.force_login(user)

    for url in ("/", f"/notebooks/{notebook.id}/", f"/notebooks/{notebook.id}/delete/"):
        assert_nothing_runs(client.get(url))


def test_a_refused_form_echoes_hostile_input_as_text(client, user, hostile):
    notebook = hostile["notebook"]
    client.force_login(user)

    for vector in HTML_VECTORS:
        response = client.post(f"/notebooks/{notebook.id}/rename/", {"name": vector + "x" * 300})
        assert response.status_code == 400
        assert not executable_markers(response.content.decode()), vector


def test_the_login_page_does_not_reflect_a_hostile_next_address(client):
    for vector in HTML_VECTORS:
        response = client.get(f"/accounts/login/?next={quote(vector)}")
        assert not executable_markers(response.content.decode()), vector


def test_the_browsable_api_shows_hostile_text_as_text(client, user, hostile):
    notebook, session = hostile["notebook"], hostile["session"]
    client.force_login(user)
    chat = f"/api/v1/notebooks/{notebook.id}/chat/sessions/"
    urls = [
        "/api/v1/notebooks/",
        f"/api/v1/notebooks/{notebook.id}/",
        f"/api/v1/notebooks/{notebook.id}/sources/",
        chat,
        f"{chat}{session.id}/",
        f"{chat}{session.id}/messages/?page_size=100",
    ]

    for url in urls:
        assert_nothing_runs(client.get(url, HTTP_ACCEPT="text/html"))


def test_the_admin_shows_hostile_text_as_text(client, staff_user, hostile):
    notebook, session = hostile["notebook"], hostile["session"]
    message = session.messages.order_by("message_order").last()
    client.force_login(staff_user)
    urls = [
        "/admin/notebooks/notebook/",
        f"/admin/notebooks/notebook/{notebook.pk}/change/",
        "/admin/notebooks/source/",
        "/admin/chat_sessions/chatsession/",
        f"/admin/chat_sessions/chatsession/{session.pk}/change/",
        "/admin/chat_sessions/sessionchatmessage/",
        f"/admin/chat_sessions/sessionchatmessage/{message.pk}/change/",
        f"/admin/chat_sessions/chatsession/?q={quote(HTML_VECTORS[0])}",
    ]

    for url in urls:
        assert_nothing_runs(client.get(url))


def test_every_message_is_rendered_safely_on_its_admin_page(client, staff_user, hostile):
    client.force_login(staff_user)

    for message in hostile["session"].messages.all():
        page = client.get(f"/admin/chat_sessions/sessionchatmessage/{message.pk}/change/").content.decode()
        assert not executable_markers(page), message.message


@pytest.mark.parametrize("vector", ALL_VECTORS)
def test_the_server_side_markdown_renderer_keeps_only_safe_markup(vector):
    rendered = markdown_to_safe_html(vector)

    assert not executable_markers(rendered)
    for tag, attributes in elements(rendered):
        assert tag in TAGS, rendered
        assert set(attributes) <= ATTRIBUTES.get(tag, set()) | {"rel"}, rendered
        for value in attributes.values():
            assert "javascript" not in value.lower(), rendered


def test_markdown_keeps_its_useful_formatting():
    rendered = markdown_to_safe_html("**bold** [site](https://example.org) `x < y`\n\n- item")

    assert "<strong>bold</strong>" in rendered
    assert '<a href="https://example.org" rel="noopener noreferrer nofollow">site</a>' in rendered
    assert "<code>x &lt; y</code>" in rendered
    assert "<li>item</li>" in rendered


def test_markdown_links_only_go_to_web_or_mail_addresses():
    for vector in MARKDOWN_VECTORS:
        assert "href" not in markdown_to_safe_html(vector), vector
    assert "href" in markdown_to_safe_html("[write](mailto:someone@example.org)")


def test_mutation_vectors_leave_no_element_with_a_handler():
    for vector in MUTATION_VECTORS:
        rendered = markdown_to_safe_html(vector)
        assert all(not name.startswith("on") for _, attributes in elements(rendered) for name in attributes), rendered
        assert all(tag in TAGS for tag, _ in elements(rendered)), rendered


def test_the_json_api_serves_hostile_text_as_json_never_as_a_page(client, user, hostile):
    notebook, session = hostile["notebook"], hostile["session"]
    client.force_login(user)

    response = client.get(f"/api/v1/notebooks/{notebook.id}/chat/sessions/{session.id}/messages/?page_size=100")

    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    texts = [message["message"] for message in response.json()["messages"]]
    assert set(texts) == set(ALL_VECTORS)  # stored and returned raw: escaping is the renderer's job


def test_error_pages_do_not_reflect_the_address(client, user):
    client.force_login(user)
    for vector in HTML_VECTORS[:10]:
        for prefix in ("/notebooks/", "/api/v1/notebooks/", "/admin/"):
            response = Client().get(prefix + quote(vector) + "/")
            assert not executable_markers(response.content.decode()), (prefix, vector)
            if response.get("Content-Type", "").startswith("application/json"):
                json.loads(response.content)
