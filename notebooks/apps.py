"""App config for notebooks: registers the system checks and the signal receivers."""

from django.apps import AppConfig


class NotebooksConfig(AppConfig):
    name = "notebooks"
    verbose_name = "Notebooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from notebooks import checks, receivers  # noqa: F401  (registers the checks and receivers)
