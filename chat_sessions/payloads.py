"""Plain-dict views of messages, shared by the REST serializers and the event stream.

One function, so a message looks the same in a list, in a `done` event and in a `start` event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chat_sessions.dates import datetime_writer
from chat_sessions.models import SessionChatMessage


def message_as_dict(message: SessionChatMessage, *, moment: Callable[[datetime], str] | None = None) -> dict[str, Any]:
    """`moment` writes its date: a page of messages passes one `datetime_writer()` for them all."""
    return {
        "id": message.pk,
        "session_id": str(message.session_id),
        "sender": message.sender,
        "message": message.message,
        "status": message.status,
        "message_order": message.message_order,
        "client_message_id": message.client_message_id,
        "timestamp": (moment or datetime_writer())(message.timestamp),
        "metadata": message.metadata,
    }
