"""Real servers on loopback for tests: the ASGI app under uvicorn, and aiohttp apps (fake upstreams).

Each runs in a thread of the test process on a port the OS picks, so tests talk to them over real
sockets, and the ASGI app shares the test's settings and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

from aiohttp import web


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class UvicornThread:
    """An ASGI application (an import path or the app; deepsight's by default) under uvicorn, in a thread."""

    def __init__(self, app: str | Callable = "deepsight.asgi:application") -> None:
        import uvicorn

        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, lifespan="off", log_level="warning", loop="asyncio", http="httptools")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        from chat_sessions.agents.http import http_session_close

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.server.serve(sockets=[self.sock]))
            loop.run_until_complete(http_session_close())
        finally:
            loop.close()

    def start(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@contextlib.contextmanager
def asgi_served(app: str | Callable = "deepsight.asgi:application") -> Iterator[UvicornThread]:
    """An ASGI application under uvicorn for one test; its answers' persistence is reset after it."""
    from chat_sessions.streaming.persistence import persistence_reset

    server = UvicornThread(app).start()
    try:
        yield server
    finally:
        server.stop()
        persistence_reset()


class AiohttpThread:
    """An aiohttp application (a fake upstream) served in a background thread with its own loop."""

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self.make_app = make_app
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def start(self) -> AiohttpThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self.app = self.make_app()
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=1)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self._cancel_leftovers(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.sock.close()

    async def _cancel_leftovers(self) -> None:
        # A reply the client abandoned (a scripted slow answer) may still be sleeping in its
        # handler; cancel it rather than leave the loop to stop with it pending.
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
