"""A fake OpenAI-compatible chat-completions server, speaking the real wire format over HTTP.

Streams `data: {"object": "chat.completion.chunk", ...}` frames and `data: [DONE]`, like vLLM,
Ollama and OpenAI. What it does is scripted by the test:

    fake.script(tokens=["Hello", " world"], delay=0.01)          # the next answers
    fake.script(tokens=[...], fail_after=3)                      # drop the connection after 3 tokens
    fake.script(tokens=[...], error_after=3)                     # an error frame after 3 tokens
    fake.script(status=500) / fake.script(first_token_delay=5)   # refuse / be slow to start
    fake.script(tokens=["<think>hmm</think>", "Answer"])         # inline thinking
    fake.script(completion="Photosynthesis Basics")              # non-streaming replies (titles)
    fake.script(completion="...", completion_delay=1.0)          # a slow non-streaming reply

Every request body is kept in `fake.requests` for assertions (history, max_tokens, auth header).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from deepsight.testing.servers import AiohttpThread


@dataclass
class Script:
    tokens: list[str] = field(default_factory=lambda: ["Hello", " from", " the", " fake", " model."])
    delay: float = 0.0
    headers_delay: float = 0.0  # a server that took the request and is stuck before answering
    first_token_delay: float = 0.0
    fail_after: int | None = None
    error_after: int | None = None
    malformed_after: int | None = None
    cut_after: int | None = None  # end the body cleanly after N tokens: no finish_reason, no [DONE]
    no_terminator: bool = False
    status: int = 200
    completion: str = "A Generated Title"
    completion_delay: float = 0.0
    reasoning: list[str] = field(default_factory=list)


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._scripts: list[Script] = []
        self.default = Script()
        self.server = AiohttpThread(self._app)

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def script(self, **kwargs: Any) -> Script:
        """Queue behaviour for the next request; with none queued, `default` is used."""
        script = Script(**kwargs)
        self._scripts.append(script)
        return script

    def start(self) -> FakeOpenAI:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        return app

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        script = self._scripts.pop(0) if self._scripts else self.default
        if script.status != 200:
            return web.json_response(
                {"error": {"message": "upstream says no", "type": "server_error"}}, status=script.status
            )
        if not body.get("stream"):
            if script.completion_delay:
                await asyncio.sleep(script.completion_delay)
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": script.completion},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
                }
            )
        if script.headers_delay:
            await asyncio.sleep(script.headers_delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        if script.first_token_delay:
            await asyncio.sleep(script.first_token_delay)
        for text in script.reasoning:
            await response.write(_chunk(body, {"reasoning_content": text}))
        for index, token in enumerate(script.tokens):
            if script.fail_after is not None and index == script.fail_after:
                request.transport.close()  # the upstream dies mid-answer
                return response
            if script.error_after is not None and index == script.error_after:
                await response.write(b'data: {"error": {"message": "model overloaded", "code": 500}}\n\n')
                await response.write(b"data: [DONE]\n\n")
                return response
            if script.cut_after is not None and index == script.cut_after:
                return response
            if script.malformed_after is not None and index == script.malformed_after:
                await response.write(b"data: {not json\n\n")
                return response
            await response.write(_chunk(body, {"content": token}))
            if script.delay:
                await asyncio.sleep(script.delay)
        final = json.loads(_chunk(body, {})[6:])
        final["choices"][0]["finish_reason"] = "stop"
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
        usage = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": len(script.tokens),
                "total_tokens": 12 + len(script.tokens),
            },
        }
        await response.write(f"data: {json.dumps(usage)}\n\n".encode())
        if not script.no_terminator:
            await response.write(b"data: [DONE]\n\n")
        return response


def _chunk(body: dict[str, Any], delta: dict[str, Any]) -> bytes:
    frame = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return f"data: {json.dumps(frame)}\n\n".encode()
