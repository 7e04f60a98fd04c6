"""Fixtures shared by every test: users, API clients, and clean shared state between tests."""

from __future__ import annotations

import pytest
from celery.result import _set_task_join_will_block
from django.core.cache import cache
from rest_framework.test import APIClient

from chat_sessions.tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _celery_not_inside_a_task():
    """Start each test outside any Celery task, as a real caller is.

    Eager tasks mark "a task is running" in one process-wide flag, set on entry and restored on
    exit. Eager tasks run at once in a test server's threads (a load test's sends each queue a
    title) interleave those restores and can leave the flag set, and every later `.get()` then
    fails with "Never call result.get() within a task!".
    """
    _set_task_join_will_block(False)


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def owner_client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


@pytest.fixture(scope="session", autouse=True)
def _close_persistence_connections(django_db_setup, django_db_blocker):
    """Close the streaming persistence threads' connections before the test database is dropped."""
    yield
    from chat_sessions.streaming.persistence import persistence_reset

    persistence_reset()


@pytest.fixture
def live_server_asgi(transactional_db):
    """deepsight served by a real uvicorn on loopback, sharing this test's database."""
    from deepsight.testing.servers import asgi_served

    with asgi_served() as server:
        yield server


@pytest.fixture
def fake_openai():
    """A fake OpenAI-compatible server on loopback (see deepsight/testing/fake_openai.py)."""
    from deepsight.testing.fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def openai_agent(settings, fake_openai):
    """Make the OpenAI-compatible backend (pointed at the fake) answer every turn."""
    settings.CHAT_SESSIONS = {
        **settings.CHAT_SESSIONS,
        "AGENT_BACKEND": "chat_sessions.agents.openai.OpenAICompatibleAgent",
        "OPENAI": {"BASE_URL": fake_openai.base_url, "API_KEY": "sk-test-secret", "MODEL": "fake-model"},
    }
    return fake_openai


@pytest.fixture
def user_token(user):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user).key
