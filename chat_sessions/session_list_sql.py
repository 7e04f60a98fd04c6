"""The tabs' session list in one statement composed once per process: `SessionListRead`.

The list the web page loads every time (a user's active sessions in one container, most recent
first, with their tags) built and compiled its query through the ORM anew on every request; with
the model instances the ORM made, that was a fifth of the request's CPU (bench/api.py).
`SessionListRead` answers exactly what DRF's `CursorPagination` asks of a queryset (order it, or
its reverse; bound it by a position of the first ordering field; slice it) with a statement whose
only varying part is the access policy's subquery. That subquery is still compiled from
`ACCESS_POLICY`'s queryset on every read, so who may see what is decided in one place.

Lists with a filter (status, tag, title search, dates) are read by the ORM (`api.filters`), and
both reads give the same pages: the tests walk them side by side.
"""

# ruff: noqa: S608  (only quoted table and column names are formatted in; values are parameters)
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

from django.db import connections, router

from chat_sessions import tag_pairs
from chat_sessions.models import ChatSession, SessionStatus
from chat_sessions.rows import db_value, model_from_row
from chat_sessions.visibility_sql import visible_sql

ORDERING = ("-last_activity", "-id")
REVERSED = ("last_activity", "id")
_ALIAS = "listed_session"  # the outer table's alias: no name the policy's own query could use


@dataclass(frozen=True)
class SessionListRead:
    """A user's active sessions in one container, as `CursorPagination` pages through them.

    Anything else asked of it (another ordering, another filter) is a `TypeError`, never a quietly
    different list.
    """

    user: Any
    container_id: Any
    newest_first: bool = True
    bound: tuple[str, str] | None = None  # ("lt" or "gt", a cursor's position)

    def order_by(self, *ordering: str) -> SessionListRead:
        if ordering not in (ORDERING, REVERSED):
            raise TypeError(f"The session list is ordered by {ORDERING} or its reverse, not {ordering}.")
        return replace(self, newest_first=ordering == ORDERING)

    def filter(self, **lookups: Any) -> SessionListRead:
        if self.bound is not None or set(lookups) - {"last_activity__lt", "last_activity__gt"} or len(lookups) != 1:
            raise TypeError(f"The session list is bounded by one last_activity position, not {lookups}.")
        ((lookup, position),) = lookups.items()
        return replace(self, bound=(lookup.rpartition("__")[2], position))

    def __getitem__(self, window: slice) -> list[ChatSession]:
        if not isinstance(window, slice) or window.step is not None or window.stop is None:
            raise TypeError("The session list is read a slice [start:stop] at a time.")
        start = window.start or 0
        return self._read(offset=start, limit=window.stop - start)

    def _read(self, *, offset: int, limit: int) -> list[ChatSession]:
        using = router.db_for_read(ChatSession)
        visible = visible_sql(user=self.user, container_id=self.container_id, table=_quoted(_ALIAS, using), using=using)
        if limit <= 0 or visible is None:
            return []
        with_tags = tag_pairs.supported(using=using)
        bound_by = None if self.bound is None else self.bound[0]
        head, tail = _statement(using=using, newest_first=self.newest_first, bound_by=bound_by, with_tags=with_tags)
        params = [*visible[1], db_value(ChatSession, "status", SessionStatus.ACTIVE, using=using)]
        if self.bound is not None:
            params.append(db_value(ChatSession, "last_activity", self.bound[1], using=using))
        params += [limit, offset]
        with connections[using].cursor() as cursor:
            cursor.execute(f"{head}{visible[0]}{tail}", params)
            rows = cursor.fetchall()
        return [_session_from_row(row, using=using, with_tags=with_tags) for row in rows]


def _quoted(name: str, using: str) -> str:
    return connections[using].ops.quote_name(name)


@functools.cache
def _statement(*, using: str, newest_first: bool, bound_by: str | None, with_tags: bool) -> tuple[str, str]:
    """The statement around its `visible_sql` condition: (what comes before it, what comes after).

    One per shape: two orders, three bounds (none, `lt`, `gt`), tags read in it or not.
    """
    database = connections[using]
    quote = database.ops.quote_name
    table = quote(_ALIAS)

    def column(name: str) -> str:
        return f"{table}.{quote(ChatSession._meta.get_field(name).column)}"

    columns = [f"{table}.{quote(field.column)}" for field in ChatSession._meta.concrete_fields]
    if with_tags:
        columns.append(tag_pairs.subquery_sql(connection=database, pk_sql=column("id")))
    direction = "DESC" if newest_first else "ASC"
    conditions = [f"{column('status')} = %s"]
    if bound_by is not None:
        conditions.append(f"{column('last_activity')} {'<' if bound_by == 'lt' else '>'} %s")
    head = f"SELECT {', '.join(columns)} FROM {quote(ChatSession._meta.db_table)} {table} WHERE "
    tail = (
        f" AND {' AND '.join(conditions)} "
        f"ORDER BY {column('last_activity')} {direction}, {column('id')} {direction} LIMIT %s OFFSET %s"
    )
    return head, tail


def _session_from_row(row: tuple[Any, ...], *, using: str, with_tags: bool) -> ChatSession:
    fields = ChatSession._meta.concrete_fields
    session = model_from_row(ChatSession, list(fields), row[: len(fields)], using=using)
    if with_tags:
        pairs = row[len(fields)]
        session.tag_pairs = tag_pairs.TagPairs.output_field.from_db_value(pairs, None, connections[using])
    return session
