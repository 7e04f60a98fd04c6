"""The chat panel in a real browser: tabs, streaming answers, stop, resume, two browser tabs."""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from chat_sessions.models import ChatSession, MessageStatus, SessionChatMessage, SessionStatus
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, SourceFactory
from deepsight.tests.browser.conftest import (
    active_tab,
    answers,
    chat_tabs,
    messages,
    open_notebook,
    send,
    tab_named,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHOTOSYNTHESIS = (
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make "
    "glucose and release oxygen. It happens in the chloroplasts, where chlorophyll absorbs mostly blue and "
    "red light. The light-dependent reactions split water and make ATP and NADPH; the Calvin cycle then uses "
    "them to fix carbon dioxide into sugars that the plant stores as starch or burns for energy."
)


@pytest.fixture
def source(notebook):
    return SourceFactory(notebook=notebook, title="Plant notes", content=PHOTOSYNTHESIS)


@pytest.fixture
def slow_agent(settings):
    """The offline agent, slow enough for the browser to watch the answer arrive."""
    settings.LOCAL_AGENT_TOKEN_DELAY = 0.06
    return settings


def session_with_messages(notebook, title, texts):
    session = ChatSessionFactory(container=notebook, created_by=notebook.owner, title=title)
    for order, text in enumerate(texts, start=1):
        MessageFactory(session=session, sender="user" if order % 2 else "assistant", message=text, message_order=order)
    ChatSession.objects.filter(pk=session.pk).update(message_count=len(texts))
    return session


def test_first_chat_from_the_welcome_screen(logged_in, notebook, source):
    page = open_notebook(logged_in, notebook)
    expect(page.get_by_role("heading", name="Start your first chat")).to_be_visible()
    expect(chat_tabs(page)).to_have_count(0)

    page.get_by_role("button", name="Start chat").click()

    expect(chat_tabs(page)).to_have_count(1)
    expect(active_tab(page)).to_have_text("New Chat")
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_be_focused()
    send(page, "What is photosynthesis?")
    expect(messages(page).first).to_contain_text("What is photosynthesis?")
    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "complete")
    expect(answer.locator(".chat-markdown blockquote")).to_contain_text("chloroplasts")
    citations = answer.get_by_role("region", name="Sources")
    expect(citations).to_contain_text("Plant notes")
    expect(citations.locator("li")).to_have_count(1)
    # The auto-title replaces "New Chat" on the tab without a reload.
    expect(active_tab(page)).to_have_text("Photosynthesis")
    expect(page.get_by_role("heading", name="Photosynthesis", level=2)).to_be_visible()
    assert SessionChatMessage.objects.filter(session__container=notebook).count() == 2


def test_answer_streams_in_pieces_and_shift_enter_makes_a_new_line(logged_in, notebook, source, slow_agent):
    page = open_notebook(logged_in, notebook)
    page.get_by_role("button", name="Start chat").click()
    box = page.get_by_role("textbox", name="Message")
    one_row = box.bounding_box()["height"]
    box.type("Where does photosynthesis happen?")
    box.press("Shift+Enter")
    box.type("And what does chlorophyll absorb?")
    expect(box).to_have_value("Where does photosynthesis happen?\nAnd what does chlorophyll absorb?")
    assert one_row >= 28  # a whole line of text fits
    assert box.bounding_box()["height"] > one_row * 1.5  # the box grew with the second line
    expect(messages(page)).to_have_count(0)
    page.evaluate(
        """() => {
          window.answerLengths = [];
          const list = document.querySelector('.chat-messages');
          new MutationObserver(() => {
            const answer = list.querySelector('.chat-msg-assistant .chat-markdown');
            if (answer) window.answerLengths.push(answer.textContent.length);
          }).observe(list, {subtree: true, childList: true, characterData: true});
        }"""
    )

    box.press("Enter")

    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(page.get_by_role("button", name="Stop generating")).to_be_visible()
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(page.get_by_role("button", name="Send message")).to_be_visible()
    lengths = page.evaluate("window.answerLengths")
    distinct = sorted(set(lengths))
    assert len(distinct) >= 10, f"the answer arrived in {len(distinct)} pieces: {distinct}"
    assert distinct[0] < distinct[-1] / 4
    user_message = messages(page).first.locator(".chat-msg-body")
    expect(user_message).to_have_text("Where does photosynthesis happen?\nAnd what does chlorophyll absorb?")


def test_what_is_typed_right_after_new_chat_goes_to_the_new_chat(logged_in, notebook, source):
    older = session_with_messages(notebook, "Older chat", ["Earlier question", "Earlier answer"])
    page = open_notebook(logged_in, notebook)
    box = page.get_by_role("textbox", name="Message")
    box.fill("A draft for the older chat")

    page.get_by_role("button", name="New chat").click()
    send(page, "Where is chlorophyll?")  # at once, while the new chat is being created

    expect(chat_tabs(page)).to_have_count(2)
    expect(messages(page).first).to_contain_text("Where is chlorophyll?")
    expect(answers(page).last).to_have_attribute("data-status", "complete")
    assert older.messages.count() == 2
    tab_named(page, "Older chat").click()
    expect(box).to_have_value("A draft for the older chat")  # each tab keeps its own draft


THROTTLED_SESSION_CREATE = """
const fetch = window.fetch.bind(window);
window.fetch = async (url, init = {}) => {
  if (init.method === "POST" && /chat\\/sessions\\/$/.test(String(url))) {
    await new Promise((done) => setTimeout(done, 600));  // long enough to type into the new chat
    const detail = "Request was throttled. Expected available in 26 seconds.";
    return new Response(JSON.stringify({ detail }), { status: 429, headers: { "Content-Type": "application/json" } });
  }
  return fetch(url, init);
};
"""


def test_a_new_chat_that_cannot_be_opened_gives_back_the_draft_and_sends_nothing(logged_in, notebook, source):
    older = session_with_messages(notebook, "Older chat", ["Earlier question", "Earlier answer"])
    page = open_notebook(logged_in, notebook)
    box = page.get_by_role("textbox", name="Message")
    box.fill("my precious draft")

    page.evaluate(THROTTLED_SESSION_CREATE)
    page.get_by_role("button", name="New chat").click()
    page.keyboard.type("for the new chat")
    page.keyboard.press("Enter")

    expect(page.get_by_role("alert")).to_contain_text("Request was throttled")
    expect(box).to_have_value("my precious draft\n\nfor the new chat")
    expect(chat_tabs(page)).to_have_count(1)
    time.sleep(0.3)
    assert older.messages.count() == 2  # nothing went to the chat shown


SLOW_SESSION_CREATE = """
const fetch = window.fetch.bind(window);
window.fetch = async (url, init = {}) => {
  const creating = init.method === "POST" && /chat\\/sessions\\/$/.test(String(url));
  if (creating) await new Promise((done) => setTimeout(done, 600));
  return fetch(url, init);
};
"""


@pytest.mark.parametrize("button", ["New chat", "Start chat"])
def test_keys_typed_while_a_new_chat_is_being_created_are_its_first_message(logged_in, notebook, source, button):
    # A user clicks and types at once; on a real network the new chat takes a moment to exist.
    # Disabling the clicked button dropped the keyboard's focus: the first keys (all of them,
    # with 400 ms of latency) went nowhere.
    if button == "New chat":
        session_with_messages(notebook, "Older chat", ["Earlier question", "Earlier answer"])
    logged_in.add_init_script(SLOW_SESSION_CREATE)
    page = open_notebook(logged_in, notebook)

    page.get_by_role("button", name=button).click()
    page.keyboard.type("Where is chlorophylx")
    page.keyboard.press("Backspace")
    page.keyboard.type("l?")
    page.keyboard.press("Enter")

    expect(chat_tabs(page)).to_have_count(2 if button == "New chat" else 1)
    expect(answers(page).last).to_have_attribute("data-status", "complete")
    expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    asked = SessionChatMessage.objects.filter(sender="user").exclude(session__title="Older chat")
    assert list(asked.values_list("message", flat=True)) == ["Where is chlorophyll?"]


def test_switching_tabs_keeps_each_history_and_loads_older_pages_on_scroll(logged_in, notebook):
    long = session_with_messages(notebook, "Long chat", [f"Long message {n}" for n in range(1, 71)])
    short = session_with_messages(notebook, "Short chat", ["Short question", "Short answer"])
    page = open_notebook(logged_in, notebook)

    # Most recent first: the short chat was active last.
    expect(chat_tabs(page)).to_have_text(["Short chat", "Long chat"])
    expect(active_tab(page)).to_have_text("Short chat")
    expect(messages(page)).to_have_text([re.compile("Short question"), re.compile("Short answer")])

    tab_named(page, "Long chat").click()
    expect(active_tab(page)).to_have_text("Long chat")
    expect(messages(page)).to_have_count(50)
    expect(messages(page).last).to_contain_text("Long message 70")
    expect(page.get_by_text("Short question")).to_have_count(0)
    # Newest at the bottom, scrolled there.
    expect(messages(page).last).to_be_in_viewport()

    page.locator(".chat-scroll").evaluate("element => { element.scrollTop = 0; }")
    expect(messages(page)).to_have_count(70)
    expect(messages(page).first).to_contain_text("Long message 1")
    expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()

    tab_named(page, "Short chat").click()
    expect(messages(page)).to_have_count(2)
    expect(page.get_by_text("Long message 70")).to_have_count(0)
    assert {long.pk, short.pk} == set(ChatSession.objects.values_list("pk", flat=True))


def test_close_a_tab_then_reopen_it_from_closed_chats(logged_in, notebook):
    first = session_with_messages(notebook, "First chat", ["Hello first", "Hi"])
    session_with_messages(notebook, "Second chat", ["Hello second", "Hi"])
    session_with_messages(notebook, "Third chat", ["Hello third", "Hi"])
    page = open_notebook(logged_in, notebook)
    expect(chat_tabs(page)).to_have_text(["Third chat", "Second chat", "First chat"])
    tab_named(page, "Second chat").click()

    page.get_by_role("button", name="Close chat Second chat").click()

    expect(chat_tabs(page)).to_have_text(["Third chat", "First chat"])
    expect(active_tab(page)).to_have_text("First chat")  # the next tab becomes active
    expect(messages(page).first).to_contain_text("Hello first")
    page.get_by_role("button", name="Closed chats").click()
    reopen = page.get_by_role("button", name="Reopen chat Second chat")
    expect(reopen).to_be_visible()

    reopen.click()

    expect(chat_tabs(page)).to_have_text(["Second chat", "Third chat", "First chat"])
    expect(active_tab(page)).to_have_text("Second chat")
    expect(messages(page).first).to_contain_text("Hello second")
    assert not ChatSession.objects.filter(status=SessionStatus.CLOSED).exists()

    # Closing every tab brings the welcome screen back.
    for title in ("Second chat", "Third chat", "First chat"):
        page.get_by_role("button", name=f"Close chat {title}").click()
    expect(chat_tabs(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Start chat")).to_be_visible()
    assert ChatSession.objects.get(pk=first.pk).status == SessionStatus.CLOSED


def test_closed_chats_come_a_page_at_a_time_and_can_be_searched(logged_in, notebook):
    now = timezone.now()
    titles = [f"Closed chat {number:02d}" for number in range(1, 25)] + ["Budget review"]
    for age, title in enumerate(titles):  # "Closed chat 01" closed last, "Budget review" first
        ChatSessionFactory(
            container=notebook,
            title=title,
            status=SessionStatus.CLOSED,
            last_activity=now - timedelta(minutes=age + 1),
            ended_at=now - timedelta(minutes=age + 1),
        )
    page = open_notebook(logged_in, notebook)
    expect(page.get_by_role("heading", name="Start your first chat")).to_be_visible()
    popover = page.get_by_role("region", name="Closed chats")
    reopen_buttons = popover.get_by_role("button", name=re.compile("^Reopen chat "))

    page.get_by_role("button", name="Closed chats").click()

    expect(reopen_buttons).to_have_count(20)
    expect(reopen_buttons.first).to_have_accessible_name("Reopen chat Closed chat 01")
    expect(popover.get_by_text("Budget review")).to_have_count(0)
    popover.get_by_role("button", name="Show more").click()
    expect(reopen_buttons).to_have_count(25)
    expect(reopen_buttons.last).to_have_accessible_name("Reopen chat Budget review")
    expect(reopen_buttons.nth(20)).to_be_focused()  # the keyboard goes on where the new ones start
    expect(popover.get_by_role("button", name="Show more")).to_be_hidden()
    page.wait_for_timeout(4500)  # the panel's poll refreshes an open list without shrinking it
    expect(reopen_buttons).to_have_count(25)
    if os.environ.get("DEEPSIGHT_SHOT"):
        page.screenshot(path=os.environ["DEEPSIGHT_SHOT"])

    search = popover.get_by_role("searchbox", name="Search closed chats")
    search.fill("zebra")
    expect(popover.get_by_text("No closed chats match “zebra”.")).to_be_visible()
    expect(reopen_buttons).to_have_count(0)
    search.fill("BUDGET")
    expect(reopen_buttons).to_have_count(1)
    reopen_buttons.first.click()

    expect(chat_tabs(page)).to_have_text(["Budget review"])
    expect(active_tab(page)).to_have_text("Budget review")
    assert ChatSession.objects.get(title="Budget review").status == SessionStatus.ACTIVE
    page.get_by_role("button", name="Closed chats").click()  # reopened empty, for a fresh look
    expect(search).to_have_value("")
    expect(reopen_buttons).to_have_count(20)


def test_a_closed_chats_list_shown_past_the_apis_largest_page_is_not_cut_back_by_the_poll(logged_in, notebook):
    now = timezone.now()
    for age in range(110):
        ChatSessionFactory(
            container=notebook,
            title=f"Closed chat {age + 1:03d}",
            status=SessionStatus.CLOSED,
            last_activity=now - timedelta(minutes=age + 1),
            ended_at=now - timedelta(minutes=age + 1),
        )
    page = open_notebook(logged_in, notebook)
    popover = page.get_by_role("region", name="Closed chats")
    reopen_buttons = popover.get_by_role("button", name=re.compile("^Reopen chat "))
    page.get_by_role("button", name="Closed chats").click()
    for shown in (40, 60, 80, 100, 110):
        popover.get_by_role("button", name="Show more").click()
        expect(reopen_buttons).to_have_count(shown)

    page.wait_for_timeout(4500)  # a poll: it reads the 110 shown in two requests, not the first 100

    expect(reopen_buttons).to_have_count(110)
    expect(reopen_buttons.last).to_have_accessible_name("Reopen chat Closed chat 110")
    expect(popover.get_by_role("button", name="Show more")).to_be_hidden()


def test_rename_by_double_click_and_by_button_and_pin(logged_in, notebook):
    session_with_messages(notebook, "Old title", ["Question", "Answer"])
    other = session_with_messages(notebook, "Other chat", ["Q", "A"])
    page = open_notebook(logged_in, notebook)
    expect(chat_tabs(page)).to_have_text(["Other chat", "Old title"])

    tab_named(page, "Old title").dblclick()
    title_box = page.get_by_role("textbox", name="Chat title")
    expect(title_box).to_be_focused()
    title_box.fill("Light reactions")
    title_box.press("Enter")

    expect(active_tab(page)).to_have_text("Light reactions")
    expect(active_tab(page)).to_be_focused()
    page.reload()
    expect(tab_named(page, "Light reactions")).to_be_visible()

    tab_named(page, "Other chat").click()
    page.get_by_role("button", name="Rename").click()
    page.get_by_role("textbox", name="Chat title").fill("Dark reactions")
    page.get_by_role("textbox", name="Chat title").press("Escape")
    expect(active_tab(page)).to_have_text("Other chat")  # Escape cancels
    page.get_by_role("button", name="Rename").click()
    page.get_by_role("textbox", name="Chat title").fill("Calvin cycle")
    page.get_by_role("textbox", name="Chat title").press("Enter")
    expect(active_tab(page)).to_have_text("Calvin cycle")

    tab_named(page, "Light reactions").click()
    pin = page.get_by_role("button", name="Pin")
    pin.click()
    expect(pin).to_have_attribute("aria-pressed", "true")
    expect(chat_tabs(page)).to_have_text([re.compile("Light reactions"), "Calvin cycle"])
    other.refresh_from_db()
    assert other.title == "Calvin cycle"
    assert ChatSession.objects.get(title="Light reactions").pinned is True


def test_tabs_are_a_keyboard_tablist(logged_in, notebook):
    for title in ("Alpha", "Beta", "Gamma"):
        session_with_messages(notebook, title, [f"About {title}", "Noted"])
    page = open_notebook(logged_in, notebook)
    expect(chat_tabs(page)).to_have_text(["Gamma", "Beta", "Alpha"])
    tabs = chat_tabs(page)
    panel = page.get_by_role("tabpanel")
    expect(panel).to_have_attribute("aria-labelledby", tabs.nth(0).get_attribute("id"))
    assert tabs.nth(0).get_attribute("aria-controls") == panel.get_attribute("id")

    tabs.nth(0).focus()
    page.keyboard.press("ArrowRight")
    expect(tabs.nth(1)).to_be_focused()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(messages(page).first).to_contain_text("About Beta")
    page.keyboard.press("End")
    expect(tabs.nth(2)).to_be_focused()
    expect(messages(page).first).to_contain_text("About Alpha")
    page.keyboard.press("ArrowRight")  # wraps around
    expect(tabs.nth(0)).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(tabs.nth(2)).to_be_focused()
    page.keyboard.press("Home")
    expect(tabs.nth(0)).to_be_focused()
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    # Roving tabindex: only the active tab is in the Tab order, and focus is visible on it.
    assert [tabs.nth(i).get_attribute("tabindex") for i in range(3)] == ["0", "-1", "-1"]
    outline = tabs.nth(0).evaluate("element => getComputedStyle(element).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Close chat Gamma")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="New chat")).to_be_focused()
    page.keyboard.press("Enter")
    expect(chat_tabs(page)).to_have_count(4)
    expect(active_tab(page)).to_have_text("New Chat")
    expect(page.get_by_role("textbox", name="Message")).to_be_focused()

    active_tab(page).focus()
    page.keyboard.press("F2")
    page.keyboard.type("Keyboard only")
    page.keyboard.press("Enter")
    expect(active_tab(page)).to_have_text("Keyboard only")
    expect(active_tab(page)).to_be_focused()
    page.keyboard.press("Delete")
    expect(chat_tabs(page)).to_have_text(["Gamma", "Beta", "Alpha"])
    expect(active_tab(page)).to_be_focused()  # focus moves to the tab that became active
    expect(active_tab(page)).to_have_text("Gamma")


def test_stop_keeps_the_partial_answer(logged_in, notebook, source, slow_agent):
    page = open_notebook(logged_in, notebook)
    page.get_by_role("button", name="Start chat").click()
    send(page, "Tell me about photosynthesis, chlorophyll and the Calvin cycle")
    answer = answers(page).last
    expect(answer.locator(".chat-markdown blockquote")).to_contain_text("Photosynthesis is")

    page.get_by_role("button", name="Stop generating").click()

    expect(answer).to_have_attribute("data-status", "interrupted")
    expect(answer).to_contain_text("Stopped before the end.")
    expect(page.get_by_role("button", name="Send message")).to_be_visible()
    saved = SessionChatMessage.objects.get(sender="assistant")
    assert saved.status == MessageStatus.INTERRUPTED
    assert "Photosynthesis is" in saved.message
    assert "starch or burns for energy" not in saved.message
    shown = answer.locator(".chat-markdown").inner_text()
    assert "starch or burns for energy" not in shown
    time.sleep(0.5)  # nothing more arrives after the stop
    assert answer.locator(".chat-markdown").inner_text() == shown


def test_reload_during_an_answer_resumes_the_stream(logged_in, notebook, source, slow_agent):
    page = open_notebook(logged_in, notebook)
    page.get_by_role("button", name="Start chat").click()
    send(page, "Tell me about photosynthesis, chlorophyll and the Calvin cycle")
    expect(answers(page).last.locator(".chat-markdown blockquote")).to_contain_text("Photosynthesis is")

    page.reload()

    answer = answers(page).last
    expect(messages(page).first).to_contain_text("Tell me about photosynthesis")
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(page.get_by_role("button", name="Stop generating")).to_be_visible()
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    saved = SessionChatMessage.objects.get(sender="assistant")
    assert saved.status == MessageStatus.COMPLETE
    expect(answer.locator(".chat-markdown blockquote")).to_contain_text("starch or burns for energy.")
    expect(answer.get_by_role("region", name="Sources")).to_contain_text("Plant notes")
    blockquote = answer.locator(".chat-markdown blockquote").inner_text()
    assert blockquote.count("Photosynthesis is the process") == 1  # replayed, not appended twice


def test_two_browser_tabs_on_one_session_stay_consistent(context, logged_in, notebook, source, slow_agent):
    session_with_messages(notebook, "Shared chat", ["Earlier question", "Earlier answer"])
    first = open_notebook(logged_in, notebook)
    second = open_notebook(context.new_page(), notebook)
    expect(active_tab(second)).to_have_text("Shared chat")

    send(first, "Where does photosynthesis happen?")

    # The other browser tab picks the turn up and follows the answer live.
    expect(messages(second)).to_have_count(4, timeout=10_000)
    expect(messages(second).nth(2)).to_contain_text("Where does photosynthesis happen?")
    expect(answers(second).last).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(answers(second).last.locator("blockquote")).to_contain_text("chloroplasts")

    first.get_by_role("button", name="Rename").click()
    first.get_by_role("textbox", name="Chat title").fill("Renamed in the first tab")
    first.get_by_role("textbox", name="Chat title").press("Enter")
    expect(active_tab(second)).to_have_text("Renamed in the first tab", timeout=10_000)

    first.get_by_role("button", name="Close chat Renamed in the first tab").click()
    expect(second.get_by_role("button", name="Start chat")).to_be_visible(timeout=10_000)


@pytest.mark.parametrize("others", [1, 0], ids=["another-chat-is-left", "no-chat-is-left"])
def test_text_typed_in_a_chat_another_browser_tab_closes_is_kept(context, logged_in, notebook, others):
    # It stayed in the hidden composer and was wiped by the next +, or replaced by the next tab's draft.
    for number in range(others):
        session_with_messages(notebook, f"Other chat {number}", ["Q", "A"])
    session_with_messages(notebook, "Doomed chat", ["Q", "A"])
    first = open_notebook(logged_in, notebook)
    second = open_notebook(context.new_page(), notebook)
    expect(active_tab(first)).to_have_text("Doomed chat")
    first.get_by_role("textbox", name="Message").fill("A long question I have not sent yet")

    second.get_by_role("button", name="Close chat Doomed chat").click()

    expect(first.get_by_role("alert")).to_contain_text("closed or deleted in another window", timeout=10_000)
    box = first.get_by_role("textbox", name="Message")
    if others:
        expect(active_tab(first)).to_have_text("Other chat 0")
    else:
        first.get_by_role("button", name="Start chat").click()
        expect(chat_tabs(first)).to_have_count(1)
    expect(box).to_have_value("A long question I have not sent yet")


def test_ragflow_citation_markers_link_to_their_sources_numbered_in_order(logged_in, notebook):
    """RAGFlow cites `[ID:n]`, n a hash of the chunk id: shown as 1, 2... linking to the source."""
    session = session_with_messages(
        notebook, "Cited", ["What absorbs light?", "Chlorophyll [ID:320], in leaves [ID:7]."]
    )
    chunks = [
        {"index": 320, "title": "Plant notes", "snippet": "Chlorophyll absorbs blue and red light."},
        {"index": 7, "title": "Leaf anatomy", "snippet": "Leaves hold the chloroplasts."},
    ]
    SessionChatMessage.objects.filter(session=session, message_order=2).update(metadata={"sources": chunks})
    page = open_notebook(logged_in, notebook)

    answer = answers(page).last
    expect(answer.locator(".chat-markdown")).to_have_text("Chlorophyll 1, in leaves 2.")
    first = answer.get_by_role("link", name="Source 1")
    expect(answer.locator(".chat-source-index")).to_have_text(["1", "2"])
    first.click()
    target = answer.locator(".chat-source").first
    expect(target).to_contain_text("Plant notes")
    assert page.evaluate("location.hash") == "#" + target.get_attribute("id")
    expect(answer.get_by_role("link", name="Source 2")).to_have_attribute(
        "href", "#" + answer.locator(".chat-source").nth(1).get_attribute("id")
    )


def test_a_failed_answer_is_shown_in_the_conversation(logged_in, notebook, openai_agent):
    openai_agent.script(tokens=["Light", " is", " energy", " and"], error_after=3)
    page = open_notebook(logged_in, notebook)
    page.get_by_role("button", name="Start chat").click()

    send(page, "What is light?")

    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "error")
    expect(answer.get_by_role("alert")).to_contain_text("The answer failed")
    expect(answer.locator(".chat-markdown")).to_have_text("Light is energy")
    expect(page.get_by_role("button", name="Send message")).to_be_visible()


def test_a_refused_message_is_shown_in_the_conversation(logged_in, notebook):
    session = session_with_messages(notebook, "Archived elsewhere", ["Question", "Answer"])
    page = open_notebook(logged_in, notebook)
    expect(active_tab(page)).to_have_text("Archived elsewhere")
    ChatSession.objects.filter(pk=session.pk).update(status=SessionStatus.ARCHIVED)  # by another client

    send(page, "Another question")

    failed = messages(page).filter(has_text="Another question")
    expect(failed.get_by_role("alert")).to_contain_text("Not sent: This session is archived")
    expect(page.get_by_role("textbox", name="Message")).to_have_value("Another question")
    assert not SessionChatMessage.objects.filter(message="Another question").exists()


def cut_after_five_events(route):
    """A send's response cut after its first five events, as a dropped connection cuts it."""
    if route.request.method != "POST":
        route.continue_()
        return
    frames = route.fetch().text().split("\n\n")
    route.fulfill(status=200, content_type="text/event-stream", body="\n\n".join(frames[:5]) + "\n\n")


def test_a_cut_stream_resumes_after_the_last_event_received(logged_in, notebook, source, settings):
    settings.LOCAL_AGENT_TOKEN_DELAY = 0.01
    page = open_notebook(logged_in, notebook)
    page.get_by_role("button", name="Start chat").click()

    page.route("**/messages/", cut_after_five_events)
    resumed_after: list[str] = []
    page.on("request", lambda r: r.url.endswith("/stream/") and resumed_after.append(r.headers.get("last-event-id")))

    send(page, "Tell me about photosynthesis, chlorophyll and the Calvin cycle")

    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "complete")
    assert resumed_after == ["5"]  # the stream route, after the last event the page had
    text = answer.locator(".chat-markdown").inner_text()
    assert text.count("Photosynthesis is the process") == 1
    assert "starch or burns for energy." in text
    expect(answer.get_by_role("region", name="Sources")).to_contain_text("Plant notes")


def test_an_answer_out_of_reach_for_a_while_is_followed_until_it_ends(logged_in, notebook, source, settings):
    # A server restart: the page once gave up after five tries (about 15 s), said the answer had
    # failed, and left a session that refused the next message with no Stop button to end it.
    settings.LOCAL_AGENT_TOKEN_DELAY = 0.01
    page = open_notebook(logged_in, notebook)
    page.get_by_role("button", name="Start chat").click()

    attempts: list[str] = []

    def server_down_for_five_tries(route):
        attempts.append(route.request.url)
        if len(attempts) <= 2:
            route.abort("connectionrefused")
        elif len(attempts) <= 5:
            route.fulfill(status=502, content_type="text/html", body="<h1>502 Bad Gateway</h1>")
        else:
            route.continue_()

    page.route("**/messages/", cut_after_five_events)
    page.route("**/stream/", server_down_for_five_tries)

    send(page, "Tell me about photosynthesis, chlorophyll and the Calvin cycle")

    answer = answers(page).last
    expect(answer.get_by_role("status")).to_contain_text("The connection to the server was lost; reconnecting.")
    expect(page.get_by_role("button", name="Stop generating")).to_be_visible()
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    assert len(attempts) == 6
    expect(answer.get_by_role("status")).to_have_count(0)
    assert "starch or burns for energy." in answer.locator(".chat-markdown").inner_text()
