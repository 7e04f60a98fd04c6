"""Who may see a session, as SQL for hand-written statements: `visible_sql`.

The rule is `selectors.sessions_for_user`'s: a session of this container, started by this user, in
a container the configured `ACCESS_POLICY` lets the user chat in. The policy's queryset is
compiled on every call, as the ORM would compile it inside `container__in=`, so a policy is
written once, as a queryset, and both the ORM's reads and these statements follow it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connections

from chat_sessions.access import containers_for_user
from chat_sessions.models import ChatSession
from chat_sessions.rows import db_value


def visible_sql(*, user: Any, container_id: Any, table: str, using: str) -> tuple[str, list[Any]] | None:
    """(sql, params): "this row of `table` (a quoted name or alias) is a session the user may see here".

    None when no session can be: an anonymous user, a policy that allows no container, or an id
    that no container can have.
    """
    if not getattr(user, "is_authenticated", False):
        return None
    database = connections[using]
    try:
        policy_sql, policy_params = _policy_subquery(user=user, using=using)
        params = [
            *policy_params,
            db_value(ChatSession, "container", container_id, using=using),
            db_value(ChatSession, "created_by", user.pk, using=using),
        ]
    except (EmptyResultSet, ValidationError, ValueError):
        return None
    column = _columns(database, table)
    sql = f"{column['container']} IN ({policy_sql}) AND {column['container']} = %s AND {column['created_by']} = %s"
    return sql, params


def _policy_subquery(*, user: Any, using: str) -> tuple[str, tuple[Any, ...]]:
    """The containers the user may chat in, as SQL selecting their primary keys.

    Prepared as the ORM prepares the queryset of a `container__in=` lookup: unordered, and
    selecting the primary key unless the policy chose its own column.
    """
    query = containers_for_user(user=user).query.clone()
    query.clear_ordering(force=False, clear_default=True)
    if not query.has_select_fields:
        query.clear_select_clause()
        query.add_fields(["pk"])
    return query.get_compiler(using=using).as_sql()


def _columns(database: Any, table: str) -> dict[str, str]:
    quote = database.ops.quote_name
    return {name: f"{table}.{quote(ChatSession._meta.get_field(name).column)}" for name in ("container", "created_by")}
