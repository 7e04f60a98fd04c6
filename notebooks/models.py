"""Notebooks, the sources in them, and their RAGFlow counterparts (one dataset, one agent each)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from chat_sessions.models import RemoteCleanupBase


class Notebook(models.Model):
    """A user's research notebook: a knowledge base of sources and an agent that answers from it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    #: The only user who sees it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notebooks")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="", max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated_at", "-id")
        indexes = [models.Index(fields=["owner", "-updated_at", "-id"], name="notebook_owner_list_idx")]

    def __str__(self) -> str:
        return self.name


class RemoteStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    READY = "ready", "Ready"
    ERROR = "error", "Error"
    DELETING = "deleting", "Deleting"


class RagFlowDataset(models.Model):
    """The RAGFlow dataset that mirrors a notebook's sources."""

    notebook = models.OneToOneField(Notebook, on_delete=models.CASCADE, related_name="ragflow_dataset")
    #: RAGFlow's id for the dataset; empty until it has been created.
    remote_id = models.CharField(max_length=128, blank=True, default="")
    #: The name used in RAGFlow (`deepsight-<notebook uuid>`; RAGFlow may deduplicate it).
    name = models.CharField(max_length=128)
    status = models.CharField(max_length=10, choices=RemoteStatus.choices, default=RemoteStatus.PENDING)
    #: What RAGFlow said the last time a call failed; cleared on success.
    last_error = models.TextField(blank=True, default="")
    #: RAGFlow's description of the dataset (embedding model, chunk method, counts).
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class RagFlowAgent(models.Model):
    """The RAGFlow agent made for a notebook from a versioned DSL template."""

    notebook = models.OneToOneField(Notebook, on_delete=models.CASCADE, related_name="ragflow_agent")
    #: RAGFlow's id for the agent (canvas); empty until it has been created.
    remote_id = models.CharField(max_length=128, blank=True, default="")
    #: Unique per RAGFlow tenant, so the agent can be found again when create returns no id.
    title = models.CharField(max_length=255)
    #: The template file (under notebooks/ragflow/templates/) and the version it declared.
    template_name = models.CharField(max_length=100)
    template_version = models.CharField(max_length=20)
    #: The `RAGFLOW_LLM_ID` its DSL was given; empty for agents made before it was recorded.
    llm_id = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=10, choices=RemoteStatus.choices, default=RemoteStatus.PENDING)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.title


class SourceKind(models.TextChoices):
    TEXT = "text", "Pasted text"
    FILE = "file", "Uploaded file"


class ParseStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PARSING = "parsing", "Parsing"
    READY = "ready", "Ready"
    ERROR = "error", "Error"
    DELETING = "deleting", "Deleting"


class Source(models.Model):
    """A document in a notebook: pasted text or an uploaded file, and its parse state in RAGFlow."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    notebook = models.ForeignKey(Notebook, on_delete=models.CASCADE, related_name="sources")
    kind = models.CharField(max_length=10, choices=SourceKind.choices)
    title = models.CharField(max_length=255)
    #: The text the offline agent searches (the pasted text, or the text of the uploaded file).
    content = models.TextField(blank=True, default="")
    #: The uploaded file, stored under a generated name (the user's name is never a path).
    file = models.FileField(upload_to="sources/%Y/%m/", blank=True, null=True)
    mime_type = models.CharField(max_length=100, blank=True, default="")
    size = models.PositiveIntegerField(default=0)
    #: RAGFlow's document id once uploaded.
    remote_document_id = models.CharField(max_length=128, blank=True, default="")
    parse_status = models.CharField(max_length=10, choices=ParseStatus.choices, default=ParseStatus.PENDING)
    #: 0.0 to 1.0, as RAGFlow reports it.
    parse_progress = models.FloatField(default=0.0)
    chunk_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["notebook", "-created_at", "-id"], name="source_notebook_list_idx")]

    def __str__(self) -> str:
        return self.title


class CleanupKind(models.TextChoices):
    DOCUMENT = "document", "Source document"
    NOTEBOOK = "notebook", "Notebook (sessions, agent, dataset)"


class RemoteCleanup(RemoteCleanupBase):
    """A deletion in RAGFlow still owed for a source or notebook deleted here.

    It stays `pending` while a worker retries, becomes `done`, or `failed` with `last_error` for
    an administrator to see (and retry, from the admin).
    """

    kind = models.CharField(max_length=20, choices=CleanupKind.choices)
    #: For people: what was deleted here, e.g. "Source 'Field notes' of notebook 'Botany'".
    label = models.CharField(max_length=300)
    #: The notebook it belonged to (a plain value: the notebook may be gone).
    notebook_id = models.UUIDField(null=True, blank=True, db_index=True)
    #: What to delete, by RAGFlow id; what is already deleted is removed from it as steps succeed.
    #: A document: `{"dataset_id", "document_ids"}`. A notebook: any of `agent_id`, `session_ids`
    #: and `dataset_id` (the agent's sessions first: RAGFlow does not delete them with the agent).
    #: A deleted chat session's conversation is chat_sessions' `RemoteSessionCleanup`.
    remote_ids = models.JSONField(default=dict)

    class Meta(RemoteCleanupBase.Meta):
        indexes = [models.Index(fields=["status", "-created_at"], name="remote_cleanup_status_idx")]

    def __str__(self) -> str:
        return self.label
