"""Text from outside (a client, a model, an upstream) checked or made fit to be UTF-8.

Python's `json` reads an escaped half of a UTF-16 surrogate pair (`"\\ud83c"`) into a `str`, but
no UTF-8 can carry it: encoding a response, an event, a Redis entry or a database parameter
that holds one raises. What comes from a client is refused (`text_holds_surrogate`); what a model
wrote is kept, with U+FFFD, the replacement character, in place of the half (`text_unicode_only`).
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_holds_surrogate(value: Any) -> bool:
    """True if a string anywhere in `value` (a parsed JSON value: keys too) holds a surrogate.

    Walked with a stack, not recursion: a client's JSON may be nested as deep as the parser
    allows, deeper than Python's recursion limit.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item) is not None:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def text_unicode_only(value: Any) -> Any:
    """`value` with each lone surrogate in its strings replaced by U+FFFD; two halves side by side
    become the one character they spell. Values with none are returned as they are.

    Nested values are repaired by recursion: they come from an upstream's JSON, and a frame nested
    past the recursion limit is refused as not JSON (`chat_sessions.agents.http.json_value`).
    """
    if isinstance(value, str):
        if value.isascii() or _SURROGATE.search(value) is None:
            return value
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {text_unicode_only(key): text_unicode_only(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [text_unicode_only(item) for item in value]
    return value
