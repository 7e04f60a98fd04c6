"""App config for notebooks."""

from django.apps import AppConfig


class NotebooksConfig(AppConfig):
    name = "notebooks"
    verbose_name = "Notebooks"
    default_auto_field = "django.db.models.BigAutoField"
