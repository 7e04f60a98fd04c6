"""Admin for notebooks, their sources and their RAGFlow counterparts.

Deleting a notebook or a source goes through the services, as from the API and the pages.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from chat_sessions.admin import DeletedWithOwnerMixin
from chat_sessions.models import CleanupStatus
from notebooks import services
from notebooks.models import Notebook, RagFlowAgent, RagFlowDataset, RemoteCleanup, Source
from notebooks.provisioning import (
    agent_template_update_schedule,
    ragflow_enabled,
    remote_cleanup_retry,
    source_sync_retry,
)

#: Characters of a source's text its admin page shows: the whole of a 10 MB upload's text would
#: make the page heavy, and its form too large to post back (the request body limit, 1 MiB).
CONTENT_SHOWN = 2_000
RAGFLOW_OFF = "RAGFlow is not configured (RAGFLOW_BASE_URL), so nothing was queued."


def _said_ragflow_is_off(model_admin: admin.ModelAdmin, request: HttpRequest) -> bool:
    """True, with a warning to the admin, when a RAGFlow action could only claim work it will not do."""
    if ragflow_enabled():
        return False
    model_admin.message_user(request, RAGFLOW_OFF, messages.WARNING)
    return True


class SourceInline(admin.TabularInline):
    model = Source
    fields = ("title", "kind", "parse_status", "parse_progress", "size", "created_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(Notebook)
class NotebookAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "created_at", "updated_at")
    search_fields = ("name", "owner__username", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    inlines = (SourceInline,)

    # Deleting goes through the service, as from the API: RAGFlow is owed its agent and dataset,
    # and the sources' uploaded files are removed.
    def delete_model(self, request: HttpRequest, obj: Notebook) -> None:
        services.notebook_delete(notebook=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Notebook]) -> None:
        for notebook in queryset:
            services.notebook_delete(notebook=notebook)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("title", "notebook", "kind", "parse_status", "size", "last_error", "created_at")
    list_filter = ("kind", "parse_status")
    search_fields = ("title", "notebook__name")
    list_select_related = ("notebook",)
    raw_id_fields = ("notebook",)
    exclude = ("content",)
    readonly_fields = ("content_start",)
    actions = ("ragflow_retry",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # added from the notebook's page or the API, which read the file's text and upload it

    @admin.display(description="Text")
    def content_start(self, source: Source) -> str:
        """The start of the text the agent reads, read-only: it is read from the source, not typed."""
        return Truncator(source.content).chars(CONTENT_SHOWN) + f" ({len(source.content):,} characters)"

    # As from the API: RAGFlow is owed the document, and the uploaded file is removed.
    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        services.source_delete(source=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            services.source_delete(source=source)

    @admin.action(description="Send the selected sources to RAGFlow again (upload or parse)")
    def ragflow_retry(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        if _said_ragflow_is_off(self, request):
            return
        retried = sum(source_sync_retry(source=source) for source in queryset)
        self.message_user(request, f"{retried} source(s) queued for RAGFlow again.", messages.SUCCESS)


@admin.register(RagFlowDataset)
class RagFlowDatasetAdmin(DeletedWithOwnerMixin, admin.ModelAdmin):
    """Deleted with its notebook, which owes RAGFlow the dataset: a row deleted alone left the
    dataset and its documents in RAGFlow with nothing to say they were there."""

    deleted_with = "its notebook"
    list_display = ("name", "notebook", "remote_id", "status", "last_error", "updated_at")
    list_filter = ("status",)
    search_fields = ("name", "remote_id", "notebook__name")
    raw_id_fields = ("notebook",)


@admin.register(RagFlowAgent)
class RagFlowAgentAdmin(DeletedWithOwnerMixin, admin.ModelAdmin):
    """Deleted with its notebook, which owes RAGFlow the agent and its conversations."""

    deleted_with = "its notebook"
    list_display = (
        "title",
        "notebook",
        "remote_id",
        "template_name",
        "template_version",
        "llm_id",
        "status",
        "last_error",
    )
    list_filter = ("status", "template_version")
    search_fields = ("title", "remote_id", "notebook__name")
    raw_id_fields = ("notebook",)
    actions = ("template_update",)

    @admin.action(description="Update the selected agents to the current template and RAGFLOW_LLM_ID")
    def template_update(self, request: HttpRequest, queryset: QuerySet[RagFlowAgent]) -> None:
        if _said_ragflow_is_off(self, request):
            return
        if not settings.RAGFLOW_LLM_ID:
            self.message_user(request, "RAGFLOW_LLM_ID is not set, so no agent can be updated.", messages.WARNING)
            return
        asked = sum(agent_template_update_schedule(agent=agent) for agent in queryset)
        self.message_user(
            request,
            f"{asked} agent(s) will be brought up to date (those already current are left as they are); "
            "agents not yet created in RAGFlow will be made from the current template anyway.",
            messages.SUCCESS,
        )


@admin.register(RemoteCleanup)
class RemoteCleanupAdmin(admin.ModelAdmin):
    """Deletions RAGFlow still owes; a `failed` one needs a look (its `last_error`) and a retry."""

    list_display = ("label", "kind", "status", "attempts", "last_error", "created_at", "finished_at")
    list_filter = ("status", "kind")
    search_fields = ("label", "notebook_id", "last_error")
    readonly_fields = (
        "kind",
        "label",
        "notebook_id",
        "remote_ids",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
        "finished_at",
    )
    actions = ("retry",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Try the selected clean-ups again")
    def retry(self, request: HttpRequest, queryset: QuerySet[RemoteCleanup]) -> None:
        if _said_ragflow_is_off(self, request):
            return
        retried = 0
        for cleanup in queryset.exclude(status=CleanupStatus.DONE):
            remote_cleanup_retry(cleanup=cleanup)
            retried += 1
        self.message_user(request, f"{retried} clean-up(s) queued again.", messages.SUCCESS)
