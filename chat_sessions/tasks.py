"""Celery tasks of the chat app. Each is idempotent and calls services; none holds logic of its own.

- `sessions_housekeeping` (beat): closes idle sessions and marks answers left by dead processes.
- `session_title_generate`: names a session from its first exchange.
- `remote_session_delete`: removes the upstream conversation of a deleted session.
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import async_to_sync
from celery import shared_task

from chat_sessions import services
from chat_sessions.agents.base import AgentError
from chat_sessions.agents.registry import agent_backend, title_backend
from chat_sessions.models import ChatSession, MessageStatus, SessionChatMessage, TitleSource
from chat_sessions.titles import TITLE_PROMPT, tags_suggest, title_clean, title_heuristic

logger = logging.getLogger(__name__)

TITLE_ATTEMPTS = 3  # the first try and two retries
TITLE_MAX_TOKENS = 24


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def sessions_housekeeping() -> dict[str, int]:
    """Close sessions idle past IDLE_TIMEOUT and interrupt stale streams; safe to run twice."""
    closed = services.sessions_close_idle()
    interrupted = services.messages_interrupt_stale()
    return {"closed": closed, "interrupted": interrupted}


@shared_task(acks_late=True, time_limit=90, soft_time_limit=75)
def session_title_generate(*, session_id: str) -> str | None:
    """Title a session from its first complete exchange, unless it already has a non-default title."""
    session = ChatSession.objects.filter(pk=session_id).first()
    if session is None or session.title_source != TitleSource.DEFAULT:
        return None
    first = list(SessionChatMessage.objects.filter(session=session, message_order__in=(1, 2)).order_by("message_order"))
    if len(first) < 2 or first[1].status != MessageStatus.COMPLETE:
        return None  # never title from an interrupted or failed answer
    question, answer = first[0].message, first[1].message
    title = _title_from_llm(question=question, answer=answer) or title_heuristic(question)
    if services.session_title_apply(session_id=session.pk, title=title):
        services.session_suggested_tags_set(session_id=session.pk, names=tags_suggest(f"{question} {answer}"))
        logger.info("Session %s titled %r", session.pk, title)
        return title
    return None


def _title_from_llm(*, question: str, answer: str) -> str | None:
    backend = title_backend()
    if backend is None:
        return None
    prompt = TITLE_PROMPT.format(question=question[:2000], answer=answer[:2000])
    for attempt in range(TITLE_ATTEMPTS):
        try:
            title = title_clean(async_to_sync(backend.complete)(prompt=prompt, max_tokens=TITLE_MAX_TOKENS))
        except AgentError as exc:
            logger.warning("Title attempt %d failed: %s", attempt + 1, exc.message)
            title = None
        if title:
            return title
        if attempt + 1 < TITLE_ATTEMPTS:
            time.sleep(2**attempt)
    return None


@shared_task(
    acks_late=True,
    autoretry_for=(AgentError,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
    time_limit=60,
)
def remote_session_delete(*, remote_agent_id: str, remote_session_id: str) -> None:
    """Delete the upstream conversation of a session deleted here; retried while the upstream fails."""
    if remote_session_id:
        async_to_sync(agent_backend().session_close)(
            remote_agent_id=remote_agent_id, remote_session_id=remote_session_id
        )
