"""The bulk loader: one user with many sessions and a million messages, in minutes.

PostgreSQL gets `COPY ... FROM STDIN` (then `ANALYZE`, so the planner knows the tables' new size);
SQLite gets `executemany` in one transaction. Rows are built from the models' own fields and
defaults, so a field added later is filled with its default rather than breaking the loader.

The most recent session holds the long conversation (the deep page of message history is inside
it); the other messages are spread evenly over the other sessions. Each session's
`last_activity` is one second older than the previous one's, so the list order is total.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, models, transaction
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

from bench import fixtures
from chat_sessions.models import ChatSession, MessageStatus, Sender, SessionChatMessage, SessionStatus

TEXT = "Message {} of a long research conversation about how leaves turn light into sugar."


@dataclass(frozen=True)
class Seeded:
    owner: fixtures.Owner
    #: The long conversation's session and its message count.
    big_session_id: uuid.UUID
    big_messages: int
    sessions: int
    messages: int
    seconds: float
    reused: bool


def seed(*, sessions: int, messages: int, deep_messages: int, page: int, force: bool = False) -> Seeded:
    """Seed (or reuse) the API user's sessions and messages at this scale."""
    owner = fixtures.owners(1, prefix=f"bench-api-{sessions}-{messages}-")[0]
    big = max(messages // 5, min(deep_messages + 2 * page, messages))
    existing = ChatSession.objects.filter(created_by_id=owner.user_id).count()
    if existing == sessions and not force:
        first = ChatSession.objects.filter(created_by_id=owner.user_id).order_by("-last_activity", "-id").first()
        return Seeded(owner, first.pk, first.message_count, sessions, messages, 0.0, True)
    fixtures.sessions_delete(user_ids=[owner.user_id])
    started = time.monotonic()
    now = timezone.now()
    counts = _message_counts(sessions, messages, big)
    session_ids = [uuid.uuid4() for _ in range(sessions)]
    session_rows = (
        {
            "id": session_id,
            "container_id": owner.notebook_id,
            "created_by_id": owner.user_id,
            "title": f"Research thread {index}",
            "status": SessionStatus.ACTIVE.value,
            "message_count": counts[index],
            "last_activity": now - timedelta(seconds=index),
            "started_at": now - timedelta(seconds=index),
            "created_at": now - timedelta(seconds=index),
            "updated_at": now - timedelta(seconds=index),
        }
        for index, session_id in enumerate(session_ids)
    )
    message_rows = (
        {
            "session_id": session_id,
            "sender": (Sender.USER if order % 2 else Sender.ASSISTANT).value,
            "message": TEXT.format(order),
            "status": MessageStatus.COMPLETE.value,
            "message_order": order,
            "timestamp": now,
            "updated_at": now,
        }
        for session_id, count in zip(session_ids, counts, strict=True)
        for order in range(1, count + 1)
    )
    with transaction.atomic():
        _load(ChatSession, session_rows)
        _load(SessionChatMessage, message_rows)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {ChatSession._meta.db_table}")
            cursor.execute(f"ANALYZE {SessionChatMessage._meta.db_table}")
    return Seeded(owner, session_ids[0], counts[0], sessions, messages, time.monotonic() - started, False)


def _message_counts(sessions: int, messages: int, big: int) -> list[int]:
    rest = messages - big
    others = sessions - 1
    each, extra = divmod(rest, others) if others else (0, 0)
    return [big + (rest if not others else 0)] + [each + (1 if index < extra else 0) for index in range(others)]


def _load(model: type[models.Model], rows: Iterable[dict]) -> None:
    fields = [field for field in model._meta.concrete_fields if not isinstance(field, AutoFieldMixin)]
    template = [field.get_db_prep_save(field.get_default(), connection) for field in fields]
    columns = [field.column for field in fields]
    table = model._meta.db_table

    def tuples() -> Iterator[tuple]:
        prepare = {field.attname: (position, field.get_db_prep_save) for position, field in enumerate(fields)}
        for row in rows:
            values = template.copy()
            for name, value in row.items():
                position, prep = prepare[name]
                values[position] = prep(value, connection)
            yield tuple(values)

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for values in tuples():
                    copy.write_row(values)
            return
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        batch: list[tuple] = []
        for values in tuples():
            batch.append(values)
            if len(batch) == 10_000:
                cursor.executemany(sql, batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)
