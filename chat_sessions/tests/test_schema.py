"""The tables' indexes: each list and lookup has one, and no index is only a prefix of another."""

from __future__ import annotations

import pytest
from django.db import connection

from chat_sessions.models import ChatSession, ChatSessionTag, SessionChatMessage

pytestmark = pytest.mark.django_db


def _indexes(model) -> dict[str, dict]:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, model._meta.db_table)


@pytest.mark.parametrize(
    ("model", "column", "covered_by"),
    [
        (ChatSession, "container_id", "chat_sess_list_idx"),
        (SessionChatMessage, "session_id", "chat_msg_order_unique"),
        (ChatSessionTag, "session_id", "chat_tag_unique_per_session"),
    ],
)
def test_a_foreign_key_led_by_a_composite_index_has_no_index_of_its_own(model, column, covered_by):
    indexes = _indexes(model)

    assert indexes[covered_by]["columns"][0] == column
    plain = [
        name
        for name, facts in indexes.items()
        if facts["index"] and not facts["unique"] and not facts["primary_key"] and facts["columns"] == [column]
    ]
    assert plain == []


def test_the_one_streaming_answer_rule_outlives_the_index_cleanup():
    assert _indexes(SessionChatMessage)["chat_msg_one_streaming_unique"]["unique"] is True
