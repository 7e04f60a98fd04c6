"""Hostile text in sources, answers and titles is shown as text: nothing runs, nothing loads."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chat_sessions.tests.factories import ChatSessionFactory, SourceFactory
from deepsight.tests.browser.conftest import active_tab, answers, open_notebook, send

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>window.__xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__xss = 'img'\">"
HOSTILE_TITLE = "<img src=x onerror=\"window.__xss = 'title'\">Evil notes"

RENDERER_CASES = {
    "**bold** and *em* and `x < y`": "<p><strong>bold</strong> and <em>em</em> and <code>x &lt; y</code></p>",
    "- one\n- two\n  - nested": "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>",
    "1. first\n2. second": "<ol><li>first</li><li>second</li></ol>",
    "> quoted\n\nafter": "<blockquote><p>quoted</p></blockquote><p>after</p>",
    "```\n<b>code</b>\n```": "<pre><code>&lt;b&gt;code&lt;/b&gt;</code></pre>",
    "[site](https://example.org/a?b=1)": (
        '<p><a href="https://example.org/a?b=1" target="_blank" rel="noopener noreferrer nofollow">site</a></p>'
    ),
    "[bad](javascript:alert(1))": "<p><span>bad</span></p>",
    "[data](data:text/html,<b>x</b>)": "<p>[data](data:text/html,&lt;b&gt;x&lt;/b&gt;)</p>",
    "[data](data:text/html,x)": "<p><span>data</span></p>",
    "[relative](/admin/)": "<p><span>relative</span></p>",
    "![pixel](https://tracker.example/p.png)": (
        '<p><a href="https://tracker.example/p.png" target="_blank" rel="noopener noreferrer nofollow"'
        ' class="md-image-link">Image: pixel</a></p>'
    ),
    SCRIPT: "<p>&lt;script&gt;window.__xss = 'script'&lt;/script&gt;</p>",
    IMG: "<p>&lt;img src=x onerror=\"window.__xss = 'img'\"&gt;</p>",
    "<https://example.org>": (
        '<p><a href="https://example.org/" target="_blank" rel="noopener noreferrer nofollow">https://example.org</a></p>'
    ),
    "snake_case_name stays": "<p>snake_case_name stays</p>",
    "line one\nline two": "<p>line one<br>line two</p>",
}


def test_the_markdown_renderer_builds_only_safe_markup(page, server):
    page.goto("/accounts/login/")

    rendered = page.evaluate(
        """async (cases) => {
          const { renderMarkdown } = await import('/static/chat_sessions/markdown.js');
          return cases.map((text) => {
            const holder = document.createElement('div');
            holder.append(renderMarkdown(text));
            return holder.innerHTML;
          });
        }""",
        list(RENDERER_CASES),
    )

    assert dict(zip(RENDERER_CASES, rendered, strict=True)) == RENDERER_CASES


def test_hostile_source_text_and_titles_are_inert(logged_in, notebook, server):
    tracker = f"{server.url}/tracker.png"
    SourceFactory(
        notebook=notebook,
        title=HOSTILE_TITLE,
        content=(
            f"Chlorophyll absorbs light. {SCRIPT} {IMG} [click me](javascript:window.__xss='link') "
            f'![tracker]({tracker}) <a href="javascript:void(0)" onclick="window.__xss=\'a\'">html link</a>'
        ),
    )
    ChatSessionFactory(container=notebook, created_by=notebook.owner, title="<b onmouseover=alert(1)>Bold title</b>")
    requested: list[str] = []
    logged_in.on("request", lambda request: requested.append(request.url))
    page = open_notebook(logged_in, notebook)
    expect(active_tab(page)).to_have_text("<b onmouseover=alert(1)>Bold title</b>")

    send(page, "What does chlorophyll absorb?")

    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "complete")
    body = answer.locator(".chat-markdown")
    expect(body).to_contain_text(SCRIPT)
    expect(body).to_contain_text(IMG)
    expect(body).to_contain_text("Image: tracker")
    expect(answer.get_by_role("region", name="Sources")).to_contain_text(HOSTILE_TITLE)
    expect(page.get_by_role("complementary")).to_contain_text(HOSTILE_TITLE)  # the sources panel
    expect(body.get_by_role("link", name="click me")).to_have_count(0)
    page.get_by_role("button", name="Rename").click()
    page.get_by_role("textbox", name="Chat title").fill(IMG)
    page.get_by_role("textbox", name="Chat title").press("Enter")
    expect(active_tab(page)).to_have_text(IMG)
    page.reload()
    expect(active_tab(page)).to_have_text(IMG)
    expect(answers(page).last.locator(".chat-markdown")).to_contain_text(SCRIPT)

    assert page.evaluate("window.__xss") is None
    unsafe = page.evaluate(
        """() => {
          const chat = document.querySelector('[data-chat]');
          const found = [];
          for (const element of chat.querySelectorAll('*')) {
            const tag = element.tagName;
            if (['SCRIPT', 'IMG', 'IFRAME', 'OBJECT', 'EMBED', 'STYLE'].includes(tag)) found.push(element.outerHTML);
            for (const attribute of element.attributes) {
              if (attribute.name.startsWith('on')) found.push(element.outerHTML);
            }
          }
          for (const link of chat.querySelectorAll('a[href]')) {
            const href = link.getAttribute('href');
            if (!href.startsWith('#') && !/^https?:/.test(href)) found.push(link.outerHTML);
          }
          return found;
        }"""
    )
    assert unsafe == []
    assert not [url for url in requested if "tracker.png" in url or url.endswith("/x")]
