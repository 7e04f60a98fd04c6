"""App config for chat_sessions: registers the system checks."""

from django.apps import AppConfig


class ChatSessionsConfig(AppConfig):
    name = "chat_sessions"
    verbose_name = "Chat sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat_sessions import checks  # noqa: F401  (registers the checks)
