"""`visible_sql` picks exactly the sessions `selectors.sessions_for_user` does, whatever the policy."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection

from chat_sessions.models import ChatSession
from chat_sessions.selectors import sessions_for_user
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory
from chat_sessions.visibility_sql import visible_sql
from notebooks.models import Notebook

pytestmark = pytest.mark.django_db


def unlocked_by_name(*, user):
    return Notebook.objects.filter(owner=user).exclude(name="locked").order_by("name")


def named_ids(*, user):
    """A policy that picks its own column, as `container__in=` allows."""
    return Notebook.objects.filter(owner=user, name__startswith="n").values("id")


def chatted_in(*, user):
    """A policy that reads the sessions table itself: its own rows must not be taken for the outer ones."""
    return Notebook.objects.filter(chat_sessions__created_by=user, chat_sessions__title__startswith="Mine")


def everyone_s(*, user):
    return Notebook.objects.all()


def none_at_all(*, user):
    return Notebook.objects.none()


def picked_by_sql(*, user, container_id) -> set:
    table = connection.ops.quote_name(ChatSession._meta.db_table)
    visible = visible_sql(user=user, container_id=container_id, table=table, using=connection.alias)
    if visible is None:
        return set()
    id_field = ChatSession._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {table}.id FROM {table} WHERE {visible[0]}", visible[1])  # noqa: S608
        return {id_field.to_python(row[0]) for row in cursor.fetchall()}


@pytest.mark.parametrize("policy", [None, "unlocked_by_name", "named_ids", "chatted_in", "everyone_s", "none_at_all"])
def test_the_sql_rule_picks_what_the_orm_rule_picks(user, other_user, settings, policy):
    if policy:
        settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "ACCESS_POLICY": f"{__name__}.{policy}"}
    notebooks = [
        NotebookFactory(owner=user, name="locked"),
        NotebookFactory(owner=user, name="notes"),
        NotebookFactory(owner=user, name="open"),
        NotebookFactory(owner=other_user, name="nothing of mine"),
    ]
    for notebook in notebooks:
        for starter in (user, other_user):
            title = "Mine" if starter == user and notebook.name in ("notes", "open") else "Other"
            ChatSessionFactory.create_batch(2, container=notebook, created_by=starter, title=title)

    for who in (user, other_user):
        for notebook in notebooks:
            expected = set(sessions_for_user(user=who, container_id=notebook.pk).values_list("pk", flat=True))
            assert picked_by_sql(user=who, container_id=notebook.pk) == expected
    # Not an empty agreement: the user's own sessions in "open" are seen unless the policy hides it.
    mine_in_open = set(ChatSession.objects.filter(container=notebooks[2], created_by=user).values_list("pk", flat=True))
    hidden = policy in ("none_at_all", "named_ids")
    assert picked_by_sql(user=user, container_id=notebooks[2].pk) == (set() if hidden else mine_in_open)
    assert len(mine_in_open) == 2


def test_no_session_is_visible_to_an_anonymous_user_or_in_a_container_no_id_can_name(user):
    ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)

    assert visible_sql(user=AnonymousUser(), container_id=uuid.uuid4(), table="t", using=connection.alias) is None
    assert visible_sql(user=user, container_id="not-a-uuid", table="t", using=connection.alias) is None
