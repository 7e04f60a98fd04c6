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


def test_a_sources_parse_status_updates_without_a_reload_and_polling_stops_when_all_are_settled(
    logged_in, notebook, settings
):
    from chat_sessions.tests.factories import SourceFactory

    settings.SOURCE_STATUS_POLL_SECONDS = 0.2
    page = logged_in
    reading = SourceFactory(notebook=notebook, title="Field notes", parse_status="parsing", parse_progress=0.4)
    failing = SourceFactory(notebook=notebook, title="Scanned page", parse_status="pending")
    leaving = SourceFactory(notebook=notebook, title="Old draft", parse_status="deleting")
    SourceFactory(notebook=notebook, title="Settled", parse_status="ready")
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/api/v1/" in request.url else None)
    page.goto(f"/notebooks/{notebook.pk}/")
    items = page.get_by_role("region", name="Sources").get_by_role("listitem")

    def item(title):
        return items.filter(has_text=title)

    expect(item("Field notes")).to_contain_text("Parsing 40%")
    expect(item("Scanned page")).to_contain_text("Pending")

    Source.objects.filter(pk=reading.pk).update(parse_progress=0.7)
    expect(item("Field notes")).to_contain_text("Parsing 70%")

    Source.objects.filter(pk=failing.pk).update(parse_status="error", last_error="RAGFlow could not read this file.")
    Source.objects.filter(pk=leaving.pk).delete()
    expect(item("Scanned page")).to_contain_text("Error")
    expect(item("Scanned page")).to_contain_text("RAGFlow could not read this file.")
    expect(item("Old draft")).to_have_count(0)
    expect(page.locator(".sources .count-badge")).to_have_text("3")

    Source.objects.filter(pk=reading.pk).update(parse_status="ready", parse_progress=1.0)
    expect(item("Field notes")).to_contain_text("Ready")
    expect(item("Field notes")).not_to_contain_text("%")
    source_polls = [url for url in polls if "/sources/" in url]
    assert source_polls, "the statuses came from the API"
    assert not any(str(source.pk) in url for url in source_polls for source in Source.objects.filter(title="Settled"))
    settled_at = len(source_polls)
    page.wait_for_timeout(1000)  # five intervals: nothing is unsettled, so nothing more is asked
    assert len([url for url in polls if "/sources/" in url]) == settled_at


def test_a_page_message_does_not_cover_the_chat_and_goes_away(logged_in, notebook):
    # "Source … added." stayed until the next page load, fixed over the composer's Send and Stop.
    page = logged_in
    page.goto(f"/notebooks/{notebook.pk}/")
    page.get_by_label("Text", exact=True).fill("Mitochondria make ATP.")
    page.get_by_role("button", name="Add text").click()
    added = page.get_by_role("status").get_by_text(re.compile("^Source “.*” added\\.$"))
    expect(added).to_be_visible()

    page.get_by_role("button", name="Start chat").click()
    page.get_by_role("textbox", name="Message").fill("What makes ATP?")
    send = page.get_by_role("button", name="Send message")
    expect(send).to_be_enabled()
    hit = send.evaluate(
        "(button) => { const r = button.getBoundingClientRect();"
        " return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)?.closest('button') === button; }"
    )
    assert hit, "a click on Send lands on something over it"
    expect(added).to_have_count(0, timeout=10_000)  # a success goes away by itself

    page.get_by_text("Paste text").click()  # folded once the notebook has sources
    page.get_by_label("Text", exact=True).fill("Ribosomes make proteins.")
    page.get_by_role("button", name="Add text").click()
    expect(added).to_be_visible()
    page.get_by_role("button", name="Dismiss").click()
    expect(added).to_have_count(0, timeout=1_000)
