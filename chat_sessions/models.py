"""The chat domain's data: sessions (one per browser tab) and their ordered messages.

Writes go through `services.py`, never through `save()` on these models from outside, so the
rules that keep a conversation whole (gap-free ordering, counters, title provenance) hold for the
API, the admin and the workers alike.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from chat_sessions.conf import chat_settings


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Closed"
    ARCHIVED = "archived", "Archived"


class TitleSource(models.TextChoices):
    DEFAULT = "default", "Default"
    AUTO = "auto", "Generated"
    USER = "user", "Set by the user"


class Sender(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    SYSTEM = "system", "System"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    STREAMING = "streaming", "Streaming"
    INTERRUPTED = "interrupted", "Interrupted"
    ERROR = "error", "Error"


class TagSource(models.TextChoices):
    USER = "user", "User"
    AUTO = "auto", "Suggested"


class ChatSession(models.Model):
    """One conversation with a container's agent; the web frontend shows each as a tab."""

    #: Public identifier, used by the browser and in every URL.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    #: What the session belongs to (a notebook in deepsight); `CHAT_SESSIONS["CONTAINER_MODEL"]`.
    container = models.ForeignKey(
        chat_settings.CONTAINER_MODEL,
        on_delete=models.CASCADE,
        related_name="chat_sessions",
        db_index=False,  # `chat_sess_list_idx` starts with it; a second index is only more to write per turn
    )
    #: The user who opened it; sessions are private to their creator.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    #: Shown on the tab. Starts as `DEFAULT_TITLE`; the auto-namer replaces it once.
    title = models.CharField(max_length=200)
    #: Where the title came from; only a `default` title may be replaced automatically.
    title_source = models.CharField(max_length=10, choices=TitleSource.choices, default=TitleSource.DEFAULT)
    #: `active` tabs are listed; `closed` ones are kept with their messages and reopen on send;
    #: `archived` ones refuse new messages until unarchived.
    status = models.CharField(max_length=10, choices=SessionStatus.choices, default=SessionStatus.ACTIVE)
    #: Pinned sessions sort with the rest but may be exempt from auto-close.
    pinned = models.BooleanField(default=False)
    #: The model the user picked for this session, if the agent lets them choose.
    llm_model_name = models.CharField(max_length=200, blank=True, default="")
    #: Source (document) ids this session's retrieval is limited to; empty means all sources.
    rag_document_ids = models.JSONField(default=list, blank=True)
    #: The remote agent that answers (e.g. a RAGFlow agent id), recorded when first used.
    remote_agent_id = models.CharField(max_length=128, blank=True, default="")
    #: The remote conversation this session maps to (e.g. a RAGFlow agent session id).
    remote_session_id = models.CharField(max_length=128, blank=True, default="")
    #: Free-form settings and facts about the session (agent options, clean-up errors).
    session_metadata = models.JSONField(default=dict, blank=True)
    #: Number of messages; kept with every insert so lists never count rows.
    message_count = models.PositiveIntegerField(default=0)
    #: When the last message was added (or the session opened); lists sort by it.
    last_activity = models.DateTimeField(default=timezone.now)
    #: When the session was (last) opened.
    started_at = models.DateTimeField(default=timezone.now)
    #: When it was closed; empty while active.
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-last_activity", "-id")
        indexes = [
            # The tab list and the "closed chats" list: one container, one user, one status.
            models.Index(
                fields=["container", "created_by", "status", "-last_activity", "-id"],
                name="chat_sess_list_idx",
            ),
            # Auto-close scans active sessions by age.
            models.Index(fields=["status", "last_activity"], name="chat_sess_idle_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.id})"


class ChatSessionTag(models.Model):
    """A label on a session: the user's own, or one suggested by the auto-namer."""

    session = models.ForeignKey(
        ChatSession,
        on_delete=models.CASCADE,
        related_name="tag_set",
        db_index=False,  # `chat_tag_unique_per_session` starts with it
    )
    #: The label itself, as shown.
    name = models.CharField(max_length=50)
    #: `user` tags are the user's; `auto` ones are suggestions kept apart from them.
    source = models.CharField(max_length=10, choices=TagSource.choices, default=TagSource.USER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "source", "name"], name="chat_tag_unique_per_session"),
        ]
        indexes = [models.Index(fields=["name"], name="chat_tag_name_idx")]

    def __str__(self) -> str:
        return self.name


class SessionChatMessage(models.Model):
    """One message of a session: the user's question, the agent's answer, or a system note."""

    session = models.ForeignKey(
        ChatSession,
        on_delete=models.CASCADE,
        related_name="messages",
        # `chat_msg_order_unique` starts with it. Every insert, and every write of a streaming
        # answer (its `updated_at` is indexed, so none of them is a HOT update), writes each index.
        db_index=False,
    )
    #: Who wrote it.
    sender = models.CharField(max_length=10, choices=Sender.choices)
    #: The text (Markdown for answers). Grows while `status` is `streaming`.
    message = models.TextField(blank=True, default="")
    #: `streaming` while an answer is generated; then `complete`, `interrupted` (stopped, or its
    #: process died) or `error` (the agent failed; the partial text is kept).
    status = models.CharField(max_length=12, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    #: Position in the session, 1, 2, 3...: assigned by the server, unique, with no gaps.
    message_order = models.PositiveIntegerField()
    #: The client's id for the turn, so a retried send returns the first turn instead of a second.
    client_message_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (NULL: unique only when given)
    #: When the message was created.
    timestamp = models.DateTimeField(default=timezone.now)
    #: Last write; a `streaming` message that stops being written belongs to a dead process.
    updated_at = models.DateTimeField(default=timezone.now)
    #: Facts about the message: `sources` (citations), `reasoning`, `usage`, `latency_ms`,
    #: `model`, `error` (`{"message", "code"}`).
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("session", "message_order")
        constraints = [
            models.UniqueConstraint(fields=["session", "message_order"], name="chat_msg_order_unique"),
            models.UniqueConstraint(
                fields=["session", "client_message_id"],
                condition=Q(client_message_id__isnull=False),
                name="chat_msg_client_id_unique",
            ),
            # A session answers one message at a time; held by the database, not only by the
            # check under the session lock, since the one-statement turn (turn_sql) reads as of its start.
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(status="streaming"),
                name="chat_msg_one_streaming_unique",
            ),
        ]
        indexes = [
            # "Is a generation running?" per session, and the stale-stream sweep: few rows match.
            models.Index(
                fields=["session", "updated_at"],
                condition=Q(status="streaming"),
                name="chat_msg_streaming_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.message_order} {self.sender}: {self.message[:40]}"


class CleanupStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    #: Given up after the retries, or refused for good (e.g. a revoked API key): needs a person.
    FAILED = "failed", "Failed"


class RemoteCleanupBase(models.Model):
    """A deletion an upstream still owes for something deleted here, kept until it succeeds.

    The local rows are gone by the time a worker talks to the upstream, so this row is the only
    record of what to delete. Host apps subclass it for their own remote objects.
    """

    #: `pending` while a worker tries, `done` once the upstream confirmed, `failed` after the last try.
    status = models.CharField(max_length=10, choices=CleanupStatus.choices, default=CleanupStatus.PENDING)
    #: Attempts made so far, by every worker together.
    attempts = models.PositiveIntegerField(default=0)
    #: Why the last attempt failed; empty once one succeeded.
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    #: When the upstream confirmed the deletion.
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ("-created_at", "-id")


class RemoteSessionCleanup(RemoteCleanupBase):
    """The removal of a deleted session's remote conversation (e.g. its RAGFlow session).

    Written in the same transaction as the deletion and updated by the worker after each attempt,
    so a remote that keeps refusing leaves a `failed` row with its error, listed in the admin and
    retried from there, instead of a silent leak.
    """

    #: The deleted session's id (the row is gone, so this is no foreign key).
    session_id = models.UUIDField(db_index=True)
    #: The primary key of the container the session belonged to, for finding it again.
    container_id = models.CharField(max_length=64, blank=True, default="")
    #: The remote agent and the remote conversation to delete.
    remote_agent_id = models.CharField(max_length=128, blank=True, default="")
    remote_session_id = models.CharField(max_length=128)

    class Meta(RemoteCleanupBase.Meta):
        indexes = [models.Index(fields=["status", "-created_at"], name="chat_cleanup_status_idx")]

    def __str__(self) -> str:
        return f"Remote session {self.remote_session_id} ({self.status})"
