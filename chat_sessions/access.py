"""Who may chat in which container: the default `ACCESS_POLICY`.

A policy is a callable `(*, user) -> QuerySet` of containers. Returning a queryset (not a yes/no
per object) lets every list and lookup filter in the database, so a foreign container is simply
not found: a 404, never a 403 that would confirm it exists.
"""

from __future__ import annotations

from django.apps import apps
from django.db.models import QuerySet

from chat_sessions.conf import chat_settings


def container_model():
    """The model class named by `CHAT_SESSIONS["CONTAINER_MODEL"]`."""
    return apps.get_model(chat_settings.CONTAINER_MODEL, require_ready=False)


def containers_owned_by(*, user) -> QuerySet:
    """Containers whose `CONTAINER_OWNER_FIELD` is this user; none for an anonymous user."""
    model = container_model()
    if not getattr(user, "is_authenticated", False):
        return model.objects.none()
    return model.objects.filter(**{chat_settings.CONTAINER_OWNER_FIELD: user})


def containers_for_user(*, user) -> QuerySet:
    """Containers this user may chat in, according to the configured `ACCESS_POLICY`."""
    if not getattr(user, "is_authenticated", False):
        return container_model().objects.none()
    return chat_settings.ACCESS_POLICY(user=user)
