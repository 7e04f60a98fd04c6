"""Users, tokens, notebooks and sessions for the streams, made in bulk (a turn needs a fresh session)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from chat_sessions.models import ChatSession, ChatSessionTag, SessionChatMessage
from notebooks.models import Notebook

PROXY_USER_PREFIX = "bench-proxy-"


@dataclass(frozen=True)
class Owner:
    user_id: int
    token: str
    notebook_id: uuid.UUID


@dataclass(frozen=True)
class StreamSession:
    owner: Owner
    session_id: uuid.UUID

    def messages_path(self) -> str:
        return f"/api/v1/notebooks/{self.owner.notebook_id}/chat/sessions/{self.session_id}/messages/"


@transaction.atomic
def owners(count: int, prefix: str = PROXY_USER_PREFIX) -> list[Owner]:
    """`count` users with a token and a notebook each, made once and reused."""
    user_model = get_user_model()
    names = [f"{prefix}{index:05d}" for index in range(count)]
    existing = set(user_model.objects.filter(username__in=names).values_list("username", flat=True))
    user_model.objects.bulk_create(
        [user_model(username=name, password="!") for name in names if name not in existing]  # unusable password
    )
    users = dict(user_model.objects.filter(username__in=names).values_list("username", "pk"))
    user_ids = [users[name] for name in names]
    tokens = dict(Token.objects.filter(user_id__in=user_ids).values_list("user_id", "key"))
    Token.objects.bulk_create([Token(user_id=uid, key=Token.generate_key()) for uid in user_ids if uid not in tokens])
    tokens = dict(Token.objects.filter(user_id__in=user_ids).values_list("user_id", "key"))
    notebooks = dict(Notebook.objects.filter(owner_id__in=user_ids).values_list("owner_id", "pk"))
    Notebook.objects.bulk_create([Notebook(owner_id=uid, name="Bench") for uid in user_ids if uid not in notebooks])
    notebooks = dict(Notebook.objects.filter(owner_id__in=user_ids).values_list("owner_id", "pk"))
    return [Owner(uid, tokens[uid], notebooks[uid]) for uid in user_ids]


def stream_sessions(all_owners: list[Owner], count: int) -> list[StreamSession]:
    """`count` fresh sessions, spread round-robin over the owners."""
    now = timezone.now()
    sessions = [
        ChatSession(
            id=uuid.uuid4(),
            container_id=all_owners[index % len(all_owners)].notebook_id,
            created_by_id=all_owners[index % len(all_owners)].user_id,
            title="Bench",
            last_activity=now,
            started_at=now,
        )
        for index in range(count)
    ]
    ChatSession.objects.bulk_create(sessions, batch_size=1000)
    return [StreamSession(all_owners[index % len(all_owners)], s.id) for index, s in enumerate(sessions)]


def sessions_delete(*, user_ids: list[int]) -> None:
    """Drop the given users' sessions, messages and tags with set-based deletes (no per-row signals)."""
    if not user_ids:
        return
    sessions = ChatSession._meta.db_table
    marks = ", ".join(["%s"] * len(user_ids))
    with transaction.atomic(), connection.cursor() as cursor:
        for child in (SessionChatMessage, ChatSessionTag):
            cursor.execute(
                f"DELETE FROM {child._meta.db_table} WHERE session_id IN "
                f"(SELECT id FROM {sessions} WHERE created_by_id IN ({marks}))",
                user_ids,
            )
        cursor.execute(f"DELETE FROM {sessions} WHERE created_by_id IN ({marks})", user_ids)
