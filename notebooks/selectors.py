"""Notebook reads, scoped to the user: another user's notebook or source is simply not there."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from notebooks.access import notebooks_for_user
from notebooks.models import Notebook, Source


def notebook_list(*, user) -> QuerySet[Notebook]:
    return notebooks_for_user(user=user).select_related("ragflow_dataset").order_by("-updated_at", "-id")


def notebook_get(*, user, notebook_id) -> Notebook | None:
    try:
        return notebook_list(user=user).filter(pk=notebook_id).first()
    except (ValidationError, ValueError):
        return None


def source_list(*, notebook: Notebook) -> QuerySet[Source]:
    return Source.objects.filter(notebook=notebook).defer("content").order_by("-created_at", "-id")


def source_get(*, notebook: Notebook, source_id) -> Source | None:
    try:
        return source_list(notebook=notebook).filter(pk=source_id).first()
    except (ValidationError, ValueError):
        return None
