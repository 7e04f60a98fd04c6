"""The agent deepsight's send endpoint answers with during the benchmarks: RAGFlow's agent stream, read lean.

It posts the question to `BENCH_UPSTREAM_URL` (the fake upstream, `bench.upstream`) the way a
RAGFlow agent completion is asked for, and turns the `data:{"event":"message",...}` frames into
token events with the project's own HTTP pool and SSE reader (`chat_sessions.agents.http`), so the
path measured is the one a RAGFlow backend takes. It is not the project's RAGFlow backend
(`notebooks/ragflow/`): that one needs a provisioned notebook and opens a RAGFlow session per chat
session before its first answer, which would put the fake's session endpoint into every turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from django.conf import settings

from chat_sessions.agents.base import AgentBackend, AgentError, AgentEvent, ReferenceEvent, TokenEvent, Turn
from chat_sessions.agents.http import http_session, sse_json_frames, stream_open, stream_timeout


class BenchRagFlowAgent(AgentBackend):
    """Streams the fake upstream's tokens; the question says how many and how fast (`n=500 d=20`)."""

    name = "bench-ragflow"

    async def stream_reply(self, *, turn: Turn) -> AsyncIterator[AgentEvent]:
        url = f"{settings.BENCH_UPSTREAM_URL}/api/v1/agents/bench/completions"
        body = {"question": turn.question, "stream": True}
        try:
            headers = {"Authorization": "Bearer bench"}
            # As the product's agents open a stream: the wait for its headers is bounded too.
            response = await stream_open(http_session().post(url, json=body, headers=headers, timeout=stream_timeout()))
            async with response:
                if response.status >= 400:
                    raise AgentError(f"The agent answered HTTP {response.status}.")
                async for frame in sse_json_frames(response):
                    event = frame.get("event")
                    data = frame.get("data") or {}
                    if event == "message":
                        content = data.get("content")
                        if content:
                            yield TokenEvent(content)
                    elif event == "message_end":
                        chunks = (data.get("reference") or {}).get("chunks") or {}
                        if chunks:
                            yield ReferenceEvent(
                                [
                                    {"title": chunk.get("document_name", ""), "snippet": chunk.get("content", "")}
                                    for chunk in chunks.values()
                                ]
                            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AgentError("The agent could not be reached.", code="upstream_unavailable") from exc
