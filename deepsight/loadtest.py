"""A load test of our own: many users opening sessions and streaming answers at once, for a bounded time.

An asyncio client (aiohttp), so one process holds hundreds of open streams. Each user runs a few
workers; each worker opens a session, then sends messages and reads every answer's event stream
to its end, now and then listing its sessions or opening a new one. It records each request's
status and latency and how each stream ended, and prints requests per second, p50/p99 latencies
and errors. What the database holds afterwards is for the caller to check (see
deepsight/tests/security/test_load.py, which runs this short and bounded in CI).

Against a running deepsight (users, tokens and notebooks are created in its database first):

    DJANGO_SETTINGS_MODULE=deepsight.settings python -m deepsight.loadtest \\
        --url http://127.0.0.1:8000 --users 50 --streams-per-user 2 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

#: Request kinds the report breaks down.
KINDS = ("create", "send", "list")


@dataclass(frozen=True)
class LoadUser:
    token: str
    notebook_id: str


@dataclass
class Sample:
    kind: str
    status: int  # 0: the request failed below HTTP (connection refused, reset, timeout)
    seconds: float


@dataclass
class LoadReport:
    duration: float
    samples: list[Sample] = field(default_factory=list)
    #: How each stream ended: "done", "error", or "none" (it closed without a last event).
    stream_ends: Counter = field(default_factory=Counter)
    open_streams: int = 0
    max_open_streams: int = 0
    first_event_seconds: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.samples)

    @property
    def server_errors(self) -> list[Sample]:
        return [s for s in self.samples if s.status >= 500 or s.status == 0]

    def statuses(self) -> Counter:
        return Counter(s.status for s in self.samples)

    def percentile(self, kind: str, fraction: float) -> float:
        times = sorted(s.seconds for s in self.samples if s.kind == kind)
        if not times:
            return 0.0
        return times[min(len(times) - 1, round(fraction * (len(times) - 1)))]

    def summary(self) -> str:
        lines = [
            f"load: {self.requests} requests in {self.duration:.1f} s = {self.requests / self.duration:.1f} req/s; "
            f"statuses {dict(sorted(self.statuses().items()))}; 5xx or failed: {len(self.server_errors)}",
            f"streams: {sum(self.stream_ends.values())} ended {dict(self.stream_ends)}; "
            f"at most {self.max_open_streams} open at once",
        ]
        for kind in KINDS:
            if any(s.kind == kind for s in self.samples):
                lines.append(
                    f"  {kind:6} p50 {self.percentile(kind, 0.5) * 1000:7.1f} ms   "
                    f"p99 {self.percentile(kind, 0.99) * 1000:7.1f} ms"
                )
        if self.first_event_seconds:
            first = sorted(self.first_event_seconds)
            lines.append(
                f"  first event p50 {statistics.median(first) * 1000:.1f} ms   "
                f"p99 {first[min(len(first) - 1, round(0.99 * (len(first) - 1)))] * 1000:.1f} ms"
            )
        lines += [f"  problem: {problem}" for problem in self.problems[:10]]
        return "\n".join(lines)


async def _read_stream(response: aiohttp.ClientResponse, report: LoadReport, started: float) -> str:
    """Read an event stream to its end; the type of its last event, or "none"."""
    last = "none"
    first = True
    async for raw in response.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        if first:
            report.first_event_seconds.append(time.monotonic() - started)
            first = False
        last = json.loads(line[5:]).get("type", "none")
    return last


class _Worker:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, user: LoadUser, report: LoadReport) -> None:
        self.http = http
        self.user = user
        self.report = report
        self.sessions_url = f"{base_url}/api/v1/notebooks/{user.notebook_id}/chat/sessions/"
        self.headers = {"Authorization": f"Token {user.token}"}
        self.session_id: str | None = None

    async def _request(self, kind: str, method: str, url: str, **kwargs) -> tuple[int, bytes]:
        started = time.monotonic()
        try:
            async with self.http.request(method, url, headers=self.headers, **kwargs) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.report.problems.append(f"{kind}: {exc!r}")
            body, status = b"", 0
        self.report.samples.append(Sample(kind, status, time.monotonic() - started))
        return status, body

    async def open_session(self) -> None:
        status, body = await self._request("create", "POST", self.sessions_url, json={})
        if status == 201:
            self.session_id = json.loads(body)["session"]["id"]

    async def send(self, number: int) -> None:
        url = f"{self.sessions_url}{self.session_id}/messages/"
        started = time.monotonic()
        report = self.report
        status = 0
        try:
            async with self.http.post(
                url,
                json={"message": f"Question {number}: what do the sources say?", "client_message_id": f"q{number}"},
                headers={**self.headers, "Accept": "text/event-stream"},
            ) as response:
                status = response.status
                if status == 200:
                    report.open_streams += 1
                    report.max_open_streams = max(report.max_open_streams, report.open_streams)
                    try:
                        report.stream_ends[await _read_stream(response, report, started)] += 1
                    finally:
                        report.open_streams -= 1
                else:
                    await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            report.problems.append(f"send: {exc!r}")
        report.samples.append(Sample("send", status, time.monotonic() - started))

    async def run(self, deadline: float, rng: random.Random) -> None:
        number = 0
        while time.monotonic() < deadline:
            if self.session_id is None or rng.random() < 0.15:
                await self.open_session()
                if self.session_id is None:
                    await asyncio.sleep(0.1)
                    continue
            number += 1
            await self.send(number)
            if rng.random() < 0.3:
                await self._request("list", "GET", self.sessions_url)


async def run_load(
    *,
    base_url: str,
    users: list[LoadUser],
    duration: float,
    streams_per_user: int = 2,
    seed: int = 7,
    read_timeout: float = 120.0,
) -> LoadReport:
    """Drive `users` x `streams_per_user` workers against `base_url` for `duration` seconds.

    Workers start no new request after the deadline but finish the one under way, so every
    stream that was opened is read to its end.
    """
    report = LoadReport(duration=duration)
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=0)
    client_timeout = aiohttp.ClientTimeout(total=None, sock_read=read_timeout)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as http:
        deadline = started + duration
        workers = [_Worker(http, base_url, user, report) for user in users for _ in range(streams_per_user)]
        await asyncio.gather(*(worker.run(deadline, random.Random(rng.random())) for worker in workers))
    report.duration = time.monotonic() - started
    return report


def users_prepare(count: int, *, prefix: str = "load") -> list[LoadUser]:
    """Create `count` users, each with an API token and a notebook holding one source (Django ORM)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from notebooks import services

    users = []
    for index in range(count):
        user, _ = get_user_model().objects.get_or_create(username=f"{prefix}-{index}")
        token, _ = Token.objects.get_or_create(user=user)
        notebook = services.notebook_create(owner=user, name=f"Load {index}")
        services.source_create_text(
            notebook=notebook,
            title="Notes",
            content="The sources say photosynthesis turns light into sugar. Chlorophyll absorbs red and blue light.",
        )
        users.append(LoadUser(token=token.key, notebook_id=str(notebook.pk)))
    return users


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="deepsight's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--streams-per-user", type=int, default=2)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    args = parser.parse_args()
    django.setup()
    users = users_prepare(args.users)
    report = asyncio.run(
        run_load(
            base_url=args.url.rstrip("/"),
            users=users,
            duration=args.duration,
            streams_per_user=args.streams_per_user,
        )
    )
    print(report.summary())
    raise SystemExit(1 if report.server_errors or report.stream_ends["none"] else 0)


if __name__ == "__main__":
    main()
