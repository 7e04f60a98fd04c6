"""Upstream HTTP for agents: one pooled aiohttp session per event loop, and an SSE line reader.

aiohttp, not httpx: with hundreds of concurrent streams httpx's pool degrades sharply
(encode/httpx#3215) and cost ~3x the CPU per relayed token in our measurements
(shared/reference/performance-notes.md). One `ClientSession` per loop keeps connections pooled.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from chat_sessions.conf import chat_settings

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()


def http_session() -> aiohttp.ClientSession:
    """The shared client session of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=chat_settings.HTTP_MAX_CONNECTIONS, enable_cleanup_closed=True),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=chat_settings.HTTP_CONNECT_TIMEOUT,
                sock_read=chat_settings.HTTP_READ_TIMEOUT,
            ),
            raise_for_status=False,
        )
        _sessions[loop] = session
    return session


class StreamEndedEarly(Exception):
    """The body ended before the `[DONE]` terminator: the answer may be cut short."""


async def sse_json_frames(response: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    """Decode `data:` lines of an SSE body into JSON values, stopping at `[DONE]`.

    Accepts `data:{...}` and `data: {...}` (RAGFlow writes the first, OpenAI servers the second),
    skips comments, `event:` and `id:` lines. A line that is not JSON raises `ValueError`; a body
    that ends without `[DONE]` raises `StreamEndedEarly`, for the caller to judge.

    The body is read in whatever chunks arrive and split here: reading it line by line costs a
    wait per line, two per token, and was the largest CPU cost of relaying an answer.
    """
    pending = b""
    async for chunk in response.content.iter_any():
        lines = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
        pending = lines.pop()  # the part after the last newline: the start of a line still arriving
        for line in lines:
            frame = _data_line(line)
            if frame is _DONE:
                return
            if frame is not _SKIP:
                yield frame
    frame = _data_line(pending)
    if frame is _DONE:
        return
    if frame is not _SKIP:
        yield frame
    raise StreamEndedEarly()


_DONE, _SKIP = object(), object()
_decode_json = json.JSONDecoder().decode


def json_value(payload: bytes) -> Any:
    """A stream frame's JSON, read by orjson: about a third of the stdlib's CPU on a token's frame.

    What orjson refuses but Python's `json` reads (a lone surrogate escape, `NaN`) is read by
    `json` as before, so a frame reads the same either way; anything else that is not JSON is a
    `ValueError`, as before.
    """
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _decode_json(payload.decode())


def _data_line(line: bytes) -> Any:
    """A `data:` line's JSON value; `_DONE` for `[DONE]`; `_SKIP` for any other line."""
    line = line.strip()
    if not line.startswith(b"data:"):
        return _SKIP
    payload = line[5:].lstrip()
    if payload == b"[DONE]":
        return _DONE
    if not payload:
        return _SKIP
    return json_value(payload)


async def http_session_close() -> None:
    """Close the running loop's client session (server shutdown, end of a test server)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None and not session.closed:
        await session.close()
