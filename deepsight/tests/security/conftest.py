"""Fixtures of the security suite: the actors of the permission matrix and one user's world of objects."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.authtoken.models import Token

from chat_sessions.models import MessageStatus, Sender
from chat_sessions.tests.factories import (
    ChatSessionFactory,
    MessageFactory,
    NotebookFactory,
    SourceFactory,
    UserFactory,
)
from notebooks.tests.conftest import eager_retries, fake_ragflow, ragflow  # noqa: F401  (the RAGFlow fixtures)


@dataclass
class World:
    """Everything one owner has: a notebook with a source and a session holding one whole turn."""

    owner: object
    notebook: object
    source: object
    session: object
    question: object
    answer: object


def world_create(owner) -> World:
    name = owner.get_username()
    notebook = NotebookFactory(owner=owner, name=f"{name}'s notebook", description=f"{name}'s private notes")
    source = SourceFactory(notebook=notebook, title=f"{name}'s source")
    session = ChatSessionFactory(container=notebook, created_by=owner, title=f"{name}'s chat", message_count=2)
    question = MessageFactory(session=session, sender=Sender.USER, message=f"{name}'s question", message_order=1)
    answer = MessageFactory(
        session=session,
        sender=Sender.ASSISTANT,
        message=f"{name}'s answer",
        message_order=2,
        status=MessageStatus.COMPLETE,
    )
    return World(owner, notebook, source, session, question, answer)


def pytest_configure(config):
    # As the browser suite does: tests never collect static files, so WhiteNoise serves them from
    # the apps' folders; it reads this when the ASGI app is first built, which may be in any test.
    from django.conf import settings

    settings.WHITENOISE_USE_FINDERS = True


@pytest.fixture
def staff_user(db):
    """A superuser who owns nothing: the admin shows them everything, the API nothing of others."""
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def other_token(other_user):
    return Token.objects.create(user=other_user).key
