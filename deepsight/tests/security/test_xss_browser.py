"""The XSS vector list of `xss.py` in a real browser: where the chat page renders user and model text.

The chat panel renders messages in the browser (`chat_sessions/static/chat_sessions/markdown.js`),
so escaping on the server proves nothing there. Chromium loads the page with every vector stored
as session titles, questions and answers; `alert` is replaced by a recorder, and the rendered DOM
is walked for handlers, script-bearing elements and script URLs. A broader, scripted look at the
same page is in deepsight/tests/browser/test_safety.py; this one runs the whole standard list.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from chat_sessions.models import ChatSession, Sender
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory
from deepsight.tests.browser import conftest as browser_fixtures
from deepsight.tests.security.xss import ALL_VECTORS, MARK

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The browser suite's fixtures: Chromium via Playwright, uvicorn, a logged-in page that fails the
# test on a JavaScript error or a Content-Security-Policy violation.
browser = browser_fixtures.browser
server = browser_fixtures.server
context = browser_fixtures.context
page = browser_fixtures.page
logged_in = browser_fixtures.logged_in
notebook = browser_fixtures.notebook

# A function of the page (no eval: the CSP forbids it) listing what could run in a rendered tree.
UNSAFE_IN = """(root, banned) => {
  const found = [];
  for (const element of root.querySelectorAll('*')) {
    if (banned.includes(element.tagName)) found.push('<' + element.tagName + '>');
    for (const attribute of element.attributes) {
      const value = attribute.value.replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase();
      const isUrl = ['href', 'src', 'action', 'formaction', 'srcdoc', 'data'].includes(attribute.name);
      if (attribute.name.startsWith('on')) found.push(element.tagName + ' ' + attribute.name);
      if (isUrl && /^(javascript|vbscript|data):/.test(value)) found.push(element.tagName + ' ' + value);
    }
  }
  return found;
}"""
#: Elements that run or load code; the renderer makes none of them, the page's own UI makes no script.
SCRIPT_ELEMENTS = ["SCRIPT", "IFRAME", "OBJECT", "EMBED", "BASE", "META", "FRAME", "PORTAL"]
RENDERER_NEVER_MAKES = [*SCRIPT_ELEMENTS, "FORM", "STYLE", "svg", "math", "IMG", "INPUT", "BUTTON"]
RECORD_ALERTS = "window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m));"


def test_every_vector_rendered_by_the_chat_renderer_stays_text(page, context, server):
    page.add_init_script(RECORD_ALERTS)
    page.goto("/accounts/login/")

    found = page.evaluate(
        "async ([vectors, banned]) => {"
        "  const { renderMarkdown } = await import('/static/chat_sessions/markdown.js');"
        "  const holder = document.createElement('div');"
        "  document.body.append(holder);"  # live in the document: an onerror would fire here
        "  for (const text of vectors) holder.append(renderMarkdown(text));"
        "  await new Promise((resolve) => setTimeout(resolve, 300));"
        f"  return {{ text: holder.textContent, unsafe: ({UNSAFE_IN})(holder, banned) }};"
        "}",
        [ALL_VECTORS, RENDERER_NEVER_MAKES],
    )

    assert MARK in found["text"]  # the vectors are on the page, as text
    assert found["unsafe"] == []
    assert page.evaluate("window.__alerts") == []
    # The check can fail: the same vectors parsed as HTML (inert, in a <template>) are caught. On a
    # page of its own: the CSP reports those handlers, which would fail the page above.
    control = context.new_page()
    control.goto("/accounts/login/")
    parsed_as_html = control.evaluate(
        "([vectors, banned]) => {"
        "  const inert = document.createElement('template');"
        "  inert.innerHTML = vectors.join('');"
        f"  return ({UNSAFE_IN})(inert.content, banned);"
        "}",
        [ALL_VECTORS, RENDERER_NEVER_MAKES],
    )
    assert len(parsed_as_html) >= 20


def test_the_chat_page_shows_every_vector_in_titles_questions_and_answers_as_text(logged_in, notebook):
    for vector in ALL_VECTORS[:8]:
        ChatSessionFactory(container=notebook, created_by=notebook.owner, title=vector[:200])
    session = ChatSessionFactory(container=notebook, created_by=notebook.owner, title=ALL_VECTORS[2][:200])
    order = 0
    for vector in ALL_VECTORS:
        MessageFactory(session=session, sender=Sender.USER, message=vector, message_order=(order := order + 1))
        MessageFactory(session=session, sender=Sender.ASSISTANT, message=vector, message_order=(order := order + 1))
    ChatSession.objects.filter(pk=session.pk).update(message_count=order, last_activity=timezone.now())
    logged_in.add_init_script(RECORD_ALERTS)

    page = browser_fixtures.open_notebook(logged_in, notebook)
    page.locator(".chat-messages > li").first.wait_for()
    page.wait_for_timeout(300)

    chat = page.locator("[data-chat]")
    assert MARK in chat.inner_text()
    assert chat.evaluate(UNSAFE_IN, SCRIPT_ELEMENTS) == []
    assert page.evaluate("window.__alerts") == []
