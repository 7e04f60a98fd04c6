"""The app's settings: the `CHAT_SESSIONS` dict of the host project, with defaults.

Read values as attributes of `chat_settings` (`chat_settings.IDLE_TIMEOUT`). Keys listed in
`IMPORT_STRINGS` are dotted paths, imported on first use, like `EMAIL_BACKEND`. Tests that change
`CHAT_SESSIONS` with `override_settings` see the new values: the cache is dropped on
`setting_changed`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # "app_label.Model" sessions belong to, like AUTH_USER_MODEL. Read once, by the migrations too.
    "CONTAINER_MODEL": "notebooks.Notebook",
    # Callable `(*, user) -> QuerySet` of the containers this user may chat in.
    "ACCESS_POLICY": "chat_sessions.access.containers_owned_by",
    # Field on the container that names its owner; used by the default ACCESS_POLICY only.
    "CONTAINER_OWNER_FIELD": "owner",
    # The AgentBackend subclass that answers turns (see chat_sessions.agents.base).
    "AGENT_BACKEND": "chat_sessions.agents.openai.OpenAICompatibleAgent",
    # The AgentBackend used to write session titles; None means: the heuristic title only.
    "TITLE_BACKEND": None,
    "DEFAULT_TITLE": "New Chat",
    "MAX_TITLE_LENGTH": 200,
    "MAX_MESSAGE_LENGTH": 32_000,
    "MAX_TAGS": 20,
    "MAX_TAG_LENGTH": 50,
    "PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 100,
    # Messages of history handed to the agent with each turn.
    "HISTORY_MESSAGES": 20,
    # Active sessions idle longer than this are closed by the housekeeping task.
    "IDLE_TIMEOUT": timedelta(hours=24),
    "AUTO_CLOSE_EXEMPTS_PINNED": True,
    # An assistant message still `streaming` with no write for this long belongs to a dead process
    # (a restart mid-answer): it is marked `interrupted`. Several HEARTBEAT_INTERVALs.
    "STALE_STREAM_AFTER": timedelta(minutes=1),
    # Each process marks its live answers as written this often (seconds), even while the agent is silent.
    "HEARTBEAT_INTERVAL": 10.0,
    # A generation that runs longer than this is stopped and saved as `error`.
    "MAX_GENERATION_SECONDS": 600,
    # The growing answer is written to the database at least this often (seconds).
    "FLUSH_INTERVAL": 1.0,
    # An SSE comment is sent after this many seconds of silence, so proxies keep the stream open.
    "PING_INTERVAL": 15.0,
    # Streams still generating, across all of a user's sessions; one more gets a 429.
    "MAX_CONCURRENT_GENERATIONS_PER_USER": 4,
    # How long a finished stream's events stay replayable (then the saved message answers).
    "STREAM_RETENTION": timedelta(minutes=5),
    # With a Redis URL, stream events and stop signals cross processes (any replica can resume).
    "REDIS_URL": "",
    "REDIS_KEY_PREFIX": "chat_sessions",
    # Threads that write streaming answers to the database, shared by every stream of a process.
    "PERSIST_THREADS": 4,
    # The OpenAI-compatible backend: any server speaking /v1/chat/completions.
    "OPENAI": {
        "BASE_URL": "",  # e.g. http://localhost:11434/v1 (Ollama) or https://api.openai.com/v1
        "API_KEY": "",
        "MODEL": "gpt-4o-mini",
        "SYSTEM_PROMPT": "You are a helpful research assistant.",
    },
    # Upstream HTTP: one pooled client per process; reads idle this long fail the turn.
    "HTTP_CONNECT_TIMEOUT": 10.0,
    "HTTP_READ_TIMEOUT": 120.0,
    "HTTP_MAX_CONNECTIONS": 2000,
}

IMPORT_STRINGS = ("ACCESS_POLICY", "AGENT_BACKEND", "TITLE_BACKEND")


class ChatSessionsSettings:
    """Attribute access to `settings.CHAT_SESSIONS` over `DEFAULTS`, imports resolved lazily."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, "CHAT_SESSIONS", {}) or {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Invalid CHAT_SESSIONS setting: {name!r}")
        if name in self._cache:
            return self._cache[name]
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        self._cache[name] = value
        return value

    def reload(self) -> None:
        self._cache.clear()


chat_settings = ChatSessionsSettings()


def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "CHAT_SESSIONS":
        chat_settings.reload()
        from chat_sessions.agents.registry import agent_backends_reset

        agent_backends_reset()


setting_changed.connect(_reload_on_change)
