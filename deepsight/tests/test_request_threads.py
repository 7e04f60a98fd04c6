"""Requests run their sync code on pooled threads (deepsight/request_threads.py), one thread per request."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.asgi import get_asgi_application

from deepsight.request_threads import RequestThread, RequestThreads, ThreadPool


async def _threads_of_one_request(pool: ThreadPool, calls: int = 3) -> set[int]:
    thread = RequestThread(pool)
    try:
        async with ThreadSensitiveContext(executor=thread):
            return {await sync_to_async(threading.get_ident)() for _ in range(calls)}
    finally:
        thread.release()


@pytest.mark.asyncio
async def test_a_requests_sync_calls_share_one_thread_which_the_next_request_reuses():
    pool = ThreadPool()

    first = await _threads_of_one_request(pool)
    second = await _threads_of_one_request(pool)

    assert len(first) == 1
    assert second == first
    assert (pool.idle, pool.lent) == (1, 0)


@pytest.mark.asyncio
async def test_requests_at_once_each_get_a_thread_of_their_own():
    pool = ThreadPool()
    inside = threading.Barrier(3, timeout=5)  # all three calls must be running at the same time

    async def request() -> int:
        thread = RequestThread(pool)
        try:
            async with ThreadSensitiveContext(executor=thread):
                return await sync_to_async(lambda: (inside.wait(), threading.get_ident())[1])()
        finally:
            thread.release()

    threads = await asyncio.gather(request(), request(), request())

    assert len(set(threads)) == 3
    assert (pool.idle, pool.lent) == (3, 0)


def test_a_thread_still_running_a_call_is_not_lent_to_another_request():
    pool = ThreadPool()
    first, second = RequestThread(pool), RequestThread(pool)
    go_on = threading.Event()
    running = first.submit(lambda: (go_on.wait(5), threading.get_ident())[1])

    first.release()  # the request ended, its last call has not
    other = second.submit(threading.get_ident).result(timeout=5)
    lent_while_running = pool.lent
    go_on.set()
    mine = running.result(timeout=5)
    second.release()

    assert other != mine
    assert lent_while_running == 2
    assert pool.lent == 0
    assert pool.idle == 2


def test_the_pool_keeps_at_most_max_idle_threads():
    pool = ThreadPool(max_idle=1)
    leases = [RequestThread(pool) for _ in range(3)]
    for lease in leases:
        lease.submit(int).result(timeout=5)

    for lease in leases:
        lease.release()

    assert (pool.idle, pool.lent) == (1, 0)


def test_a_released_lease_takes_a_thread_again_for_a_later_call():
    pool = ThreadPool()
    lease = RequestThread(pool)
    lease.submit(int).result(timeout=5)
    lease.release()

    assert lease.submit(lambda: 7).result(timeout=5) == 7
    assert pool.lent == 1
    lease.release()
    assert pool.lent == 0


@pytest.mark.django_db(transaction=True)
def test_django_requests_start_no_thread_each(user, user_token, monkeypatch):
    """The wrapped application answers as Django does, with one thread started for many requests."""
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    application = RequestThreads(get_asgi_application())
    plain = get_asgi_application()
    monkeypatch.setattr(threading.Thread, "start", counting_start)

    pooled_answers = [_get(application, "/api/v1/notebooks/", user_token) for _ in range(10)]
    pooled_starts = len(started)
    started.clear()
    plain_answers = [_get(plain, "/api/v1/notebooks/", user_token) for _ in range(10)]

    assert pooled_answers == plain_answers
    assert pooled_answers[0][0] == 200
    assert pooled_starts == 1
    assert len(started) >= 10  # Django alone starts at least one thread per request
    assert application.pool.lent == 0


def _get(application, path: str, token: str) -> tuple[int, object]:
    """One GET through an ASGI application, in a fresh event loop as a server's request would be."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Token {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(application(scope, receive, send))
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return status, json.loads(body)
