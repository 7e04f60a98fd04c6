"""The notebook pages in a real browser: log in and out, notebooks, sources."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chat_sessions.tests.factories import NotebookFactory
from deepsight.tests.browser.conftest import PASSWORD
from notebooks.models import Notebook, Source

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_log_in_see_notebooks_and_log_out(page, user):
    NotebookFactory(owner=user, name="Mine")
    NotebookFactory(name="Someone else's")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))

    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Your notebooks")).to_be_visible()
    expect(page.get_by_role("link", name="Mine", exact=True)).to_be_visible()
    expect(page.get_by_text("Someone else's")).to_have_count(0)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to deepsight")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_create_rename_and_delete_a_notebook(logged_in):
    page = logged_in
    page.get_by_label("Name").fill("Cell biology")
    page.get_by_role("button", name="Create notebook").click()

    expect(page.get_by_role("heading", name="Cell biology", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Start chat")).to_be_visible()
    notebook = Notebook.objects.get(name="Cell biology")

    page.get_by_text("Rename notebook").click()
    page.get_by_label("Notebook name").fill("Cell biology II")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Cell biology II", level=1)).to_be_visible()
    expect(page.get_by_text("Notebook renamed.")).to_be_visible()

    page.get_by_role("link", name="Notebooks").click()
    page.get_by_role("link", name="Delete Cell biology II").click()
    expect(page.get_by_role("heading", name="Delete “Cell biology II”?")).to_be_visible()
    page.get_by_role("button", name="Delete notebook").click()

    expect(page.get_by_role("heading", name="Your notebooks")).to_be_visible()
    expect(page.get_by_text("Notebook “Cell biology II” deleted.")).to_be_visible()
    assert not Notebook.objects.filter(pk=notebook.pk).exists()


def test_add_sources_by_pasting_and_uploading_and_see_their_status(logged_in, notebook, tmp_path):
    page = logged_in
    page.goto(f"/notebooks/{notebook.pk}/")
    expect(page.get_by_text("No sources yet.")).to_be_visible()

    page.get_by_label("Title (optional)").fill("Lecture notes")
    page.get_by_label("Text", exact=True).fill("Mitochondria make ATP by oxidative phosphorylation.")
    page.get_by_role("button", name="Add text").click()

    sources = page.get_by_role("region", name="Sources").get_by_role("listitem")
    expect(sources).to_have_count(1)
    expect(sources.first).to_contain_text("Lecture notes")
    expect(sources.first).to_contain_text("Ready")

    upload = tmp_path / "ribosomes.md"
    upload.write_text("# Ribosomes\n\nRibosomes translate messenger RNA into proteins.\n")
    page.get_by_text("Upload a file").click()
    page.get_by_label("File", exact=True).set_input_files(str(upload))
    page.get_by_role("button", name="Upload").click()
    expect(sources).to_have_count(2)
    expect(sources.first).to_contain_text("ribosomes.md")
    expect(sources.first).to_contain_text("uploaded file")

    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ\x90\x00binary")
    page.get_by_text("Upload a file").click()
    page.get_by_label("File", exact=True).set_input_files(str(bad))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#source-file-errors")).to_be_visible()
    assert Source.objects.filter(notebook=notebook).count() == 2

    page.get_by_role("button", name="Remove source Lecture notes").click()
    expect(sources).to_have_count(1)
    assert list(Source.objects.values_list("title", flat=True)) == ["ribosomes.md"]

    # The chat answers from what was added.
    page.get_by_role("button", name="Start chat").click()
    page.get_by_role("textbox", name="Message").fill("What do ribosomes translate?")
    page.get_by_role("textbox", name="Message").press("Enter")
    expect(page.locator(".chat-msg-assistant blockquote")).to_contain_text("messenger RNA")
