"""The hand-written representations say exactly what DRF's generic serializer would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils import timezone
from rest_framework import serializers

from chat_sessions.api.serializers import ChatSessionDetailSerializer, ChatSessionSerializer
from chat_sessions.models import ChatSessionTag, SessionStatus, TagSource
from chat_sessions.selectors import sessions_tags_load
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory


@pytest.fixture
def session(db):
    session = ChatSessionFactory(
        title="Optics",
        status=SessionStatus.CLOSED,
        ended_at=datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC),
        rag_document_ids=["doc-1"],
        pinned=True,
    )
    ChatSessionTag.objects.create(session=session, name="physics", source=TagSource.USER)
    ChatSessionTag.objects.create(session=session, name="light", source=TagSource.AUTO)
    return session


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_a_session_reads_as_drf_would_write_it(session, settings, zone):
    settings.TIME_ZONE = zone
    with timezone.override(zone):
        fast = ChatSessionSerializer(session).data
        generic = serializers.ModelSerializer.to_representation(ChatSessionSerializer(session), session)

    assert fast == generic
    assert (fast["tags"], fast["suggested_tags"]) == (["physics"], ["light"])


def test_a_session_reads_as_drf_would_write_it_with_another_date_format(session, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DATETIME_FORMAT": "%d.%m.%Y %H:%M"}

    fast = ChatSessionSerializer(session).data
    generic = serializers.ModelSerializer.to_representation(ChatSessionSerializer(session), session)

    assert fast == generic
    assert fast["ended_at"] == "29.03.2026 01:30"


def test_a_list_page_with_tags_loaded_in_one_query_reads_the_same(session, django_assert_num_queries):
    generic = ChatSessionSerializer(session).data
    page = [type(session).objects.get(pk=session.pk)]

    with django_assert_num_queries(1):
        sessions_tags_load(sessions=page)
        listed = ChatSessionSerializer(page, many=True).data

    assert listed == [generic]


def test_the_detail_adds_its_recent_messages(session):
    message = MessageFactory(session=session, message_order=1)
    session.recent_messages, session.has_older_messages, session.older_messages = [message], False, None

    data = ChatSessionDetailSerializer(session).data
    generic = serializers.ModelSerializer.to_representation(ChatSessionDetailSerializer(session), session)

    assert data == generic
    assert [item["id"] for item in data["messages"]] == [message.pk]


def test_a_sessions_messages_are_dated_in_the_same_time_zone_as_the_session(session, settings):
    # A host on another TIME_ZONE got sessions at "-05:00" and their messages at "Z" in one response.
    message = MessageFactory(session=session, message_order=1, timestamp=datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
    session.recent_messages, session.has_older_messages, session.older_messages = [message], False, None
    settings.TIME_ZONE = "America/Chicago"
    with timezone.override("America/Chicago"):
        data = ChatSessionDetailSerializer(session).data

    assert data["ended_at"] == "2026-03-28T20:30:15.123456-05:00"
    assert data["messages"][0]["timestamp"] == "2026-03-28T20:30:00-05:00"
