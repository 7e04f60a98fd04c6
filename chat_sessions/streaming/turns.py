"""Preparing a turn: store its messages, then gather what the agent needs to answer it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat_sessions.agents.base import AgentError, HistoryMessage, Turn
from chat_sessions.agents.registry import agent_backend
from chat_sessions.conf import chat_settings
from chat_sessions.models import ChatSession, MessageStatus, SessionChatMessage
from chat_sessions.payloads import message_as_dict
from chat_sessions.services import TurnStarted, turn_start_for_user
from chat_sessions.streaming.generation import GenerationSpec


@dataclass(frozen=True)
class PreparedTurn:
    started: TurnStarted
    #: None for a replayed turn (its generation already ran, or runs, elsewhere).
    spec: GenerationSpec | None


def turn_prepare(
    *, user: Any, container_id: Any, session_id: Any, text: str, client_message_id: str | None
) -> PreparedTurn | None:
    """Sync: store the turn (or find it again for a retry) and build its generation's spec.

    None when the user may not see that session in that container (a 404 for the caller).
    """
    started = turn_start_for_user(
        user=user, container_id=container_id, session_id=session_id, text=text, client_message_id=client_message_id
    )
    if started is None:
        return None
    if started.replayed:
        return PreparedTurn(started=started, spec=None)
    session = started.session
    try:
        context = dict(agent_backend().prepare_turn(session=session, question=text))
    except AgentError as exc:
        # Started anyway, so the failure is stored on the answer and streamed like any other.
        context = {"prepare_error": {"message": exc.message, "code": exc.code}}
    turn = Turn(
        session_id=str(session.pk),
        container_id=str(session.container_id),
        question=text,
        history=_history(session=session, before=started.user_message.message_order),
        remote_agent_id=session.remote_agent_id,
        remote_session_id=session.remote_session_id,
        llm_model_name=session.llm_model_name,
        rag_document_ids=tuple(session.rag_document_ids or ()),
        context=context,
    )
    spec = GenerationSpec(
        turn=turn,
        session_id=str(session.pk),
        message_id=started.assistant_message.pk,
        user_message=message_as_dict(started.user_message),
        assistant_message=message_as_dict(started.assistant_message),
    )
    return PreparedTurn(started=started, spec=spec)


def _history(*, session: ChatSession, before: int) -> tuple[HistoryMessage, ...]:
    limit = chat_settings.HISTORY_MESSAGES
    if not limit or before <= 1:  # a session's first question has nothing before it
        return ()
    rows = (
        SessionChatMessage.objects.filter(session=session, message_order__lt=before)
        .exclude(status=MessageStatus.STREAMING)
        .order_by("-message_order")
        .values_list("sender", "message")[:limit]
    )
    return tuple(HistoryMessage(role=sender, content=text) for sender, text in reversed(rows) if text)
