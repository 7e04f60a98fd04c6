"""Cursor pagination for sessions (most recent first) and messages (load older, load newer).

Cursor, not offset: a page 50,000 sessions deep costs what the first page costs, and no `COUNT(*)`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError as FieldValidationError
from django.db.models import Model
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.response import Response

from chat_sessions.conf import chat_settings
from chat_sessions.models import ChatSession, SessionChatMessage


class StrictPageSizeMixin:
    """A `page_size` that is not a whole number from 1 up is a 400, not silently the default page.

    Sizes over `max_page_size` are still capped: a client asking for more is not wrong, only greedy.
    """

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise ValidationError({self.page_size_query_param: ["Use a whole number of at least 1."]})
        return min(size, self.max_page_size)


#: What a cursor that holds nothing decodes to; no link DRF writes is one.
FIRST_PAGE = Cursor(offset=0, reverse=False, position=None)


class CheckedPositionMixin:
    """A cursor DRF could not have written is its 404 "Invalid cursor", never another page.

    DRF checks that a cursor decodes, not what its position holds; a forged one reached the query
    as text and failed there, a 500. And base64 skips what is not base64, so `?cursor=%00` (or
    any text that decodes to no cursor fields) read as the first page: a client that had mangled
    its `next` link was quietly shown page one again. Cursors DRF writes itself always pass.
    """

    position_model: type[Model]

    def decode_cursor(self, request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor == FIRST_PAGE and request.query_params.get(self.cursor_query_param):
            raise NotFound(self.invalid_cursor_message)  # DRF links the first page without a cursor
        if cursor is not None and cursor.position is not None:
            field = self.position_model._meta.get_field(self.ordering[0].lstrip("-"))
            try:
                value = field.to_python(cursor.position)
                field.run_validators(value)
                if isinstance(value, datetime):
                    if timezone.is_naive(value):
                        raise FieldValidationError("A position is a moment with its UTC offset.")
                    value.astimezone(UTC)  # off the calendar in UTC: no database can compare it
            except (FieldValidationError, OverflowError):
                raise NotFound(self.invalid_cursor_message) from None
        return cursor


class SessionCursorPagination(CheckedPositionMixin, StrictPageSizeMixin, CursorPagination):
    position_model = ChatSession
    ordering = ("-last_activity", "-id")
    page_size_query_param = "page_size"

    def __init__(self) -> None:
        self.page_size = chat_settings.PAGE_SIZE
        self.max_page_size = chat_settings.MAX_PAGE_SIZE

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response({"sessions": data, "next": self.get_next_link(), "previous": self.get_previous_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["sessions"],
            "properties": {
                "sessions": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
            },
        }


class MessageCursorPagination(CheckedPositionMixin, StrictPageSizeMixin, CursorPagination):
    """Newest page first; each page is returned oldest-first, so it can be shown as is.

    `older` loads the page before this one, `newer` the page after it.
    """

    position_model = SessionChatMessage
    ordering = ("-message_order",)
    page_size_query_param = "page_size"

    def __init__(self) -> None:
        self.page_size = chat_settings.PAGE_SIZE
        self.max_page_size = chat_settings.MAX_PAGE_SIZE

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(
            {"messages": list(reversed(data)), "older": self.get_next_link(), "newer": self.get_previous_link()}
        )

    def older_link(self, *, base_url: str, before_order: int) -> str:
        """The `older` link of a page whose oldest message has `before_order`, as this class writes it."""
        self.base_url = base_url
        return self.encode_cursor(Cursor(offset=0, reverse=False, position=str(before_order)))

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["messages"],
            "properties": {
                "messages": schema,
                "older": {"type": "string", "nullable": True, "format": "uri"},
                "newer": {"type": "string", "nullable": True, "format": "uri"},
            },
        }
