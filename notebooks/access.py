"""Who may use a notebook: its owner. Named in `CHAT_SESSIONS["ACCESS_POLICY"]`."""

from __future__ import annotations

from django.db.models import QuerySet

from notebooks.models import Notebook


def notebooks_for_user(*, user) -> QuerySet[Notebook]:
    """The notebooks this user owns; none for an anonymous user."""
    if not getattr(user, "is_authenticated", False):
        return Notebook.objects.none()
    return Notebook.objects.filter(owner=user)
