"""What notebooks and sources look like over the API, and what a client may send."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from chat_sessions.api.serializers import StrictInputMixin
from notebooks.models import Notebook, Source
from notebooks.uploads import ALLOWED_EXTENSIONS


class NotebookLinksSerializer(serializers.Serializer):
    self = serializers.URLField()
    sources = serializers.URLField()
    sessions = serializers.URLField()


class NotebookSerializer(serializers.ModelSerializer):
    links = serializers.SerializerMethodField(help_text="Where the notebook, its sources and its chat sessions are.")
    dataset_status = serializers.SerializerMethodField(
        help_text="The RAGFlow dataset's state (pending, ready, error, deleting); null without RAGFlow."
    )
    dataset_error = serializers.SerializerMethodField(help_text="Why the RAGFlow dataset is in error, if it is.")

    class Meta:
        model = Notebook
        fields = ("id", "name", "description", "links", "dataset_status", "dataset_error", "created_at", "updated_at")
        read_only_fields = fields

    @extend_schema_field(NotebookLinksSerializer)
    def get_links(self, notebook: Notebook) -> dict[str, str]:
        """Absolute with the request in the context (the browsable API makes them links), else paths."""
        request = self.context.get("request")
        return {
            "self": reverse("notebooks_api:notebook-detail", args=[notebook.pk], request=request),
            "sources": reverse("notebooks_api:source-list", args=[notebook.pk], request=request),
            "sessions": reverse("chat_sessions:session-list", kwargs={"container_id": notebook.pk}, request=request),
        }

    def get_dataset_status(self, notebook: Notebook) -> str | None:
        dataset = getattr(notebook, "ragflow_dataset", None)
        return dataset.status if dataset is not None else None

    def get_dataset_error(self, notebook: Notebook) -> str:
        dataset = getattr(notebook, "ragflow_dataset", None)
        return dataset.last_error if dataset is not None else ""


class NotebookWriteSerializer(StrictInputMixin, serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class SourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Source
        fields = (
            "id",
            "kind",
            "title",
            "mime_type",
            "size",
            "parse_status",
            "parse_progress",
            "chunk_count",
            "last_error",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class SourceCreateSerializer(StrictInputMixin, serializers.Serializer):
    """Either `content` (pasted text) or `file` (multipart upload), with an optional `title`."""

    title = serializers.CharField(max_length=255, required=False, allow_blank=True)
    content = serializers.CharField(
        max_length=1_000_000, required=False, trim_whitespace=False, style={"base_template": "textarea.html"}
    )
    file = serializers.FileField(required=False, help_text=f"One of: {', '.join(ALLOWED_EXTENSIONS)}; at most 10 MB.")

    def validate(self, attrs: dict) -> dict:
        has_text = bool((attrs.get("content") or "").strip())
        if has_text == bool(attrs.get("file")):
            raise serializers.ValidationError("Send either 'content' (pasted text) or 'file', not both or neither.")
        return attrs
