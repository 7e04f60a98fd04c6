"""The agents that answer for a notebook.

- `LocalNotebookAgent`: offline. Finds the passages of the notebook's sources that match the
  question (BM25) and streams an answer that quotes them, with references. No network, no model;
  when nothing matches, it says so.
- `NotebookAgent`: what `CHAT_SESSIONS["AGENT_BACKEND"]` names. RAGFlow when `RAGFLOW_BASE_URL`
  is set, the local agent otherwise.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from django.conf import settings

from chat_sessions.agents.base import AgentBackend, AgentError, AgentEvent, ReferenceEvent, TokenEvent, Turn
from notebooks.models import Source
from notebooks.search import Passage, passages_rank, passages_split

NOTHING_FOUND = (
    "I couldn't find anything about that in this notebook's sources. Try other words, or add a source that covers it."
)
NO_SOURCES = "This notebook has no sources yet. Add a document or paste some text, then ask again."


def _source_id(value: Any) -> uuid.UUID | None:
    """The source id `value` can name; None for any other string (a session's ids are the client's)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _source_ids(ids: Sequence[Any]) -> list[uuid.UUID]:
    return [source_id for source_id in map(_source_id, ids) if source_id is not None]


class LocalNotebookAgent(AgentBackend):
    """Answers from the notebook's own sources by quoting the passages that match best."""

    name = "local"

    def prepare_turn(self, *, session: Any, question: str) -> Mapping[str, Any]:
        sources = Source.objects.filter(notebook_id=session.container_id).only("id", "title", "content")
        if session.rag_document_ids:
            sources = sources.filter(pk__in=_source_ids(session.rag_document_ids))
        passages = [
            passage
            for source in sources
            for passage in passages_split(source_id=str(source.pk), title=source.title, content=source.content)
        ]
        best = passages_rank(question=question, passages=passages)
        return {
            "has_sources": bool(passages),
            "passages": [{"source_id": p.source_id, "title": p.title, "text": p.text, "score": p.score} for p in best],
        }

    async def stream_reply(self, *, turn: Turn) -> AsyncIterator[AgentEvent]:
        passages = [Passage(**p) for p in turn.context.get("passages", ())]
        delay = settings.LOCAL_AGENT_TOKEN_DELAY
        if not passages:
            text = NOTHING_FOUND if turn.context.get("has_sources") else NO_SOURCES
            async for token in _tokens(text, delay):
                yield TokenEvent(token)
            return
        async for token in _tokens(_answer(passages), delay):
            yield TokenEvent(token)
        yield ReferenceEvent(
            [
                {"index": number, "source_id": p.source_id, "title": p.title, "snippet": p.text[:300], "score": p.score}
                for number, p in enumerate(passages, start=1)
            ]
        )


def _answer(passages: list[Passage]) -> str:
    lines = ["Here is what your sources say:\n"]
    for number, passage in enumerate(passages, start=1):
        lines.append(f"> {passage.text}\n\n— *{passage.title}* [{number}]\n")
    return "\n".join(lines)


async def _tokens(text: str, delay: float) -> AsyncIterator[str]:
    for token in re.findall(r"\s*\S+", text) or [text]:
        yield token
        if delay:
            await asyncio.sleep(delay)


class NotebookAgent(AgentBackend):
    """RAGFlow when configured (`RAGFLOW_BASE_URL`), else the offline local agent."""

    def __init__(self) -> None:
        if settings.RAGFLOW_BASE_URL:
            from notebooks.ragflow.agent import RagFlowNotebookAgent

            self.delegate: AgentBackend = RagFlowNotebookAgent()
        else:
            self.delegate = LocalNotebookAgent()
        self.name = self.delegate.name

    def prepare_turn(self, *, session: Any, question: str) -> Mapping[str, Any]:
        return self.delegate.prepare_turn(session=session, question=question)

    def stream_reply(self, *, turn: Turn) -> AsyncIterator[AgentEvent]:
        return self.delegate.stream_reply(turn=turn)

    async def complete(self, *, prompt: str, max_tokens: int = 32) -> str:
        return await self.delegate.complete(prompt=prompt, max_tokens=max_tokens)

    def on_session_created(self, *, session: Any) -> None:
        self.delegate.on_session_created(session=session)

    def document_ids_unknown(self, *, container: Any, document_ids: Sequence[str]) -> list[str]:
        """Both agents read a session's `rag_document_ids` as the notebook's source ids."""
        found = set(
            Source.objects.filter(notebook=container, pk__in=_source_ids(document_ids)).values_list("pk", flat=True)
        )
        return [value for value in dict.fromkeys(document_ids) if _source_id(value) not in found]

    async def session_close(self, *, remote_agent_id: str, remote_session_id: str) -> None:
        if remote_session_id and isinstance(self.delegate, LocalNotebookAgent):
            # A conversation RAGFlow still holds, and RAGFlow switched off since: the clean-up stays
            # owed (failed, retried from the admin once RAGFlow is back), never marked done.
            raise AgentError("RAGFlow is not configured, so its conversation was not deleted.", code="not_configured")
        await self.delegate.session_close(remote_agent_id=remote_agent_id, remote_session_id=remote_session_id)
