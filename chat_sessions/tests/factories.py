"""factory-boy factories for users, notebooks, sources, sessions and messages."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from chat_sessions.models import ChatSession, MessageStatus, Sender, SessionChatMessage
from notebooks.models import Notebook, Source, SourceKind


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class NotebookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notebook

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Notebook {n}")


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source

    notebook = factory.SubFactory(NotebookFactory)
    kind = SourceKind.TEXT
    title = factory.Sequence(lambda n: f"Source {n}")
    content = "Photosynthesis converts light energy into chemical energy stored in glucose."
    parse_status = "ready"


class ChatSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatSession

    container = factory.SubFactory(NotebookFactory)
    created_by = factory.LazyAttribute(lambda session: session.container.owner)
    title = "New Chat"


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SessionChatMessage

    session = factory.SubFactory(ChatSessionFactory)
    sender = Sender.USER
    message = factory.Sequence(lambda n: f"Message {n}")
    status = MessageStatus.COMPLETE
    message_order = factory.Sequence(lambda n: n + 1)
