"""A JSON parser that answers a body nested past Python's recursion limit with a 400.

DRF's `JSONParser` turns a `ValueError` into a 400 but lets the `RecursionError` of a body such as
`[[[[...]]]]` nested a thousand deep through: a 3 KB request was a 500. The chat views swap it in
for DRF's wherever the host project's parser settings name DRF's (`ChatAPIMixin.get_parsers`).
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None


def parsers_safe(found: list[parsers.BaseParser]) -> list[parsers.BaseParser]:
    """`found` with DRF's own `JSONParser` replaced by ours; any other parser is kept."""
    return [JSONParser() if type(parser) is parsers.JSONParser else parser for parser in found]
