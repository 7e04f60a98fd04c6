"""The SQL of a turn's two writes in one statement each (PostgreSQL).

`turn_sql` writes, as a single round trip, what the locked path (`services._turn_start_locked`)
does in seven: bump the session's counters under its row lock, check that the session is not
archived, that no answer of it is streaming, that the user is under the concurrent-answer limit and
that the client's message id is new, then insert the question and the empty answer with the next
two orders. The measured cost of ordering is then round trips, not locks (bench/turns.py).

`finish_sql` saves the answer at the end of its generation the same way: one statement instead of
a transaction of four, with the rows locked in the order a turn locks them; `flush_sql` writes
the growing text of every live answer of a process in one statement instead of one each.
Rows come back as models through `rows.model_from_row`.
"""

# ruff: noqa: S608  (only quoted table and column names from the models are formatted in; values are parameters)
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from chat_sessions.models import ChatSession, MessageStatus, SessionChatMessage, SessionStatus
from chat_sessions.visibility_sql import visible_sql


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def visible_condition(*, user: Any, container_id: Any) -> tuple[str, list[Any]] | None:
    """(sql, params): "the turn's session row is one the user may see in this container"; None when none is.

    `visibility_sql.visible_sql` on the sessions table: the rule of `selectors.sessions_for_user`,
    so a turn's statement can find its session and take the turn in one round trip.
    """
    return visible_sql(
        user=user, container_id=container_id, table=_quoted(ChatSession._meta.db_table), using=connection.alias
    )


def turn_sql(
    *,
    session_id: Any,
    user_id: Any,
    messages: tuple[SessionChatMessage, SessionChatMessage],
    client_message_id: str | None,
    limit: int,
    now: datetime,
    visible: tuple[str, list[Any]] | None = None,
) -> tuple[str, list[Any], list[Any]]:
    """(sql, params, session fields): rows of (message id, message order, *session columns), or none.

    No row means the statement could not take the turn by itself; nothing was written. `visible`
    (`visible_condition`) limits it to a session the user may see.
    """
    sessions, rows = _quoted(ChatSession._meta.db_table), _quoted(SessionChatMessage._meta.db_table)
    session_fields = list(ChatSession._meta.concrete_fields)
    insert_fields = [
        field
        for field in SessionChatMessage._meta.concrete_fields
        if not field.primary_key and field.attname not in ("session_id", "message_order")
    ]
    conditions = [
        f"NOT EXISTS (SELECT 1 FROM {rows} WHERE session_id = %s AND status = %s)",
    ]
    condition_params: list[Any] = [session_id, MessageStatus.STREAMING]
    if visible is not None:
        conditions.append(visible[0])
        condition_params += visible[1]
    if client_message_id:
        conditions.append(f"NOT EXISTS (SELECT 1 FROM {rows} WHERE session_id = %s AND client_message_id = %s)")
        condition_params += [session_id, client_message_id]
    if limit:
        conditions.append(
            f"(SELECT count(*) FROM {rows} answer JOIN {sessions} owned ON owned.id = answer.session_id"
            f" WHERE owned.created_by_id = %s AND answer.status = %s) < %s"
        )
        condition_params += [user_id, MessageStatus.STREAMING, limit]

    def row_values(message: SessionChatMessage) -> tuple[str, list[Any]]:
        values = [field.get_db_prep_save(getattr(message, field.attname), connection) for field in insert_fields]
        return ", ".join(["%s"] * len(values)), values

    first_marks, first_values = row_values(messages[0])
    second_marks, second_values = row_values(messages[1])
    columns = ", ".join(_quoted(field.column) for field in insert_fields)
    closed, active = SessionStatus.CLOSED, SessionStatus.ACTIVE
    sql = f"""
        WITH turn_session AS (
            UPDATE {sessions} SET
                message_count = message_count + 2,
                last_activity = %s,
                updated_at = %s,
                started_at = CASE WHEN status = %s THEN %s ELSE started_at END,
                ended_at = CASE WHEN status = %s THEN NULL ELSE ended_at END,
                status = CASE WHEN status = %s THEN %s ELSE status END
            WHERE id = %s AND status <> %s AND {" AND ".join(conditions)}
            RETURNING {", ".join(_quoted(field.column) for field in session_fields)}
        ), turn_messages AS (
            INSERT INTO {rows} (session_id, message_order, {columns})
            SELECT id, message_count - 1, {first_marks} FROM turn_session
            UNION ALL
            SELECT id, message_count, {second_marks} FROM turn_session
            RETURNING id, message_order
        )
        SELECT turn_messages.id, turn_messages.message_order, turn_session.*
        FROM turn_messages CROSS JOIN turn_session
        ORDER BY turn_messages.message_order
    """
    params = [
        now,
        now,
        closed,
        now,
        closed,
        closed,
        active,
        session_id,
        SessionStatus.ARCHIVED,
        *condition_params,
        *first_values,
        *second_values,
    ]
    return sql, params, session_fields


def finish_sql(
    *, message_id: int, text: str, status: str, metadata: Any, now: datetime
) -> tuple[str, list[Any], list[Any]]:
    """(sql, params, message fields): one row of (the session's title source, *message columns), or none.

    The session row is updated (and so locked) before the message row: the message's update
    reads the session's, so it cannot run first. A turn takes the session row first too, and may
    wait on this answer's row (one streaming answer per session), so the other order could deadlock.
    No row means the message is gone (its session was deleted while it streamed).
    """
    sessions, rows = _quoted(ChatSession._meta.db_table), _quoted(SessionChatMessage._meta.db_table)
    message_fields = list(SessionChatMessage._meta.concrete_fields)
    field = SessionChatMessage._meta.get_field
    values = [
        field("message").get_db_prep_save(text, connection),
        field("status").get_db_prep_save(status, connection),
        field("metadata").get_db_prep_save(metadata, connection),
        field("updated_at").get_db_prep_save(now, connection),
    ]
    returned = ", ".join(f"answer.{_quoted(field.column)}" for field in message_fields)
    sql = f"""
        WITH answer_session AS (
            UPDATE {sessions} SET last_activity = %s
            WHERE id = (SELECT session_id FROM {rows} WHERE id = %s)
            RETURNING id, title_source
        )
        UPDATE {rows} answer SET message = %s, status = %s, metadata = %s, updated_at = %s
        FROM answer_session
        WHERE answer.id = %s AND answer.session_id = answer_session.id
        RETURNING answer_session.title_source, {returned}
    """
    params = [field("updated_at").get_db_prep_save(now, connection), message_id, *values, message_id]
    return sql, params, message_fields


def flush_sql(*, texts: list[tuple[int, str, str | None]], now: datetime) -> tuple[str, list[Any]]:
    """(sql, params) writing each (message id, text, reasoning or None) to its answer while it streams.

    An answer with reasoning gets metadata `{"reasoning": ...}`, as the ORM path writes it.
    """
    rows = _quoted(SessionChatMessage._meta.db_table)
    values = ", ".join(["(%s::bigint, %s::text, %s::text)"] * len(texts))
    sql = f"""
        UPDATE {rows} answer SET
            message = batch.message,
            metadata = CASE WHEN batch.reasoning IS NULL THEN answer.metadata
                ELSE jsonb_build_object('reasoning', batch.reasoning) END,
            updated_at = %s
        FROM (VALUES {values}) AS batch (id, message, reasoning)
        WHERE answer.id = batch.id AND answer.status = %s
    """
    params: list[Any] = [now]
    for message_id, text, reasoning in texts:
        params += [message_id, text, reasoning]
    params.append(MessageStatus.STREAMING)
    return sql, params
