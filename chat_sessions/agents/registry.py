"""One instance per configured backend per process, built on first use."""

from __future__ import annotations

from chat_sessions.agents.base import AgentBackend
from chat_sessions.conf import chat_settings

_instances: dict[str, AgentBackend | None] = {}


def agent_backend() -> AgentBackend:
    """The backend that answers turns (`CHAT_SESSIONS["AGENT_BACKEND"]`)."""
    if "agent" not in _instances:
        _instances["agent"] = chat_settings.AGENT_BACKEND()
    return _instances["agent"]


def title_backend() -> AgentBackend | None:
    """The backend that writes titles (`CHAT_SESSIONS["TITLE_BACKEND"]`), or None for heuristics."""
    if "title" not in _instances:
        backend_class = chat_settings.TITLE_BACKEND
        _instances["title"] = backend_class() if backend_class else None
    return _instances["title"]


def agent_backends_reset() -> None:
    """Forget the instances (settings changed)."""
    _instances.clear()
