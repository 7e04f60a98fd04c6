"""Fixtures shared by the chat API's tests."""

from __future__ import annotations

import pytest

from chat_sessions.tests.factories import NotebookFactory


@pytest.fixture
def notebook(user):
    """A notebook of `user`'s, the container most tests chat in."""
    return NotebookFactory(owner=user)
