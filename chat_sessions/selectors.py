"""Chat reads: querysets already scoped to what a user may see.

A lookup outside that scope finds nothing, so views answer 404 for another user's container,
session or message without ever loading it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from chat_sessions.access import containers_for_user
from chat_sessions.models import ChatSession, ChatSessionTag, MessageStatus, SessionChatMessage


def container_for_user(*, user, container_id) -> object | None:
    """The container with this id if the user may chat in it, else None (also for a malformed id)."""
    try:
        return containers_for_user(user=user).filter(pk=container_id).first()
    except (ValidationError, ValueError):
        return None


def sessions_for_user(*, user, container_id) -> QuerySet[ChatSession]:
    """Sessions of one container the user may see; unknown and foreign containers give none."""
    return ChatSession.objects.filter(
        container_id=container_id,
        created_by=user,
        container__in=containers_for_user(user=user),
    ).order_by("-last_activity", "-id")


def sessions_tags_load(*, sessions: list[ChatSession]) -> None:
    """Load the tags of sessions about to be shown in one query, as `loaded_tags` (source -> names, sorted).

    `prefetch_related` does the same in one query too, but builds a queryset per session to hold
    the results, and the ORM builds the query anew each time: on a 20-row page those were a fifth
    of the list's time. The SQL here is a fixed shape; only the number of ids varies.
    """
    loaded: dict[Any, dict[str, list[str]]] = {session.pk: {} for session in sessions}
    if loaded:
        id_field = ChatSessionTag._meta.get_field("session").target_field
        # Ids as the database stores them (a uuid, or hex text on SQLite), to match the rows read back.
        by_stored_id = {id_field.get_db_prep_value(pk, connection): pk for pk in loaded}
        quote = connection.ops.quote_name
        marks = ", ".join(["%s"] * len(by_stored_id))
        sql = (
            f"SELECT session_id, source, name FROM {quote(ChatSessionTag._meta.db_table)} "  # noqa: S608 (names only)
            f"WHERE session_id IN ({marks}) ORDER BY name"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, list(by_stored_id))
            for stored_id, source, name in cursor.fetchall():
                loaded[by_stored_id[stored_id]].setdefault(source, []).append(name)
    for session in sessions:
        session.loaded_tags = loaded[session.pk]


def session_for_user(*, user, container_id, session_id) -> ChatSession | None:
    """One session if the user may see it, else None."""
    # Unordered and sliced, not `.first()`: ordering a lookup by primary key decides nothing, and
    # compiling the list's ORDER BY was a quarter of the lookup's CPU on every per-session request.
    try:
        found = sessions_for_user(user=user, container_id=container_id).filter(pk=session_id).order_by()[:1]
        return next(iter(found), None)
    except (ValidationError, ValueError):
        return None


def messages_for_session(*, session: ChatSession) -> QuerySet[SessionChatMessage]:
    """The session's messages in conversation order."""
    return SessionChatMessage.objects.filter(session=session).order_by("message_order")


def message_for_session(*, session: ChatSession, message_id) -> SessionChatMessage | None:
    try:
        return SessionChatMessage.objects.filter(session=session, pk=message_id).first()
    except (ValidationError, ValueError):
        return None


def streaming_messages() -> QuerySet[SessionChatMessage]:
    return SessionChatMessage.objects.filter(status=MessageStatus.STREAMING)


def session_has_generation(*, session_id) -> bool:
    return streaming_messages().filter(session_id=session_id).exists()


def running_generation_exists() -> Exists:
    """For annotating or filtering sessions: does this session have an answer streaming?"""
    return Exists(streaming_messages().filter(session_id=OuterRef("pk")))
