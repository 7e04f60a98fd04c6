"""Admin for notebooks, their sources and their RAGFlow counterparts."""

from django.contrib import admin

from notebooks.models import Notebook, RagFlowAgent, RagFlowDataset, Source


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


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("title", "notebook", "kind", "parse_status", "size", "created_at")
    list_filter = ("kind", "parse_status")
    search_fields = ("title", "notebook__name")
    list_select_related = ("notebook",)
    raw_id_fields = ("notebook",)


@admin.register(RagFlowDataset)
class RagFlowDatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "notebook", "remote_id", "status", "updated_at")
    list_filter = ("status",)
    search_fields = ("name", "remote_id", "notebook__name")
    raw_id_fields = ("notebook",)


@admin.register(RagFlowAgent)
class RagFlowAgentAdmin(admin.ModelAdmin):
    list_display = ("title", "notebook", "remote_id", "template_name", "template_version", "status")
    list_filter = ("status", "template_version")
    search_fields = ("title", "remote_id", "notebook__name")
    raw_id_fields = ("notebook",)
