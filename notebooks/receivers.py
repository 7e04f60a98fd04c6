"""Signal receivers: a user deleted anywhere (the admin, a shell, a host project) takes their notebooks
through `notebook_delete`, so RAGFlow is owed its copies and uploaded files go, as for any notebook."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from notebooks import services


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="notebooks.owner_deleted")
def owner_notebooks_delete(sender: type, instance: Any, **kwargs: Any) -> None:
    # pre_delete runs inside the user's deletion transaction, before any row goes: what the notebooks
    # owe is recorded with them, and is dropped with them if that deletion rolls back.
    services.owner_notebooks_delete(owner=instance)
