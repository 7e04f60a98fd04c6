"""The SQL of a turn in one statement (PostgreSQL), and turning its rows back into model instances.

`turn_sql` writes, as a single round trip, what the locked path (`services._turn_start_locked`)
does in seven: bump the session's counters under its row lock, check that the session is not
archived, that no answer of it is streaming, that the user is under the concurrent-answer limit and
that the client's message id is new, then insert the question and the empty answer with the next
two orders. The measured cost of ordering is then round trips, not locks (bench/turns.py).
"""

# ruff: noqa: S608  (only quoted table and column names from the models are formatted in; values are parameters)
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model

from chat_sessions.models import ChatSession, MessageStatus, SessionChatMessage, SessionStatus


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def turn_sql(
    *,
    session_id: Any,
    user_id: Any,
    messages: tuple[SessionChatMessage, SessionChatMessage],
    client_message_id: str | None,
    limit: int,
    now: datetime,
) -> tuple[str, list[Any], list[Any]]:
    """(sql, params, session fields): rows of (message id, message order, *session columns), or none.

    No row means the statement could not take the turn by itself; nothing was written.
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


def model_from_row(model: type[Model], fields: list[Any], values: tuple[Any, ...]) -> Model:
    """An instance from raw column values, converted as the ORM converts them (JSON decoded...)."""
    converted = []
    for field, value in zip(fields, values, strict=True):
        column = field.get_col(model._meta.db_table)
        for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, [field.attname for field in fields], converted)
