"""Admin for chat sessions: find a session by title or owner, read its messages, close or reopen it.

Status changes and deletions go through the services, so the admin obeys the same rules as the API.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from chat_sessions import services
from chat_sessions.models import (
    ChatSession,
    ChatSessionTag,
    CleanupStatus,
    MessageStatus,
    RemoteSessionCleanup,
    SessionChatMessage,
    SessionStatus,
    TitleSource,
)
from chat_sessions.rendering import markdown_to_safe_html

#: Messages a session's page shows, the newest; the rest are one link away, in the messages' list.
RECENT_MESSAGES_SHOWN = 50


class ChatSessionTagInline(admin.TabularInline):
    model = ChatSessionTag
    extra = 0


class SessionAdminForm(forms.ModelForm):
    """Each field posts the value it was shown with, so the save can tell what this form changed
    from what the session's user changed while the page was open (`ChatSessionAdmin.save_model`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.show_hidden_initial = True


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ("title", "created_by", "container", "status", "pinned", "message_count", "last_activity")
    list_filter = ("status", "pinned", "title_source", ("container", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "created_by__username", "created_by__email")
    list_select_related = ("created_by", "container")
    readonly_fields = (
        "id",
        "recent_messages",
        "rag_document_ids",
        "session_metadata",
        "message_count",
        "last_activity",
        "started_at",
        "ended_at",
        "remote_agent_id",
        "remote_session_id",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("created_by", "container")
    form = SessionAdminForm
    inlines = (ChatSessionTagInline,)
    actions = ("close_sessions", "reopen_sessions")
    date_hierarchy = "last_activity"

    @admin.display(description="Messages")
    def recent_messages(self, session: ChatSession) -> str:
        """The newest messages, oldest first, read-only; a link to all of them.

        Not an inline: an inline renders every message, and a session of 5,000 made its page
        take 9 s and 10 MB.
        """
        recent = list(session.messages.order_by("-message_order")[:RECENT_MESSAGES_SHOWN])[::-1]
        if not recent:
            return "No messages yet."
        change = "admin:chat_sessions_sessionchatmessage_change"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse(change, args=[m.pk]),
                    m.message_order,
                    m.sender,
                    m.status,
                    Truncator(m.message).chars(300),
                    formats.localize(timezone.localtime(m.timestamp)),
                )
                for m in recent
            ),
        )
        everything = reverse("admin:chat_sessions_sessionchatmessage_changelist") + f"?session__id__exact={session.pk}"
        return format_html(
            "<table><thead><tr><th>#</th><th>sender</th><th>status</th><th>message</th><th>time</th></tr></thead>"
            '<tbody>{}</tbody></table><p><a href="{}">All {} messages</a></p>',
            rows,
            everything,
            session.message_count,
        )

    # As from the API: a remote conversation is owed its deletion (`services.session_delete`).
    def delete_model(self, request, obj: ChatSession) -> None:
        services.session_delete(session=obj)

    def delete_queryset(self, request, queryset) -> None:
        for session in queryset:
            services.session_delete(session=session)

    def has_add_permission(self, request) -> bool:
        return False  # opened by its user (the page or the API), which sets owner, notebook and status together

    def save_model(self, request, obj: ChatSession, form, change: bool) -> None:
        """Write only what the form changed, so a rename or a pin made meanwhile by the user stays.

        A status chosen on the form is applied by the services, as the actions and the API do
        (closing sets `ended_at`, reopening clears it and starts the session again); a title
        typed here is a person's, as a rename is, so naming it from the first exchange leaves it.
        """
        changed = list(form.changed_data)
        status = None
        if "status" in changed:
            status, obj.status = obj.status, form.initial["status"]
            changed.remove("status")
        if "title" in changed and "title_source" not in changed:
            obj.title_source = TitleSource.USER
            changed.append("title_source")
        if changed:
            obj.save(update_fields=[*changed, "updated_at"])
        if status is not None:
            services.session_update(session=obj, status=status)

    @admin.action(description="Close the selected sessions (messages are kept)")
    def close_sessions(self, request, queryset) -> None:
        sessions = list(queryset.filter(status=SessionStatus.ACTIVE))
        for session in sessions:
            services.session_close(session=session)
        self.message_user(request, f"Closed {len(sessions)} session(s).", messages.SUCCESS)

    @admin.action(description="Reopen the selected sessions")
    def reopen_sessions(self, request, queryset) -> None:
        sessions = list(queryset.exclude(status=SessionStatus.ACTIVE))
        for session in sessions:
            services.session_reopen(session=session)
        self.message_user(request, f"Reopened {len(sessions)} session(s).", messages.SUCCESS)


class MessageAdminForm(forms.ModelForm):
    """A correction to a message, refused while its answer is still being generated.

    Each field posts the value it was shown with (as on the session form), so a save writes only
    what this form changed, and can tell a text shown half-generated from the one saved since: the
    generation writes the growing answer and its final text without asking, so an edit made on top
    of either would be overwritten, or would overwrite the answer with the half the page showed.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.show_hidden_initial = True

    def clean_status(self) -> str:
        status = self.cleaned_data["status"]
        if status == MessageStatus.STREAMING and "status" in self.changed_data:
            # Only a running generation streams; a row marked so by hand would block its session.
            raise forms.ValidationError("Only an answer being generated is streaming; choose another status.")
        return status

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.instance.pk or not self.has_changed():
            return cleaned
        if self.instance.status == MessageStatus.STREAMING:
            raise forms.ValidationError(
                "This answer is still being generated: edit it once it has ended (an answer whose "
                "generation died is marked interrupted by housekeeping within a few minutes)."
            )
        if self._shown("status") == MessageStatus.STREAMING:
            raise forms.ValidationError(
                "This answer was still being generated when the page was opened and has changed since: "
                "reload the page to edit what it ended with."
            )
        return cleaned

    def _shown(self, name: str):
        """The value the page showed for a field (its hidden initial), not the one stored now."""
        bound = self[name]
        raw = bound.field.hidden_widget().value_from_datadict(self.data, self.files, bound.html_initial_name)
        return bound.field.to_python(raw)


class DeletedWithOwnerMixin:
    """Rows the admin may not delete one by one, only along with what owns them.

    Not `has_delete_permission`: that would also stop deleting the owner (a session, a notebook, a
    user), whose deletion takes these rows along. The delete action, link and page go instead.
    """

    deleted_with = "what owns it"

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "show_delete": False})

    def delete_view(self, request, object_id, extra_context=None):
        raise PermissionDenied(f"This is deleted with {self.deleted_with}.")


@admin.register(SessionChatMessage)
class SessionChatMessageAdmin(DeletedWithOwnerMixin, admin.ModelAdmin):
    """Messages: read, and corrected (text, status), but added only by sending and deleted only with
    their session (one taken away left gaps in `message_order`, a wrong count, a lone question)."""

    list_display = ("session", "message_order", "sender", "status", "timestamp")
    list_filter = ("status", "sender")
    search_fields = ("message", "session__title")
    list_select_related = ("session",)
    readonly_fields = (
        "session",
        "message_order",
        "sender",
        "client_message_id",
        "timestamp",
        "updated_at",
        "metadata",
        "rendered",
    )
    raw_id_fields = ("session",)
    form = MessageAdminForm
    deleted_with = "its session"

    def has_add_permission(self, request) -> bool:
        return False  # messages are added by sending them, which keeps their order gap-free

    def save_model(self, request, obj: SessionChatMessage, form, change: bool) -> None:
        """Write only what the form changed: the rest of the row is the generation's or the sender's."""
        if form.changed_data:
            obj.updated_at = timezone.now()
            obj.save(update_fields=[*form.changed_data, "updated_at"])

    @admin.display(description="Rendered")
    def rendered(self, message: SessionChatMessage) -> str:
        """The Markdown as the reader sees it, sanitised: model and user text never runs as markup."""
        return mark_safe(markdown_to_safe_html(message.message))  # noqa: S308 - sanitised by nh3


@admin.register(RemoteSessionCleanup)
class RemoteSessionCleanupAdmin(admin.ModelAdmin):
    """Remote conversations of deleted sessions: `failed` ones are leaks to look at, or to retry."""

    list_display = ("remote_session_id", "session_id", "status", "attempts", "last_error", "updated_at")
    list_filter = ("status",)
    search_fields = ("remote_session_id", "remote_agent_id", "=session_id", "container_id")
    readonly_fields = (
        "session_id",
        "container_id",
        "remote_agent_id",
        "remote_session_id",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
        "finished_at",
    )
    actions = ("retry_cleanups",)

    def has_add_permission(self, request) -> bool:
        return False  # rows are written by deleting a session

    @admin.action(description="Try the selected clean-ups again")
    def retry_cleanups(self, request, queryset) -> None:
        cleanups = list(queryset.exclude(status=CleanupStatus.DONE))
        for cleanup in cleanups:
            services.remote_session_cleanup_retry(cleanup=cleanup)
        self.message_user(request, f"Retrying {len(cleanups)} clean-up(s).", messages.SUCCESS)
