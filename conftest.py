"""Fixtures shared by every test: users, API clients, and clean shared state between tests."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from chat_sessions.tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


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
def _close_persistence_connections():
    yield
    from chat_sessions.streaming.persistence import persistence_reset

    persistence_reset()
