"""deepsight: a research notebook whose agent you chat with in tabbed sessions."""

from .celery import app as celery_app

__all__ = ("celery_app",)
