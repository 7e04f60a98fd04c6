"""The project as an app: it registers the project's own system checks."""

from django.apps import AppConfig


class DeepsightConfig(AppConfig):
    name = "deepsight"
    verbose_name = "deepsight project"

    def ready(self) -> None:
        from deepsight import checks  # noqa: F401  (registers the checks)
