"""Database writes for streaming answers, off the event loop and batched.

Generations never hold a database connection: each write is a short call on a small thread pool
whose threads keep their own connections. The growing text of every live answer in the process is
written by one batch per `FLUSH_INTERVAL`, so 2,000 open streams cost one transaction a second,
not 2,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection

from chat_sessions.conf import chat_settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=chat_settings.PERSIST_THREADS, thread_name_prefix="chat-persist")
        return _executor


def _call(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return fn(**kwargs)
    except (InterfaceError, OperationalError):
        # The thread's connection may have died (database restart, network blip). Every
        # function sent here is an idempotent update, so one retry on a fresh connection is safe.
        logger.warning("Database call %s failed; retrying on a new connection", fn.__name__, exc_info=True)
        connection.close()
        return fn(**kwargs)


async def db_call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run `fn(**kwargs)` on the persistence threads and wait for it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), functools.partial(_call, fn, kwargs))


def persistence_reset() -> None:
    """Close every persistence thread's connection and the pool (tests, shutdown)."""
    global _executor
    with _executor_lock:
        executor, _executor = _executor, None
    if executor is None:
        return
    workers = chat_settings.PERSIST_THREADS
    barrier = threading.Barrier(workers, timeout=5)

    def close_here() -> None:
        connection.close()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()  # hold this thread so each of the others runs one close too

    for _ in range(workers):
        executor.submit(close_here)
    executor.shutdown(wait=True)


class TextFlusher:
    """Writes the partial text of every live answer of this process, once per interval, in one batch."""

    def __init__(self) -> None:
        self._dirty: dict[int, Any] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._running: asyncio.Task | None = None

    def mark(self, state: Any) -> None:
        """`state` has `message_id` and `snapshot() -> (text, reasoning)`; write it at the next tick."""
        self._dirty[state.message_id] = state
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_later(chat_settings.FLUSH_INTERVAL, self._tick)

    def forget(self, message_id: int) -> None:
        self._dirty.pop(message_id, None)

    def _tick(self) -> None:
        self._handle = None
        if self._running is not None and not self._running.done():
            # The previous batch is still writing: try again next interval, nothing is dropped.
            self._handle = asyncio.get_running_loop().call_later(chat_settings.FLUSH_INTERVAL, self._tick)
            return
        batch, self._dirty = self._dirty, {}
        if batch:
            self._running = asyncio.get_running_loop().create_task(self._write(batch))

    async def _write(self, batch: dict[int, Any]) -> None:
        from chat_sessions.services import messages_flush

        texts = {message_id: state.snapshot() for message_id, state in batch.items()}
        try:
            await db_call(messages_flush, texts=texts)
        except Exception:
            logger.exception("Could not save %d streaming answers; retrying next interval", len(texts))
            for message_id, state in batch.items():
                self._dirty.setdefault(message_id, state)
            if self._handle is None:
                self._handle = asyncio.get_running_loop().call_later(chat_settings.FLUSH_INTERVAL, self._tick)


_flushers: dict[asyncio.AbstractEventLoop, TextFlusher] = {}


def text_flusher() -> TextFlusher:
    loop = asyncio.get_running_loop()
    flusher = _flushers.get(loop)
    if flusher is None:
        for stale in [other for other in _flushers if other.is_closed()]:
            del _flushers[stale]
        flusher = _flushers[loop] = TextFlusher()
    return flusher
