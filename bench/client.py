"""The load generator: opens streams on a schedule and times every token as it arrives.

One aiohttp client on one event loop (`TCPConnector(limit=0)`, no read timeout), as the
performance notes describe. Each token carries the upstream's `time.monotonic_ns()` stamp, so its
latency is `arrival - stamp`; time to first token is measured from just before the request.
The same client reads both formats: RAGFlow's frames (direct and through the bare proxy) and
deepsight's events (`data: {"type":"token","text":...}`). Every stream has a deadline, and the
load as a whole stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.config import Load

TOKEN = re.compile(rb'"(?:content|text)":"(\d+):(\d+) ')
#: Seconds a stream may run past its own schedule before it counts as failed.
SLACK_SECONDS = 60.0


@dataclass
class Target:
    """How to open stream `i`: URL, JSON body and headers; `kind` says which format comes back."""

    kind: str  # "ragflow" | "deepsight"
    request: Callable[[int], tuple[str, bytes, dict[str, str]]]


@dataclass
class LoadResult:
    tokens: int = 0
    expected: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    #: Per-token latency and time to first token, microseconds.
    latency_us: array = field(default_factory=lambda: array("q"))
    ttft_us: array = field(default_factory=lambda: array("q"))
    #: Answers whose saved text (the `done` event) held every token (deepsight only).
    persisted_complete: int = 0
    out_of_order: int = 0
    max_open: int = 0
    wall_seconds: float = 0.0
    sample: dict[str, Any] = field(default_factory=dict)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])


async def run_load(target: Target, load: Load, *, sampler: Callable[[int], dict[str, Any]] | None = None) -> LoadResult:
    """Run `load` against `target`; `sampler(open_streams)` is called once all streams are open."""
    result = LoadResult(expected=load.expected_tokens)
    open_now = 0
    loop = asyncio.get_running_loop()
    stream_limit = load.stream_s + SLACK_SECONDS

    async def one(index: int, start_at: float, http: aiohttp.ClientSession) -> None:
        nonlocal open_now
        url, body, headers = target.request(index)
        await asyncio.sleep(max(start_at - loop.time(), 0))
        sent = time.monotonic_ns()
        received = 0
        finished = False
        opened = False
        try:
            async with asyncio.timeout(stream_limit):
                async with http.post(url, data=body, headers=headers) as response:
                    if response.status != 200:
                        result.error(f"HTTP {response.status}: {(await response.text())[:200]}")
                        return
                    opened = True
                    open_now += 1
                    result.max_open = max(result.max_open, open_now)
                    async for line in response.content:
                        match = TOKEN.search(line)
                        if match is not None:
                            now = time.monotonic_ns()
                            if not received:
                                result.ttft_us.append((now - sent) // 1000)
                            result.latency_us.append((now - int(match[2])) // 1000)
                            if int(match[1]) != received:
                                result.out_of_order += 1
                            received += 1
                            continue
                        if target.kind == "ragflow":
                            if line.startswith(b"data:[DONE]"):
                                finished = True
                                break
                        elif b'"type":"done"' in line:
                            message = json.loads(line[5:])["message"]
                            if message["status"] == "complete" and len(message["message"].split()) == load.tokens:
                                result.persisted_complete += 1
                            finished = True
                            break
                        elif b'"type":"error"' in line:
                            result.error(f"error event: {line[:200]!r}")
                            break
        except TimeoutError:
            result.error(f"stream {index} passed its deadline after {received} tokens")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            result.error(f"stream {index}: {exc!r}")
        finally:
            if opened:
                open_now -= 1
            result.tokens += received
        if finished and received != load.tokens:
            result.error(f"stream {index} ended with {received} of {load.tokens} tokens")
        elif not finished and opened and received == load.tokens:
            result.error(f"stream {index} got every token but no end")

    async def sample(start: float, until: float) -> None:
        """From the end of the ramp until the first stream ends: sample whenever more streams are open."""
        await asyncio.sleep(max(start - loop.time(), 0))
        while loop.time() < until:
            if sampler is not None and open_now > result.sample.get("open_streams", 0):
                result.sample = {"open_streams": open_now, "at_seconds": round(loop.time() - began, 1)}
                result.sample.update(sampler(open_now))
            if open_now == load.streams:
                return
            await asyncio.sleep(0.25)

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        began = loop.time()
        start = began + 0.1
        step = load.ramp_s / load.streams if load.streams > 1 else 0.0
        tasks = [asyncio.create_task(one(index, start + index * step, http)) for index in range(load.streams)]
        sampling = None
        if load.sample_open and sampler is not None:
            sampling = asyncio.create_task(sample(start + load.ramp_s, start + load.stream_s))
        _, pending = await asyncio.wait(tasks, timeout=load.duration_s + SLACK_SECONDS + 5)
        for task in pending:
            task.cancel()
        for task in pending:
            try:
                await task
            except asyncio.CancelledError:
                result.error("stream cancelled at the load's deadline")
        if sampling is not None:
            await sampling
        result.wall_seconds = loop.time() - began
    return result
