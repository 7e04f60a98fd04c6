"""Benchmark 2, the API at scale: 100k sessions and 1M messages for one user, then the first page
against a page far down, for the session list and for a long message history; the queries each
request makes; and the session list's requests/s against a plain `values()` view over the same rows.

Requests go over HTTP to deepsight under uvicorn (one process, as production runs it), timed by an
aiohttp client with keep-alive connections. The deep page's cursor is the one a client walking
`next` 2,500 times would hold, built with the pagination class itself.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.pagination import Cursor

from bench import seed as seeding
from bench.config import Scale
from bench.procs import deepsight_server
from bench.proxy import SERVER_POOL_SIZE
from bench.stats import median, percentile
from chat_sessions.api.pagination import MessageCursorPagination, SessionCursorPagination
from chat_sessions.conf import chat_settings
from chat_sessions.models import ChatSession, SessionChatMessage


def _deep_cursor(pagination_class, base_url: str, position: Any) -> str:
    pager = pagination_class()
    pager.base_url = base_url
    return pager.encode_cursor(Cursor(offset=0, reverse=False, position=str(position)))


def _pages(seeded: seeding.Seeded, scale: Scale) -> dict[str, dict[str, Any]]:
    """Paths of the first and the deep page of both lists, and the row each deep page must start at."""
    owner = seeded.owner
    sessions_path = f"/api/v1/notebooks/{owner.notebook_id}/chat/sessions/"
    messages_path = f"{sessions_path}{seeded.big_session_id}/messages/"
    ordered = ChatSession.objects.filter(created_by_id=owner.user_id).order_by("-last_activity", "-id")
    before_deep, at_deep = ordered[scale.deep_sessions - 1 : scale.deep_sessions + 1]
    deep_order = seeded.big_messages - scale.deep_messages
    return {
        "sessions": {
            "first": sessions_path,
            "deep": _deep_cursor(SessionCursorPagination, sessions_path, before_deep.last_activity),
            "deep_starts_at": str(at_deep.pk),
            "depth": scale.deep_sessions,
        },
        "messages": {
            "first": messages_path,
            "deep": _deep_cursor(MessageCursorPagination, messages_path, deep_order + 1),
            "deep_starts_at": deep_order,
            "depth": scale.deep_messages,
        },
    }


def _query_counts(pages: dict[str, dict[str, Any]], token: str) -> dict[str, Any]:
    """Queries per request, counted in this process with Django's test client on the same database."""
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/json")
    counts: dict[str, Any] = {}
    for name, page in pages.items():
        for which in ("first", "deep"):
            client.get(page[which])  # warm: the counts are about the view, not about cold caches
            with CaptureQueriesContext(connection) as queries:
                response = client.get(page[which])
            assert response.status_code == 200, response.content[:300]
            counts[f"{name}_{which}"] = len(queries.captured_queries)
        body = client.get(page["deep"]).json()
        rows = body.get("sessions") or body.get("messages") or []
        if name == "sessions":
            counts["sessions_deep_lands"] = bool(rows) and rows[0]["id"] == page["deep_starts_at"]
        else:
            counts["messages_deep_lands"] = bool(rows) and rows[-1]["message_order"] == page["deep_starts_at"]
    return counts


async def _latencies(base: str, token: str, paths: dict[str, str], requests: int) -> dict[str, list[float]]:
    """Sequential requests on one keep-alive connection, alternating the paths; milliseconds each."""
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    times: dict[str, list[float]] = {name: [] for name in paths}
    async with aiohttp.ClientSession(base, headers=headers, connector=aiohttp.TCPConnector(limit=1)) as http:
        for path in paths.values():  # warm-up
            for _ in range(3):
                async with http.get(path) as response:
                    await response.read()
        for _ in range(requests):
            for name, path in paths.items():
                started = time.perf_counter()
                async with http.get(path) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {path}: HTTP {response.status}")
                times[name].append((time.perf_counter() - started) * 1000)
    return times


async def _throughput(base: str, token: str, path: str, *, seconds: float, concurrency: int) -> float:
    """Requests/s of `concurrency` clients each sending the next request as soon as one returns."""
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    done = 0
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as http:
        for _ in range(concurrency):
            async with http.get(path) as response:
                await response.read()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                async with http.get(path) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{errors} failed requests to {path}")
    return done / elapsed


def run(scale: Scale, *, env: dict[str, str], logs: Path, progress, reseed: bool = False) -> dict[str, Any]:
    progress(f"api: seeding {scale.sessions:,} sessions and {scale.messages:,} messages")
    seeded = seeding.seed(
        sessions=scale.sessions,
        messages=scale.messages,
        deep_messages=scale.deep_messages,
        page=chat_settings.PAGE_SIZE,
        force=reseed,
    )
    owner = seeded.owner
    seeded_messages = SessionChatMessage.objects.filter(session__created_by_id=owner.user_id).count()
    pages = _pages(seeded, scale)
    progress("api: query counts")
    queries = _query_counts(pages, owner.token)
    # Pooled connections, as docker-compose runs it: without a pool every request opens one.
    server = deepsight_server(
        log=logs / "deepsight-api.log", env={**env, "DATABASE_POOL_MAX_SIZE": str(SERVER_POOL_SIZE)}
    )
    try:
        progress("api: first page vs deep page")
        paths = {f"{name}_{which}": page[which] for name, page in pages.items() for which in ("first", "deep")}
        times = asyncio.run(_latencies(server.url, owner.token, paths, scale.api_requests))
        latency = {
            name: {"p50_ms": round(percentile(values, 50), 3), "p99_ms": round(percentile(values, 99), 3)}
            for name, values in times.items()
        }
        values_path = f"/bench/values/{owner.notebook_id}/sessions/"
        rounds: dict[str, list[float]] = {"list": [], "values": []}
        for round_number in range(scale.rps_rounds):
            progress(f"api: requests/s, round {round_number + 1} of {scale.rps_rounds}")
            for name, path in (("list", pages["sessions"]["first"]), ("values", values_path)):
                rate = asyncio.run(
                    _throughput(
                        server.url, owner.token, path, seconds=scale.rps_seconds, concurrency=scale.rps_concurrency
                    )
                )
                rounds[name].append(round(rate, 1))
        errors = server.log_errors()
    finally:
        server.stop()
    return {
        "seed": {
            "sessions": seeded.sessions,
            "messages": seeded_messages,
            "long_session_messages": seeded.big_messages,
            "seconds": round(seeded.seconds, 1),
            "reused": seeded.reused,
        },
        "depth": {"sessions": scale.deep_sessions, "messages": scale.deep_messages},
        "latency": latency,
        "deep_over_first": {
            name: round(latency[f"{name}_deep"]["p50_ms"] / latency[f"{name}_first"]["p50_ms"], 3)
            for name in ("sessions", "messages")
        },
        "queries": queries,
        "rps": {
            "rounds": rounds,
            "list": median(rounds["list"]),
            "values": median(rounds["values"]),
            "ratio": round(median(rounds["list"]) / median(rounds["values"]), 3),
            "concurrency": scale.rps_concurrency,
            "seconds": scale.rps_seconds,
        },
        "server_log_errors": errors,
        "samples": times,
    }
