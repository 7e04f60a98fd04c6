"""An agent backed by any server speaking OpenAI's `/v1/chat/completions` with streaming.

vLLM, Ollama, llama.cpp, OpenAI itself and RAGFlow's OpenAI-compatible endpoint all qualify. The
session's history is sent with every turn (these servers are stateless). Configure it with
`CHAT_SESSIONS["OPENAI"]` (`BASE_URL` ending in `/v1`, `API_KEY`, `MODEL`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from chat_sessions.agents.base import (
    AgentBackend,
    AgentError,
    AgentEvent,
    ErrorEvent,
    ReasoningEvent,
    ReferenceEvent,
    Turn,
    UsageEvent,
)
from chat_sessions.agents.http import StreamEndedEarly, http_session, sse_json_frames, stream_open, stream_timeout
from chat_sessions.agents.thinking import ThinkSplitter
from chat_sessions.conf import chat_settings

logger = logging.getLogger(__name__)


class OpenAICompatibleAgent(AgentBackend):
    """Streams answers from an OpenAI-compatible chat-completions server."""

    name = "openai"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = {**chat_settings.OPENAI, **(config or {})}

    @property
    def base_url(self) -> str:
        return str(self.config.get("BASE_URL") or "").rstrip("/")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.get("API_KEY"):
            headers["Authorization"] = f"Bearer {self.config['API_KEY']}"
        return headers

    def _messages(self, turn: Turn) -> list[dict[str, str]]:
        messages = []
        if self.config.get("SYSTEM_PROMPT"):
            messages.append({"role": "system", "content": self.config["SYSTEM_PROMPT"]})
        messages += [{"role": m.role, "content": m.content} for m in turn.history if m.content]
        messages.append({"role": "user", "content": turn.question})
        return messages

    async def stream_reply(self, *, turn: Turn) -> AsyncIterator[AgentEvent]:
        if not self.base_url:
            raise AgentError("No language model is configured.", code="not_configured")
        body = {
            "model": turn.llm_model_name or self.config.get("MODEL") or "default",
            "messages": self._messages(turn),
            "stream": True,
            "stream_options": {"include_usage": True},
            # RAGFlow's OpenAI endpoint reads either form, depending on its version.
            "reference": True,
            "extra_body": {"reference": True},
        }
        splitter = ThinkSplitter()
        finished = False
        try:
            response = await stream_open(
                http_session().post(
                    f"{self.base_url}/chat/completions", json=body, headers=self._headers(), timeout=stream_timeout()
                )
            )
            async with response:
                await _raise_for_status(response)
                try:
                    async for frame in sse_json_frames(response):
                        if not isinstance(frame, dict):
                            continue
                        if frame.get("error") or frame.get("code") not in (None, 0):
                            yield ErrorEvent(_frame_error(frame), code="upstream_error")
                            return
                        finished = finished or any(c.get("finish_reason") for c in frame.get("choices") or ())
                        for event in _frame_events(frame, splitter):
                            yield event
                except StreamEndedEarly:
                    # Some servers omit `[DONE]`; a finish_reason already said the answer is whole.
                    if not finished:
                        raise AgentError(
                            "The language model's answer was cut off.", code="upstream_incomplete"
                        ) from None
                for event in splitter.flush():
                    yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AgentError("The language model service could not be reached.", code="upstream_unavailable") from exc
        except ValueError as exc:
            raise AgentError("The language model service sent a malformed stream.", code="upstream_protocol") from exc

    async def complete(self, *, prompt: str, max_tokens: int = 32) -> str:
        if not self.base_url:
            raise AgentError("No language model is configured.", code="not_configured")
        body = {
            "model": self.config.get("MODEL") or "default",
            "messages": [{"role": "user", "content": prompt}],
            "stream": False,
            "max_tokens": max_tokens,
            "temperature": 0.2,
        }
        try:
            # Not streamed: the session's own `sock_read` timeout bounds the wait for the whole answer.
            async with http_session().post(
                f"{self.base_url}/chat/completions", json=body, headers=self._headers()
            ) as response:
                await _raise_for_status(response)
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AgentError("The language model service could not be reached.", code="upstream_unavailable") from exc
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise AgentError("The language model service sent an unexpected answer.", code="upstream_protocol") from exc


def _frame_events(frame: dict, splitter: ThinkSplitter) -> list[AgentEvent]:
    events: list[AgentEvent] = []
    for choice in frame.get("choices") or ():
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            events.append(ReasoningEvent(str(reasoning)))
        content = delta.get("content")
        if content:
            events += splitter.feed(str(content))
        reference = delta.get("reference")
        if isinstance(reference, dict) and reference.get("chunks"):
            chunks = reference["chunks"]
            chunks = chunks.values() if isinstance(chunks, dict) else chunks
            events.append(ReferenceEvent([_chunk_source(chunk) for chunk in chunks if isinstance(chunk, dict)]))
    if frame.get("usage"):
        events.append(UsageEvent(frame["usage"]))
    return events


def _chunk_source(chunk: dict) -> dict[str, Any]:
    return {
        "title": chunk.get("document_name") or chunk.get("doc_name") or "",
        "document_id": chunk.get("document_id") or chunk.get("doc_id") or "",
        "snippet": str(chunk.get("content") or "")[:500],
    }


def _frame_error(frame: dict) -> str:
    error = frame.get("error")
    if isinstance(error, dict):
        logger.warning("Upstream stream error: %s", error.get("message"))
    else:
        logger.warning("Upstream stream error: %s", frame.get("message") or error)
    return "The language model failed while answering."


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    detail = (await response.text())[:300]
    logger.warning("Upstream HTTP %s from %s: %s", response.status, response.url.host, detail)
    if response.status in (401, 403):
        raise AgentError("The language model service refused our credentials.", code="upstream_auth")
    raise AgentError(f"The language model service answered HTTP {response.status}.", code="upstream_error")
