"""Notebook writes: notebooks and their sources created, changed and deleted.

When RAGFlow is configured, each change is mirrored there by a worker after the transaction
commits (see `notebooks.tasks`); the local rows are the truth the user sees.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from notebooks import provisioning
from notebooks.models import Notebook, Source, SourceKind
from notebooks.uploads import upload_check


@transaction.atomic
def notebook_create(*, owner, name: str, description: str = "") -> Notebook:
    notebook = Notebook.objects.create(owner=owner, name=name.strip(), description=description.strip())
    provisioning.notebook_provision_start(notebook=notebook)
    return notebook


@transaction.atomic
def notebook_update(*, notebook: Notebook, name: str | None = None, description: str | None = None) -> Notebook:
    if name is not None:
        notebook.name = name.strip()
    if description is not None:
        notebook.description = description.strip()
    notebook.save(update_fields=["name", "description", "updated_at"])
    return notebook


@transaction.atomic
def notebook_delete(*, notebook: Notebook) -> None:
    """Delete a notebook here at once; its RAGFlow agent, sessions and dataset are owed to RAGFlow.

    Its sources' uploaded files go once the deletion commits: the cascade deletes their rows only.
    """
    provisioning.notebook_remote_cleanup_record(notebook=notebook)
    stored = [name for name in notebook.sources.values_list("file", flat=True) if name]
    notebook.delete()
    _stored_files_delete(names=stored)


@transaction.atomic
def owner_notebooks_delete(*, owner) -> int:
    """Delete every notebook of a user, each as `notebook_delete` does; the number deleted.

    For a user about to be deleted: their cascade would delete the rows only, owing RAGFlow nothing
    and leaving the uploaded files.
    """
    notebooks = list(Notebook.objects.filter(owner=owner))
    for notebook in notebooks:
        notebook_delete(notebook=notebook)
    return len(notebooks)


def _stored_files_delete(*, names: list[str]) -> None:
    """Delete uploaded files after the commit, so a deletion that rolls back keeps them."""
    if not names:
        return
    storage = Source._meta.get_field("file").storage

    def delete() -> None:
        for name in names:
            storage.delete(name)

    transaction.on_commit(delete, robust=True)


@transaction.atomic
def source_create_text(*, notebook: Notebook, title: str, content: str) -> Source:
    """Add pasted text as a source."""
    source = Source.objects.create(
        notebook=notebook,
        kind=SourceKind.TEXT,
        title=title.strip() or "Pasted text",
        content=content,
        mime_type="text/plain",
        size=len(content.encode()),
        **provisioning.source_initial_state(),
    )
    Notebook.objects.filter(pk=notebook.pk).update(updated_at=source.created_at)
    provisioning.source_upload_schedule(source=source)
    return source


@transaction.atomic
def source_create_file(*, notebook: Notebook, upload: UploadedFile, title: str = "") -> Source:
    """Add an uploaded file as a source; raises `UploadRejected` for a file we do not take."""
    checked = upload_check(upload)
    source = Source(
        notebook=notebook,
        kind=SourceKind.FILE,
        title=title.strip() or checked.title,
        content=checked.text,
        mime_type=checked.mime_type,
        size=checked.size,
        **provisioning.source_initial_state(),
    )
    upload.seek(0)
    source.file.save(f"{source.id}{checked.extension}", ContentFile(upload.read()), save=False)
    source.save()
    Notebook.objects.filter(pk=notebook.pk).update(updated_at=source.created_at)
    provisioning.source_upload_schedule(source=source)
    return source


@transaction.atomic
def source_delete(*, source: Source) -> None:
    """Delete a source here at once; its RAGFlow document is owed to RAGFlow."""
    provisioning.source_remote_cleanup_record(source=source)
    stored = [source.file.name] if source.file else []
    source.delete()
    _stored_files_delete(names=stored)
