"""Django's ASGI handler, letting event streams send their live events themselves.

`get_asgi_application()` here is Django's, with one difference: an answer's event stream gets the
ASGI `send` its body goes out through, so each token is sent by the generation that publishes it
instead of waking the response's task to pass it on (`chat_sessions.streaming.direct`). Every
other response is served exactly as Django serves it. Projects that keep Django's own handler
stream the same events, through the response's iterator.

It also speaks ASGI lifespan, which Django's does not: when the server stops gracefully (SIGTERM),
answers still being generated are stopped and saved before the process exits.
"""

from __future__ import annotations

from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler


class ASGIHandler(DjangoASGIHandler):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await super().__call__(scope, receive, send)

    async def send_response(self, response: Any, send: Any) -> None:
        from chat_sessions.api.streams import EventStreamResponse

        if isinstance(response, EventStreamResponse):
            response.send_directly(send)
        await super().send_response(response, send)


async def _lifespan(receive: Any, send: Any) -> None:
    """ASGI lifespan: at shutdown, after the server has closed its connections, the answers still
    being generated are stopped and saved (`generations_end`) before the process exits."""
    from chat_sessions.streaming.generation import generations_end

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await generations_end()
            await send({"type": "lifespan.shutdown.complete"})
            return


def get_asgi_application() -> ASGIHandler:
    """`django.core.asgi.get_asgi_application`, with the handler above."""
    django.setup(set_prefix=False)
    return ASGIHandler()
