"""The upstream SSE reader gives the same frames however the body is cut into chunks."""

from __future__ import annotations

import asyncio
import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_sessions.agents.http import StreamEndedEarly, sse_json_frames

FRAMES = [{"event": "message", "data": {"content": text}} for text in ("Hé", "llo", " 世界", "\n", "")]


def _frame_bytes(index: int, frame: dict) -> bytes:
    """RAGFlow's shape (`data:` then raw UTF-8) and OpenAI's (`data: ` then ASCII escapes, CRLF), in turn."""
    if index % 2:
        return b"event: message\nid: %d\ndata:%s\n\n" % (index, json.dumps(frame, ensure_ascii=False).encode())
    return b"data: %s\r\n\r\n" % json.dumps(frame).encode()


BODY = (
    b": a comment\r\n\r\n"
    + b"".join(_frame_bytes(index, frame) for index, frame in enumerate(FRAMES))
    + b"data: [DONE]\n\n"
)


class _Body:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def iter_any(self):
        for chunk in self._chunks:
            await asyncio.sleep(0)
            yield chunk


class _Response:
    def __init__(self, chunks: list[bytes]) -> None:
        self.content = _Body(chunks)


def _read(chunks: list[bytes]) -> list:
    async def collect():
        return [frame async for frame in sse_json_frames(_Response(chunks))]

    return asyncio.run(collect())


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    return [body[start:end] for start, end in itertools.pairwise(points)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_frames_are_the_same_wherever_the_chunks_are_cut(cuts):
    """Cuts fall anywhere: between lines, inside a frame, inside a multi-byte character."""
    assert _read(_cut(BODY, cuts)) == FRAMES


def test_one_byte_at_a_time():
    assert _read([bytes([byte]) for byte in BODY]) == FRAMES


def test_a_body_without_the_terminator_ends_early_after_its_frames():
    seen = []

    async def collect():
        async for frame in sse_json_frames(_Response([BODY.split(b"data: [DONE]")[0]])):
            seen.append(frame)

    with pytest.raises(StreamEndedEarly):
        asyncio.run(collect())
    assert seen == FRAMES


def test_a_last_line_without_a_newline_still_counts():
    assert _read([b'data:{"a":1}\n\ndata: [DONE]']) == [{"a": 1}]


def test_a_line_that_is_not_json_is_an_error():
    with pytest.raises(json.JSONDecodeError):
        _read([b"data: {not json\n\n"])


def test_frames_orjson_refuses_read_as_pythons_json_reads_them():
    # A lone surrogate escape and NaN: orjson refuses both, the standard library reads them.
    frames = _read([b'data: {"content":"a\\ud800b"}\n\ndata: {"score":NaN}\n\ndata: [DONE]\n\n'])

    assert frames[0] == {"content": "a\ufffdb"}  # half a UTF-16 pair: no UTF-8 can carry it on
    assert math.isnan(frames[1]["score"])


def test_a_whole_surrogate_pair_in_a_frame_orjson_refuses_is_its_character():
    frames = _read([b'data: {"content":"\\ud83c\\udf3f \\udf3f","n":NaN,"list":["\\udc00"]}\n\ndata: [DONE]\n\n'])

    assert frames[0]["content"] == "\U0001f33f \ufffd"
    assert frames[0]["list"] == ["\ufffd"]


def test_text_that_is_not_utf8_is_an_error():
    with pytest.raises(UnicodeDecodeError):  # a ValueError, as a line that is not JSON
        _read([b'data: {"content":"\xff"}\n\n'])


# The read timeout, over a real socket
# ------------------------------------------------------------------------------


async def _served_frames(gaps: list[float], *, idle_timeout: float) -> tuple[list, float, int]:
    """Frames read from a loopback server that writes one frame after each gap, then `[DONE]`.

    Returns the frames read, the seconds taken, and how many connections the server saw after a
    second request on the same client session (2: the first one was not reused).
    """
    from aiohttp import ClientSession, web

    from chat_sessions.agents.http import stream_timeout

    peers = set()

    async def stream(request):
        peers.add(request.transport.get_extra_info("peername"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, gap in enumerate(gaps):
            await asyncio.sleep(gap)
            await response.write(b'data: {"n": %d}\n\n' % index)
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_get("/", stream)
    runner = web.AppRunner(app, handler_cancellation=True)  # a client that hangs up ends its handler
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"
    frames: list = []
    started = asyncio.get_running_loop().time()
    try:
        async with ClientSession() as http:
            try:
                async with http.get(url, timeout=stream_timeout()) as response:
                    async for frame in sse_json_frames(response, idle_timeout=idle_timeout):
                        frames.append(frame)
            except TimeoutError as exc:
                frames.append(exc)
            taken = asyncio.get_running_loop().time() - started
            gaps[:] = []
            async with http.get(url) as response:
                await response.read()
    finally:
        await runner.cleanup()
    return frames, taken, len(peers)


@pytest.mark.asyncio
async def test_a_stream_that_keeps_talking_outlives_its_read_timeout():
    # 1.2 s in all against a 0.4 s timeout: each gap is shorter than the timeout.
    frames, taken, _ = await _served_frames([0.15] * 8, idle_timeout=0.4)

    assert frames == [{"n": index} for index in range(8)]
    assert taken > 1.0


@pytest.mark.asyncio
async def test_a_stream_that_goes_silent_ends_with_a_timeout_and_its_connection_is_not_reused():
    import aiohttp

    frames, taken, connections = await _served_frames([0.0, 0.0, 30.0], idle_timeout=0.4)

    assert frames[:2] == [{"n": 0}, {"n": 1}]
    assert isinstance(frames[2], aiohttp.SocketTimeoutError)
    assert 0.35 < taken < 5
    assert connections == 2


@pytest.mark.parametrize(
    "frame",
    [b"[" * 1500 + b"]" * 1500, b'{"a":' * 600 + b'"\\ud800"' + b"}" * 600],
    ids=["past-every-parser", "a-surrogate-deep-inside"],
)
def test_a_frame_nested_past_the_recursion_limit_is_an_error_like_any_line_that_is_not_json(frame):
    with pytest.raises(ValueError, match="nested too deeply"):  # not a RecursionError past the reader's callers
        _read([b"data: " + frame + b"\n\n"])
