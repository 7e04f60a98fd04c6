"""A session's tags read in the session's own row: `TagPairs`, a JSON column of `[source, name]` pairs.

The session list shows every session's tags. A second query for them is one more round trip per
page; a correlated subquery over the tag table's `(session, source, name)` index costs the
database a few microseconds per row instead. (Measured on loopback, the subquery's compile costs
about what the saved round trip did; across a network the round trip is the larger cost.) Where
the database has no JSON aggregate named here,
`supported()` is false and the tags are read with a query of their own
(`selectors.sessions_tags_load`).
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connections
from django.db.models import F, Func, JSONField

from chat_sessions.models import ChatSessionTag

# The subquery per database; `{pk}` is the outer session's primary key column.
_SQL = {
    "postgresql": (
        "COALESCE((SELECT json_agg(json_build_array(tag.{source}, tag.{name})) "
        "FROM {table} tag WHERE tag.{session} = {pk}), '[]')::text"
    ),
    "sqlite": (
        "(SELECT json_group_array(json_array(tag.{source}, tag.{name})) FROM {table} tag WHERE tag.{session} = {pk})"
    ),
}


def supported(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether this database can read the tags inside the session query."""
    return connections[using].vendor in _SQL


def subquery_sql(*, connection: Any, pk_sql: str) -> str:
    """The tags subquery for one database, for the session whose primary key column is `pk_sql`."""
    template = _SQL.get(connection.vendor)
    if template is None:
        raise NotSupportedError(f"TagPairs has no SQL for {connection.vendor}; check tag_pairs.supported().")
    meta, quote = ChatSessionTag._meta, connection.ops.quote_name
    return template.format(
        table=quote(meta.db_table),
        session=quote(meta.get_field("session").column),
        source=quote(meta.get_field("source").column),
        name=quote(meta.get_field("name").column),
        pk=pk_sql,
    )


class TagPairs(Func):
    """`[[source, name], ...]` of the session's tags, in no particular order; `[]` for none."""

    output_field = JSONField()

    def __init__(self, session_pk: str = "pk") -> None:
        super().__init__(F(session_pk))

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:
        pk_sql, params = compiler.compile(self.source_expressions[0])
        return subquery_sql(connection=connection, pk_sql=pk_sql), list(params)
