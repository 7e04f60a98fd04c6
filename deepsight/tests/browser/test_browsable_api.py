"""The browsable API in a real browser: its HTML forms show what a client may send, and post it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chat_sessions.models import ChatSession
from notebooks.models import Notebook

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def post_form(page, fields: dict[str, str]) -> None:
    form = page.locator("#post-object-form")
    for name, value in fields.items():
        form.locator(f"[name={name}]").fill(value)
    form.get_by_role("button", name="POST").click()


def test_the_html_forms_create_a_notebook_and_then_a_session_in_it(logged_in, user):
    # The forms showed no fields (the views' read serializers), and what they posted, the CSRF
    # field among them, was refused as a field no client may set.
    page = logged_in
    page.goto("/api/v1/notebooks/")
    post_form(page, {"name": "From the browsable API", "description": "Made with its form"})

    expect(page.locator(".response-info")).to_contain_text("HTTP 201 Created")
    notebook = Notebook.objects.get(owner=user, name="From the browsable API")
    assert notebook.description == "Made with its form"

    page.goto(f"/api/v1/notebooks/{notebook.id}/chat/sessions/")
    post_form(page, {"title": "A tab from the form"})

    expect(page.locator(".response-info")).to_contain_text("HTTP 201 Created")
    assert list(ChatSession.objects.filter(container_id=notebook.id).values_list("title", flat=True)) == [
        "A tab from the form"
    ]
