"""Message Markdown as HTML that is safe to put in a page, for server-rendered views (the admin).

The stored text always stays raw; this renders it on output. markdown-it renders with raw HTML
turned off, then nh3 keeps only an allowlist of tags and attributes and http(s)/mailto links.
Two layers, so neither a user nor a model can get a script, an event handler, a `javascript:`
URL or a tracking image into a page through a message. (The chat page renders Markdown in the
browser, building DOM nodes from text: `chat_sessions/static/chat_sessions/markdown.js`.)
"""

from __future__ import annotations

from functools import cache

import nh3
from markdown_it import MarkdownIt

TAGS = frozenset(
    {"p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"}
)
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


def markdown_to_safe_html(text: str) -> str:
    """`text` (Markdown, possibly hostile) as sanitised HTML."""
    return nh3.clean(
        _markdown().render(text or ""),
        tags=set(TAGS),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )
