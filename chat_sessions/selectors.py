"""Chat reads: querysets already scoped to what a user may see.

A lookup outside that scope finds nothing, so views answer 404 for another user's container,
session or message without ever loading it.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from chat_sessions import tag_pairs
from chat_sessions.access import containers_for_user
from chat_sessions.models import ChatSession, ChatSessionTag, MessageStatus, SessionChatMessage
from chat_sessions.session_list_sql import SessionListRead


def container_for_user(*, user, container_id) -> object | None:
    """The container with this id if the user may chat in it, else None (also for a malformed id)."""
    try:
        return containers_for_user(user=user).filter(pk=container_id).first()
    except (ValidationError, ValueError):
        return None


def sessions_for_user(*, user, container_id) -> QuerySet[ChatSession]:
    """Sessions of one container the user may see; unknown and foreign containers give none.

    `visibility_sql.visible_sql` is this rule as SQL, for the hand-written statements; a test holds
    the two to the same sessions.
    """
    return ChatSession.objects.filter(
        container_id=container_id,
        created_by=user,
        container__in=containers_for_user(user=user),
    ).order_by("-last_activity", "-id")


def session_tabs_for_user(*, user, container_id) -> SessionListRead:
    """The active sessions of one container the user may see, with their tags, for `CursorPagination`.

    The same rows as `ChatSessionFilter.unfiltered(sessions_for_user(...))` with `sessions_with_tags`,
    read by a statement composed once per process instead of a query the ORM builds per request.
    """
    return SessionListRead(user=user, container_id=container_id)


def sessions_with_tags(queryset: QuerySet[ChatSession]) -> QuerySet[ChatSession]:
    """The sessions with their tags read in the same query, where the database can (`tag_pairs`).

    `sessions_tags_load` then finds them there instead of asking again.
    """
    if not tag_pairs.supported():
        return queryset
    return queryset.annotate(tag_pairs=tag_pairs.TagPairs())


def sessions_tags_load(*, sessions: list[ChatSession]) -> None:
    """Give sessions about to be shown their tags as `loaded_tags` (source -> names, sorted).

    Sessions read by `sessions_with_tags` have them already; the others' are read in one query.
    `prefetch_related` would do that in one query too, but builds a queryset per session to hold
    the results, and the ORM builds the query anew each time: on a 20-row page those were a fifth
    of the list's time. The SQL here is a fixed shape; only the number of ids varies.
    """
    pairs = {session.pk: getattr(session, "tag_pairs", None) for session in sessions}
    unread = [pk for pk, found in pairs.items() if found is None]
    if unread:
        pairs.update(_tag_pairs_read(session_ids=unread))
    for session in sessions:
        tags: dict[str, list[str]] = {}
        # Sorted here, not by the database: both ways give the same order whatever its collation.
        for source, name in sorted(pairs[session.pk], key=lambda pair: _as_read(pair[1])):
            tags.setdefault(source, []).append(name)
        session.loaded_tags = tags


def _as_read(name: str) -> tuple[str, str]:
    """Sort key for names: as a reader orders them (case and accents aside), then exactly."""
    plain = "".join(char for char in unicodedata.normalize("NFKD", name) if not unicodedata.combining(char))
    return plain.casefold(), name


def _tag_pairs_read(*, session_ids: list[Any]) -> dict[Any, list[tuple[str, str]]]:
    """(source, name) pairs of these sessions' tags, in one query."""
    found: dict[Any, list[tuple[str, str]]] = {pk: [] for pk in session_ids}
    id_field = ChatSessionTag._meta.get_field("session").target_field
    # Ids as the database stores them (a uuid, or hex text on SQLite), to match the rows read back.
    by_stored_id = {id_field.get_db_prep_value(pk, connection): pk for pk in session_ids}
    quote = connection.ops.quote_name
    marks = ", ".join(["%s"] * len(by_stored_id))
    sql = (
        f"SELECT session_id, source, name FROM {quote(ChatSessionTag._meta.db_table)} "  # noqa: S608 (names only)
        f"WHERE session_id IN ({marks})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(by_stored_id))
        for stored_id, source, name in cursor.fetchall():
            found[by_stored_id[stored_id]].append((source, name))
    return found


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
