"""`RagFlowNotebookAgent`: a notebook's chat answered by its RAGFlow agent, streamed.

Each chat session maps to one RAGFlow agent session, opened on the session's first question and
remembered (`RemoteSessionEvent`), so RAGFlow keeps the conversation's history itself and only
the new question is sent. The answer's `[ID:n]` markers cite the references sent with it, whose
`index` is that `n`. What users read on failure is short and safe; the detail goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat_sessions.agents.base import (
    AgentBackend,
    AgentError,
    AgentEvent,
    ErrorEvent,
    ReasoningEvent,
    ReferenceEvent,
    RemoteSessionEvent,
    TokenEvent,
    Turn,
    UsageEvent,
)
from chat_sessions.agents.thinking import ThinkSplitter
from chat_sessions.streaming.persistence import db_call
from notebooks.models import ParseStatus, RagFlowAgent, RemoteStatus, Source
from notebooks.ragflow.client import RagFlowClient, ragflow_client_private
from notebooks.ragflow.errors import (
    RagFlowAuthError,
    RagFlowError,
    RagFlowNotFound,
    RagFlowProtocolError,
    RagFlowStreamError,
    RagFlowTimeout,
    RagFlowUnavailable,
)
from notebooks.ragflow.stream import AnswerText, ReasoningText, References, SessionSeen, Usage

logger = logging.getLogger(__name__)

#: How often an answer waiting for its notebook's agent to be created looks again (seconds).
AGENT_READY_POLL_SECONDS = 0.5

NOT_READY = "This notebook's assistant is still being set up in RAGFlow. Try again in a minute."
SETUP_FAILED = "This notebook's assistant could not be set up in RAGFlow; it is being tried again. Try in a minute."
AUTH_FAILED = "RAGFlow refused deepsight's API key. An administrator needs to check RAGFLOW_API_KEY."
UNREACHABLE = "RAGFlow could not be reached. Try again in a moment."
TOO_SLOW = "RAGFlow took too long to answer. Try again in a moment."
BROKE_OFF = "RAGFlow stopped while answering. The answer so far is kept; try asking again."
BROKE_OFF_AT_ONCE = "RAGFlow stopped before answering. Try asking again."
NO_LLM = "No chat model is set for RAGFlow (RAGFLOW_LLM_ID). An administrator needs to set it."
UNREADABLE = "RAGFlow sent an answer deepsight could not read."
AGENT_MISSING = "RAGFlow no longer had this notebook's assistant; it is being made again. Ask again in a minute."


class RagFlowNotebookAgent(AgentBackend):
    """Answers a notebook's chat with the notebook's RAGFlow agent."""

    name = "ragflow"

    def prepare_turn(self, *, session: Any, question: str) -> Mapping[str, Any]:
        """The notebook's agent id, and its documents by RAGFlow id (to name references)."""
        from notebooks.provisioning import agent_ensure

        agent = RagFlowAgent.objects.filter(notebook_id=session.container_id).first()
        if not settings.RAGFLOW_LLM_ID and (agent is None or not agent.remote_id):
            # No agent can be made without it: "being set up, try in a minute" would never come true.
            raise AgentError(NO_LLM, code="not_configured")
        if agent is None or (agent.status == RemoteStatus.ERROR and not agent.remote_id):
            # Never provisioned (a notebook from before RAGFlow was configured) or failed: try
            # again now; with eager workers (tests, development) it may be ready at once.
            failed = agent is not None
            agent_ensure(notebook_id=session.container_id)
            agent = RagFlowAgent.objects.filter(notebook_id=session.container_id).first()
            if agent is None or (agent.status == RemoteStatus.ERROR and not agent.remote_id):
                raise AgentError(SETUP_FAILED if failed else NOT_READY, code="agent_not_ready")
        sources = Source.objects.filter(notebook_id=session.container_id).values_list(
            "pk", "remote_document_id", "title", "parse_status"
        )
        documents, processing = {}, 0
        for pk, remote_id, title, parse_status in sources:
            if remote_id:
                documents[remote_id] = {"source_id": str(pk), "title": title}
            processing += parse_status in (ParseStatus.PENDING, ParseStatus.PARSING)
        known = {"documents": documents, "sources_processing": processing}
        if agent.remote_id and agent.status == RemoteStatus.READY:
            return {"agent_id": agent.remote_id, **known}
        if agent.status == RemoteStatus.PENDING:
            # A worker is creating it: the notebook's first session was opened a moment ago, and
            # its first question comes right after. The answer waits for it (`stream_reply`).
            return {"agent_pending": True, **known}
        raise AgentError(NOT_READY, code="agent_not_ready")

    async def stream_reply(self, *, turn: Turn) -> AsyncIterator[AgentEvent]:
        agent_id = str(turn.context.get("agent_id") or "")
        if not agent_id and turn.context.get("agent_pending"):
            agent_id = await _agent_ready_wait(notebook_id=turn.container_id)
        if not agent_id:
            raise AgentError(NOT_READY, code="agent_not_ready")
        client = RagFlowClient.from_settings()
        # A session opened with another agent (the notebook's agent was re-created) is useless.
        session_id = turn.remote_session_id if turn.remote_agent_id == agent_id else ""
        answered = False
        try:
            if not session_id:
                session_id = await client.agent_session_create(agent_id=agent_id)
                yield RemoteSessionEvent(remote_session_id=session_id, remote_agent_id=agent_id)
            try:
                async for event in _answer(client, agent_id=agent_id, session_id=session_id, turn=turn):
                    answered = True
                    yield event
            except RagFlowNotFound:
                if answered:
                    raise
                # RAGFlow lost the session (deleted there, or its agent replaced): open a new one.
                logger.info("RAGFlow session %s of agent %s is gone; opening a new one", session_id, agent_id)
                session_id = await client.agent_session_create(agent_id=agent_id)
                yield RemoteSessionEvent(remote_session_id=session_id, remote_agent_id=agent_id)
                async for event in _answer(client, agent_id=agent_id, session_id=session_id, turn=turn):
                    answered = True
                    yield event
        except RagFlowError as exc:
            logger.warning("RAGFlow answer for session %s failed: %s", turn.session_id, exc.message)
            if isinstance(exc, RagFlowNotFound) and not answered:
                # Its sessions are reopened above: what is gone is the agent (deleted in RAGFlow).
                await db_call(_agent_forget, notebook_id=turn.container_id, remote_id=agent_id)
            message, code = _user_error(exc)
            if answered:
                yield ErrorEvent(message, code=code)
                return
            raise AgentError(BROKE_OFF_AT_ONCE if message == BROKE_OFF else message, code=code) from None

    async def session_close(self, *, remote_agent_id: str, remote_session_id: str) -> None:
        """Delete a deleted chat session's RAGFlow session; `AgentError` (retried by the caller) if refused."""
        if not remote_agent_id or not remote_session_id:
            return
        try:
            async with ragflow_client_private() as client:
                await client.agent_sessions_delete(agent_id=remote_agent_id, session_ids=[remote_session_id])
        except RagFlowError as exc:
            raise AgentError(exc.message, code=_user_error(exc)[1]) from None

    def on_session_created(self, *, session: Any) -> None:
        """The notebook's first session asks for its agent (once, however many open at once)."""
        from notebooks.provisioning import agent_ensure

        agent_ensure(notebook_id=session.container_id)


async def _agent_ready_wait(*, notebook_id: str) -> str:
    """The remote id of the notebook's agent once a worker has created it, waiting up to
    `RAGFLOW_AGENT_READY_WAIT` seconds; "" if it is not ready by then."""
    deadline = time.monotonic() + settings.RAGFLOW_AGENT_READY_WAIT
    while True:
        remote_id, status = await db_call(_agent_state, notebook_id=notebook_id)
        if remote_id and status == RemoteStatus.READY:
            return remote_id
        if status == RemoteStatus.ERROR:
            raise AgentError(SETUP_FAILED, code="agent_not_ready")
        if status != RemoteStatus.PENDING or time.monotonic() >= deadline:
            return ""
        await asyncio.sleep(AGENT_READY_POLL_SECONDS)


def _agent_forget(*, notebook_id: str, remote_id: str) -> None:
    """RAGFlow no longer has the notebook's agent: forget its id, so the next question makes it again
    (`prepare_turn` re-provisions an agent in `error` with no remote id) and the admin says why."""
    from notebooks.provisioning import agent_replaced_record

    with transaction.atomic():
        forgotten = RagFlowAgent.objects.filter(notebook_id=notebook_id, remote_id=remote_id).update(
            remote_id="",
            status=RemoteStatus.ERROR,
            last_error="RAGFlow no longer had this agent (deleted there?); it is made again at the next question.",
            updated_at=timezone.now(),
        )
        if forgotten:
            agent_replaced_record(notebook_id=notebook_id, remote_id=remote_id)


def _agent_state(*, notebook_id: str) -> tuple[str, str]:
    """(remote id, status) of the notebook's agent; ("", "") if it has none."""
    row = RagFlowAgent.objects.filter(notebook_id=notebook_id).values_list("remote_id", "status").first()
    return row or ("", "")


async def _answer(client: RagFlowClient, *, agent_id: str, session_id: str, turn: Turn) -> AsyncIterator[AgentEvent]:
    documents: Mapping[str, Mapping[str, str]] = turn.context.get("documents") or {}
    splitter = ThinkSplitter()  # some models still put <think> inline in the answer text
    async for frame in client.agent_completion_stream(agent_id=agent_id, session_id=session_id, question=turn.question):
        kind = type(frame)
        if kind is AnswerText:
            for event in splitter.feed(frame.text):
                yield event
        elif kind is ReasoningText:
            yield ReasoningEvent(frame.text)
        elif kind is References:
            yield ReferenceEvent([_source(chunk, documents) for chunk in frame.chunks])
        elif kind is Usage:
            yield UsageEvent(frame.usage)
        elif kind is SessionSeen and frame.session_id != session_id:
            yield RemoteSessionEvent(remote_session_id=frame.session_id, remote_agent_id=agent_id)
    for event in splitter.flush():
        yield event
    processing = int(turn.context.get("sources_processing") or 0)
    if processing:
        # RAGFlow searches only what it has parsed: an answer that found nothing says why.
        yield TokenEvent(f"\n\n{_not_searched(processing)}")


def _not_searched(count: int) -> str:
    if count == 1:
        return "_(1 source is still being processed, so it was not searched.)_"
    return f"_({count} sources are still being processed, so they were not searched.)_"


def _source(chunk: Mapping[str, Any], documents: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """A reference as the chat shows it, named after the notebook's own source when it is one."""
    local = documents.get(str(chunk.get("document_id") or ""))
    source = dict(chunk)
    if local:
        source["source_id"] = local["source_id"]
        source["title"] = local["title"] or source.get("title", "")
    return source


def _user_error(exc: RagFlowError) -> tuple[str, str]:
    if isinstance(exc, RagFlowAuthError):
        return AUTH_FAILED, "upstream_auth"
    if isinstance(exc, RagFlowStreamError):
        return BROKE_OFF, "upstream_error"
    if isinstance(exc, RagFlowTimeout):
        return TOO_SLOW, "upstream_timeout"
    if isinstance(exc, RagFlowUnavailable):
        return UNREACHABLE, "upstream_unavailable"
    if isinstance(exc, RagFlowProtocolError):
        return UNREADABLE, "upstream_protocol"
    if isinstance(exc, RagFlowNotFound):
        return AGENT_MISSING, "upstream_not_found"
    return "RAGFlow refused the question.", "upstream_error"
