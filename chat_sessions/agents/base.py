"""The contract between the chat app and an agent, and the events an agent streams.

A backend never touches the database while it streams: `prepare_turn` (sync, may read the
database) gathers what the turn needs before the stream starts, and `stream_reply` (async) turns
that into events. The same backend then serves the web process, a worker and a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    role: str  # "user" | "assistant" | "system"
    content: str


@dataclass(frozen=True, slots=True)
class Turn:
    """Everything a backend needs to answer one question, gathered before streaming starts."""

    session_id: str
    container_id: str
    question: str
    history: Sequence[HistoryMessage] = ()
    remote_agent_id: str = ""
    remote_session_id: str = ""
    llm_model_name: str = ""
    rag_document_ids: Sequence[str] = ()
    #: Whatever `prepare_turn` returned for this backend.
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """A piece of the answer, to append."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningEvent:
    """A piece of the model's thinking, shown apart from the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ReferenceEvent:
    """The sources the answer cites: dicts with at least `title` and `snippet`."""

    sources: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """Token usage as the upstream reported it."""

    usage: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RemoteSessionEvent:
    """The upstream opened (or named) a conversation for this session; remember its ids."""

    remote_session_id: str
    remote_agent_id: str = ""


@dataclass(frozen=True, slots=True)
class EndEvent:
    """The upstream finished normally. Optional: the end of the iterator means the same."""

    final_text: str | None = None  # when set, replaces the accumulated answer (RAGFlow quirk)


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The upstream failed mid-answer; what streamed so far is kept."""

    message: str
    code: str = "upstream_error"


AgentEvent = TokenEvent | ReasoningEvent | ReferenceEvent | UsageEvent | RemoteSessionEvent | EndEvent | ErrorEvent


class AgentError(Exception):
    """An agent could not answer. `message` is safe to show a user; `code` is for programs."""

    def __init__(self, message: str, *, code: str = "upstream_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class AgentBackend:
    """Answers chat turns for one kind of agent (RAGFlow, an OpenAI-compatible server, ...).

    Subclasses implement `stream_reply`; the rest have working defaults. A backend is created once
    per process and shared by every stream, so it keeps no per-turn state on `self`.
    """

    #: Shown in message metadata (`model`) when the backend knows no better.
    name = "agent"

    def prepare_turn(self, *, session: Any, question: str) -> Mapping[str, Any]:
        """Sync, may use the database: gather what `stream_reply` needs (becomes `Turn.context`)."""
        return {}

    async def stream_reply(self, *, turn: Turn) -> AsyncIterator[AgentEvent]:
        """Yield the answer to `turn` as events. Raise `AgentError` when the upstream fails."""
        raise NotImplementedError("AgentBackend subclasses must implement stream_reply()")
        yield  # pragma: no cover - makes this an async generator for type checkers

    async def complete(self, *, prompt: str, max_tokens: int = 32) -> str:
        """A short one-shot completion (used for titles). Raise `AgentError` on failure."""
        raise AgentError("This agent does not offer one-shot completions.", code="unsupported")

    def document_ids_unknown(self, *, container: Any, document_ids: Sequence[str]) -> list[str]:
        """Sync, may use the database: which of a new session's `rag_document_ids` name nothing in `container`.

        The API refuses a session that names any, with a 400 listing them, rather than let it
        answer as if the container had no documents. By default the ids are opaque: none is unknown.
        """
        return []

    def on_session_created(self, *, session: Any) -> None:
        """Sync, called after the session's row is committed (e.g. to provision a remote agent)."""

    async def session_close(self, *, remote_agent_id: str, remote_session_id: str) -> None:
        """Delete the remote conversation behind a permanently deleted session, if there is one."""
