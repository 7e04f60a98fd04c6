"""What sessions and messages look like over the API, and what a client may send.

Input serializers refuse fields they do not know, so a client that tries to set a server-owned
value (`message_order`, `sender`, a message's `status`, `message_count`) gets a 400 naming it
instead of a silent success.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from chat_sessions.conf import chat_settings
from chat_sessions.dates import datetime_writer
from chat_sessions.models import ChatSession, SessionChatMessage, SessionStatus, TagSource
from chat_sessions.payloads import message_as_dict
from chat_sessions.selectors import sessions_tags_load
from chat_sessions.text import text_holds_surrogate

NOT_TEXT = "Not valid text: it holds a lone surrogate (\\u escape of half a UTF-16 pair)."
#: Fields an HTML form sends that are not the client's input: Django's CSRF token, which the
#: browsable API's forms post along with the fields.
FORM_ONLY_FIELDS = frozenset({"csrfmiddlewaretoken"})


class StrictInputMixin:
    """Reject unknown keys: a typo or a server-owned field is an error the client should see.

    Also reject text that is not Unicode (a lone surrogate) before any field reads it, naming the
    field: every error message that quotes the input can then be sent. In a form or multipart body
    a field given twice (two `file` parts) is refused too, unless it takes a list: DRF would keep
    the last and drop the others without a word.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            if any(text_holds_surrogate(name) for name in data):
                raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [f"A field name: {NOT_TEXT}"]})
            form_only = FORM_ONLY_FIELDS if isinstance(data, QueryDict) else frozenset()
            unknown = sorted(set(data) - set(self.fields) - form_only)
            if unknown:
                raise serializers.ValidationError({name: ["This field cannot be set."] for name in unknown})
            if isinstance(data, QueryDict):
                repeated = sorted(
                    name
                    for name, values in data.lists()
                    if len(values) > 1 and name in self.fields and not _takes_a_list(self.fields[name])
                )
                if repeated:
                    raise serializers.ValidationError({name: ["Give this field once."] for name in repeated})
            unreadable = sorted(name for name, value in data.items() if text_holds_surrogate(value))
            if unreadable:
                raise serializers.ValidationError({name: [NOT_TEXT] for name in unreadable})
        return super().to_internal_value(data)


_LIST_FIELDS = (
    serializers.ListField,
    serializers.ListSerializer,
    serializers.MultipleChoiceField,
    serializers.ManyRelatedField,
)


def _takes_a_list(field: serializers.Field) -> bool:
    return isinstance(field, _LIST_FIELDS)


class MessageSerializer(serializers.ModelSerializer):
    session_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = SessionChatMessage
        fields = (
            "id",
            "session_id",
            "sender",
            "message",
            "status",
            "message_order",
            "client_message_id",
            "timestamp",
            "metadata",
        )
        read_only_fields = fields

    def to_representation(self, instance: SessionChatMessage) -> dict[str, Any]:
        return message_as_dict(instance, moment=self._moment)

    @functools.cached_property
    def _moment(self) -> Callable[[datetime], str]:
        return datetime_writer()  # once per serializer: a page's rows share its `many=True` child


def _tag_names(session: ChatSession, source: str) -> list[str]:
    if getattr(session, "loaded_tags", None) is None:
        sessions_tags_load(sessions=[session])  # a query; lists load all their sessions' tags at once
    return session.loaded_tags.get(source, [])


class ChatSessionSerializer(serializers.ModelSerializer):
    container_id = serializers.CharField(read_only=True)
    tags = serializers.SerializerMethodField()
    suggested_tags = serializers.SerializerMethodField()

    class Meta:
        model = ChatSession
        fields = (
            "id",
            "container_id",
            "title",
            "title_source",
            "status",
            "pinned",
            "tags",
            "suggested_tags",
            "llm_model_name",
            "rag_document_ids",
            "message_count",
            "last_activity",
            "started_at",
            "ended_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def to_representation(self, session: ChatSession) -> dict[str, Any]:
        """The fields above, written out directly: DRF's field-by-field walk was a third of a list page.

        Dates read exactly as DRF's `DateTimeField` writes them (`dates.datetime_writer`).
        """
        moment = self._moment
        return {
            "id": str(session.pk),
            "container_id": str(session.container_id),
            "title": session.title,
            "title_source": session.title_source,
            "status": session.status,
            "pinned": session.pinned,
            "tags": _tag_names(session, TagSource.USER),
            "suggested_tags": _tag_names(session, TagSource.AUTO),
            "llm_model_name": session.llm_model_name,
            "rag_document_ids": session.rag_document_ids,
            "message_count": session.message_count,
            "last_activity": moment(session.last_activity),
            "started_at": moment(session.started_at),
            "ended_at": None if session.ended_at is None else moment(session.ended_at),
            "created_at": moment(session.created_at),
            "updated_at": moment(session.updated_at),
        }

    @functools.cached_property
    def _moment(self) -> Callable[[datetime], str]:
        # Once per serializer: a list's rows share the one its `many=True` parent made.
        return datetime_writer()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, session: ChatSession) -> list[str]:
        return _tag_names(session, TagSource.USER)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_suggested_tags(self, session: ChatSession) -> list[str]:
        return _tag_names(session, TagSource.AUTO)


class ChatSessionDetailSerializer(ChatSessionSerializer):
    messages = MessageSerializer(many=True, read_only=True, source="recent_messages")
    has_older_messages = serializers.BooleanField(read_only=True)
    older_messages = serializers.URLField(
        read_only=True,
        allow_null=True,
        help_text="The messages before `messages`, as the history's `older` link; null when there are none.",
    )

    def to_representation(self, session: ChatSession) -> dict[str, Any]:
        return {
            **super().to_representation(session),
            "messages": [message_as_dict(message, moment=self._moment) for message in session.recent_messages],
            "has_older_messages": session.has_older_messages,
            "older_messages": session.older_messages,
        }

    class Meta(ChatSessionSerializer.Meta):
        fields = (*ChatSessionSerializer.Meta.fields, "messages", "has_older_messages", "older_messages")
        read_only_fields = fields


def _tags_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=chat_settings.MAX_TAG_LENGTH, allow_blank=False),
        max_length=chat_settings.MAX_TAGS,
        required=False,
    )


class ChatSessionCreateSerializer(StrictInputMixin, serializers.Serializer):
    title = serializers.CharField(
        max_length=chat_settings.MAX_TITLE_LENGTH, required=False, allow_blank=True, allow_null=True
    )
    llm_model_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    rag_document_ids = serializers.ListField(
        child=serializers.CharField(max_length=128), max_length=500, required=False
    )
    tags = _tags_field()


class ChatSessionUpdateSerializer(StrictInputMixin, serializers.Serializer):
    title = serializers.CharField(max_length=chat_settings.MAX_TITLE_LENGTH, required=False, allow_blank=False)
    pinned = serializers.BooleanField(required=False)
    tags = _tags_field()
    status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)


class MessageSendSerializer(StrictInputMixin, serializers.Serializer):
    message = serializers.CharField(
        max_length=chat_settings.MAX_MESSAGE_LENGTH, trim_whitespace=True, style={"base_template": "textarea.html"}
    )
    client_message_id = serializers.RegexField(
        r"^[A-Za-z0-9_.:\-]{1,64}$",
        required=False,
        allow_null=True,
        error_messages={"invalid": "Use 1 to 64 letters, digits, '_', '.', ':' or '-'."},
    )


class TurnSerializer(serializers.Serializer):
    """The finished turn, for `Accept: application/json` sends."""

    user_message = MessageSerializer(read_only=True)
    assistant_message = MessageSerializer(read_only=True)
