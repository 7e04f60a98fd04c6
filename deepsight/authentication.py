"""API token authentication: DRF's `TokenAuthentication`, with its lookup in one plain query.

DRF reads the token with `select_related("user")`, a query the ORM builds anew on every request:
on the session list that was a tenth of the request's CPU. The same rows are read here with SQL
composed once per process and turned into models as the ORM would (`model_from_row`), without
a `RawQuerySet`, whose matching of columns to fields on every request cost as much again as the
query. DRF's rules are kept: an unknown key or an inactive user is a 401 with DRF's own messages,
and `request.auth` is the token.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from chat_sessions.rows import model_from_row


@functools.cache
def _token_user_sql(token_model: type) -> tuple[str, list[Any]]:
    """(sql, the user's fields in the order of its columns); the token's `created` comes last."""
    user_model = get_user_model()
    quote = connection.ops.quote_name
    users, tokens = quote(user_model._meta.db_table), quote(token_model._meta.db_table)
    user_fields = list(user_model._meta.concrete_fields)
    columns = ", ".join(f"{users}.{quote(field.column)}" for field in user_fields)
    token_user = quote(token_model._meta.get_field("user").column)
    token_key = quote(token_model._meta.get_field("key").column)
    token_created = quote(token_model._meta.get_field("created").column)
    sql = (
        f"SELECT {columns}, {tokens}.{token_created} FROM {users} "  # noqa: S608 (names, not values)
        f"JOIN {tokens} ON {tokens}.{token_user} = {users}.{quote(user_model._meta.pk.column)} "
        f"WHERE {tokens}.{token_key} = %s"
    )
    return sql, user_fields


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, as DRF reads it; the user and token come from one query."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        token_model = self.get_model()
        sql, user_fields = _token_user_sql(token_model)
        with connection.cursor() as cursor:
            cursor.execute(sql, [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = model_from_row(get_user_model(), user_fields, row[:-1])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token_fields = [token_model._meta.get_field(name) for name in ("key", "user", "created")]
        token = model_from_row(token_model, token_fields, (key, user.pk, row[-1]))
        token.user = user
        return user, token
