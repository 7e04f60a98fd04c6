"""Live answers marked as written while their agent is silent, so a dead process's are told apart.

A generation writes its text about once a second while tokens arrive, but an agent may say nothing
for minutes (retrieval, a slow model, a long think). Every `HEARTBEAT_INTERVAL` seconds one
statement per process marks all of its live answers as written (`services.messages_touch`). An
answer left `streaming` and unwritten for `STALE_STREAM_AFTER` then has no process left: a web
process restarted, or was killed, mid-answer. It is marked `interrupted`, its text kept, wherever it
is met next: a send to its session or by its user, a resumed stream, the housekeeping sweep.
Without this, only a limit longer than the longest generation could tell, and a restart left a
session refusing messages for a quarter of an hour.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from chat_sessions.conf import chat_settings
from chat_sessions.streaming.persistence import db_call

logger = logging.getLogger(__name__)


class Heartbeat:
    """Touches the live answers `live()` names, every interval, while there are any."""

    def __init__(self, live: Callable[[], Collection[int]]) -> None:
        self._live = live
        self._handle: asyncio.TimerHandle | None = None
        self._running: asyncio.Task | None = None

    def ensure(self) -> None:
        """A generation started: beat until none is left."""
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(chat_settings.HEARTBEAT_INTERVAL, self._tick)

    def _tick(self) -> None:
        self._handle = None
        message_ids = list(self._live())
        if not message_ids:
            return
        # A write still running (a slow database) is not doubled: the next beat writes again.
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._write(message_ids))
        self.ensure()

    async def _write(self, message_ids: list[int]) -> None:
        from chat_sessions.services import messages_touch

        try:
            await db_call(messages_touch, message_ids=message_ids)
        except Exception:
            logger.warning("Could not mark %d live answers as written", len(message_ids), exc_info=True)


_heartbeats: dict[asyncio.AbstractEventLoop, Heartbeat] = {}


def heartbeat(live: Callable[[], Collection[int]]) -> Heartbeat:
    """The running loop's heartbeat (created on first use)."""
    loop = asyncio.get_running_loop()
    beat = _heartbeats.get(loop)
    if beat is None:
        for closed in [other for other in _heartbeats if other.is_closed()]:
            del _heartbeats[closed]
        beat = _heartbeats[loop] = Heartbeat(live)
    return beat
