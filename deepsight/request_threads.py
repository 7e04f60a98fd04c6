"""Threads for each request's sync code, kept from request to request instead of started for each.

Django serves every ASGI request inside asgiref's `ThreadSensitiveContext`, which starts a thread
for that request's sync code (the request signals, the DRF view, `response.close()`) and, when the
request ends, another thread to join it. A streamed answer took three thread starts (its thread is
let go when the stream begins, see `chat_sessions.api.streams`, and `response.close()` needs a
new one), each about 300 µs of CPU on our machines: several percent of a turn's CPU, and more of a
short API request's.

`RequestThreads` wraps the ASGI application and gives each HTTP request a `RequestThread` through
asgiref's own hook (`ThreadSensitiveContext(executor=...)`): a lease on a thread from a pool. The
request's sync calls still run one at a time on one thread, as thread-sensitive code requires, and
the thread goes back to the pool when the request ends, once its last call has returned. Threads
keep their thread-locals between requests as in any threaded WSGI server; Django closes each
request's database connections at its end (`request_finished`), as it does there.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

#: Idle threads kept for the next requests; a burst beyond them gets threads that end after it.
MAX_IDLE_THREADS = 64


class ThreadPool:
    """Single-thread executors, lent to requests one at a time and kept while idle."""

    def __init__(self, *, max_idle: int = MAX_IDLE_THREADS) -> None:
        self.max_idle = max_idle
        self._idle: list[ThreadPoolExecutor] = []
        self._lent = 0
        self._lock = threading.Lock()

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            self._lent += 1
            if self._idle:
                return self._idle.pop()
        # A one-worker executor, not a bare thread: its worker is joined at interpreter exit
        # (a call still running when the server stops is finished, not cut off), like asgiref's.
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            self._lent -= 1
            if len(self._idle) < self.max_idle:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)

    @property
    def idle(self) -> int:
        """Threads waiting in the pool for a request."""
        return len(self._idle)

    @property
    def lent(self) -> int:
        """Threads lent to requests and not given back yet."""
        return self._lent


class RequestThread(Executor):
    """One request's thread: taken from the pool at its first sync call, given back by `release()`.

    After `release()` a further call takes a thread again (possibly another one): the streaming
    endpoints release the thread once their DRF part is done, as a stream needs none.
    """

    def __init__(self, pool: ThreadPool) -> None:
        self._pool = pool
        self._executor: ThreadPoolExecutor | None = None
        self._last: Future | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._executor is None:
                self._executor = self._pool.take()
            self._last = future = self._executor.submit(fn, *args, **kwargs)
        return future

    def release(self) -> None:
        """Give the thread back, once the last call submitted to it has returned."""
        with self._lock:
            executor, last = self._executor, self._last
            self._executor = self._last = None
        if executor is None:
            return
        if last is None or last.done():
            self._pool.give_back(executor)
        else:  # one worker, calls in order: when the last call is done, every call is
            last.add_done_callback(lambda _: self._pool.give_back(executor))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.release()


class RequestThreads:
    """ASGI wrapper: every HTTP request's thread-sensitive sync code runs on a pooled thread."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, pool: ThreadPool | None = None) -> None:
        self.app = app
        self.pool = pool or ThreadPool()

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        thread = RequestThread(self.pool)
        try:
            # Django's own `ThreadSensitiveContext()` inside finds this one and leaves it in place.
            async with ThreadSensitiveContext(executor=thread):
                await self.app(scope, receive, send)
        finally:
            thread.release()
