"""The API paths the tests request, written once."""

from __future__ import annotations


def sessions_url(notebook_id) -> str:
    return f"/api/v1/notebooks/{notebook_id}/chat/sessions/"


def session_url(session) -> str:
    return f"{sessions_url(session.container_id)}{session.id}/"


def messages_url(session) -> str:
    return f"{session_url(session)}messages/"
