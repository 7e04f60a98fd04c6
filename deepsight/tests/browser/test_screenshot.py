"""A screenshot of the chat panel, kept as a test artifact (and, once checked, for the README)."""

from __future__ import annotations

import struct

import pytest
from playwright.sync_api import expect

from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, SourceFactory
from deepsight.tests.browser.conftest import ARTIFACTS, active_tab, answers, open_notebook, send

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOTES = (
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make "
    "glucose and release oxygen. It happens in the chloroplasts, where chlorophyll absorbs mostly blue and "
    "red light.\n\n"
    "The light-dependent reactions split water and make ATP and NADPH. The Calvin cycle then uses them to fix "
    "carbon dioxide into sugars."
)


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_screenshot_of_the_chat_panel(logged_in, notebook):
    SourceFactory(notebook=notebook, title="Photosynthesis notes", content=NOTES, size=len(NOTES))
    SourceFactory(notebook=notebook, title="Leaf anatomy.pdf", kind="file", size=48_213, content="Stomata.")
    earlier = ChatSessionFactory(container=notebook, created_by=notebook.owner, title="Calvin cycle")
    MessageFactory(session=earlier, sender="user", message="What fixes carbon?", message_order=1)
    MessageFactory(session=earlier, sender="assistant", message="The Calvin cycle.", message_order=2)
    ChatSessionFactory(container=notebook, created_by=notebook.owner, title="Leaf structure")
    page = open_notebook(logged_in, notebook)
    page.get_by_role("button", name="New chat").click()

    send(page, "Where does photosynthesis happen, and what does chlorophyll absorb?")

    expect(answers(page).last).to_have_attribute("data-status", "complete")
    expect(active_tab(page)).to_have_text("Where does photosynthesis happen")  # the heuristic title (no LLM)
    expect(page.get_by_role("tab", name="Leaf structure")).to_be_visible()
    page.get_by_role("textbox", name="Message").blur()
    page.mouse.move(0, 400)  # no hover effect in the picture
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "chat-panel.png"
    page.screenshot(path=str(path))
    assert png_size(path) == (1280, 800)
