"""Upstream HTTP for agents: one pooled aiohttp session per event loop, and an SSE line reader.

aiohttp, not httpx: with hundreds of concurrent streams httpx's pool degrades sharply
(encode/httpx#3215) and cost ~3x the CPU per relayed token in our measurements
(shared/reference/performance-notes.md). One `ClientSession` per loop keeps connections pooled.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import orjson

from chat_sessions.conf import chat_settings
from chat_sessions.text import text_unicode_only

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


def stream_timeout(*, connect: float | None = None) -> aiohttp.ClientTimeout:
    """The timeout of a streamed request: no `sock_read`; a `ReadWatch` watches the reading instead."""
    return aiohttp.ClientTimeout(
        total=None, connect=chat_settings.HTTP_CONNECT_TIMEOUT if connect is None else connect, sock_read=None
    )


async def stream_open(
    request: Awaitable[aiohttp.ClientResponse], *, idle_timeout: float | None = None
) -> aiohttp.ClientResponse:
    """Send a streamed request and wait for its response's headers, `idle_timeout` s at most.

    `stream_timeout()` turns aiohttp's `sock_read` off and `ReadWatch` watches the body, which only
    starts with the headers: an upstream that takes the connection and never answers held the turn
    (and its session, and one of its user's answers) until `MAX_GENERATION_SECONDS`. Raises
    `TimeoutError`. Use the response as `async with response:`.
    """
    idle = chat_settings.HTTP_READ_TIMEOUT if idle_timeout is None else idle_timeout
    async with asyncio.timeout(idle):
        return await request


class ReadWatch:
    """Ends a streamed body's reading with `aiohttp.SocketTimeoutError` after `idle_timeout` s of silence.

    aiohttp's own `sock_read` timeout cancels a timer and arms a new one for every chunk the socket
    delivers: with a token per chunk that was 7 % of the CPU of relaying one. Here one timer per
    stream fires once per `idle_timeout`, and arms itself again for what is left of it if a chunk
    came meanwhile (`read`, called for each chunk, only notes the time). Request the body with
    `stream_timeout()`, so the two do not both watch it.
    """

    __slots__ = ("_loop", "_response", "_timer", "idle_timeout", "last")

    def __init__(self, response: aiohttp.ClientResponse, *, idle_timeout: float) -> None:
        self._response = response
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self.idle_timeout = idle_timeout
        self.last = self._loop.time()

    def __enter__(self) -> ReadWatch:
        self._timer = self._loop.call_at(self.last + self.idle_timeout, self._check)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def read(self) -> None:
        self.last = self._loop.time()

    def _check(self) -> None:
        if self._loop.time() - self.last < self.idle_timeout:
            self._timer = self._loop.call_at(self.last + self.idle_timeout, self._check)
            return
        self._timer = None
        # What aiohttp's own timeout does: the reader raises it, and the connection is not reused.
        self._response.content.set_exception(
            aiohttp.SocketTimeoutError(f"Nothing was read for {self.idle_timeout:g} s")
        )
        self._response.close()


class StreamEndedEarly(Exception):
    """The body ended before the `[DONE]` terminator: the answer may be cut short."""


async def sse_json_frames(response: aiohttp.ClientResponse, *, idle_timeout: float | None = None) -> AsyncIterator[Any]:
    """Decode `data:` lines of an SSE body into JSON values, stopping at `[DONE]`.

    Accepts `data:{...}` and `data: {...}` (RAGFlow writes the first, OpenAI servers the second),
    skips comments, `event:` and `id:` lines. A line that is not JSON raises `ValueError`; a body
    that ends without `[DONE]` raises `StreamEndedEarly`, for the caller to judge.

    The body is read in whatever chunks arrive and split here: reading it line by line costs a
    wait per line, two per token, and was the largest CPU cost of relaying an answer. The read
    gives up after `idle_timeout` (default `HTTP_READ_TIMEOUT`) seconds of silence (`ReadWatch`).
    """
    pending = b""
    idle = chat_settings.HTTP_READ_TIMEOUT if idle_timeout is None else idle_timeout
    with ReadWatch(response, idle_timeout=idle) as watch:
        async for chunk in response.content.iter_any():
            watch.read()
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
    `json`, so a frame reads the same either way; anything else that is not JSON is a
    `ValueError`. Half of a UTF-16 surrogate pair (`"\\ud83c"`: a model's emoji cut across two
    frames) becomes U+FFFD, the replacement character: no UTF-8 can carry it, so the event, the
    database and the browser could not either.
    """
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            return text_unicode_only(_decode_json(payload.decode()))
        except RecursionError:
            # Nested deeper than orjson's 1,024 levels: no agent's frame is; a broken upstream's may be.
            raise ValueError("The upstream's JSON is nested too deeply.") from None


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
