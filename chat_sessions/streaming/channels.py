"""Each answer's events, kept for its live watchers and for anyone who reconnects.

Events are numbered 1, 2, 3... (the SSE `id:`), encoded once as SSE frames when published, and
replayable from any number (`Last-Event-ID`). The log lives in the process running the
generation; with a Redis URL it is mirrored into a Redis stream, so a reconnect that lands on
another web process resumes it there, and stop signals reach the generation wherever it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from json.encoder import encode_basestring
from typing import Any

from chat_sessions.conf import chat_settings
from chat_sessions.streaming.direct import DirectSend, DirectWatcher, Send
from chat_sessions.text import text_unicode_only

logger = logging.getLogger(__name__)

PING = b": ping\n\n"
TERMINAL_TYPES = frozenset({"done", "error"})
#: Seconds between two writes of the Redis mirror. Each write carries every answer's new events
#: as one entry, so Redis costs one command per answer per interval instead of one per token; a
#: reconnect served by another process sees events at most this much later.
MIRROR_INTERVAL = 0.25


#: `json.dumps` builds a new encoder on every call made with options; this one is built once.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: A str as a JSON string, exactly as `_to_json` writes it (no ASCII escaping).
_json_string = encode_basestring


def sse_frame(seq: int, data: str) -> bytes:
    return f"id: {seq}\ndata: {data}\n\n".encode()


class StreamLog:
    """The events of one answer in this process, the futures of those waiting for the next one,
    and the watchers it sends each new event to itself (`DirectWatcher`)."""

    __slots__ = ("_direct", "_waiters", "final", "finished", "frames")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.final: dict[str, Any] | None = None
        self.finished = False
        self._waiters: list[asyncio.Future] = []
        self._direct: list[DirectWatcher] = []

    def append(self, frame: bytes) -> None:
        self.frames.append(frame)
        if self._direct:
            handed = len(self.frames)
            for watcher in tuple(self._direct):
                watcher.handed = handed
                if not watcher.deliver(frame):
                    self._direct.remove(watcher)
            if self.finished:
                for watcher in self._direct:
                    watcher.end()
                self._direct.clear()
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def watch_directly(self, send: Send) -> DirectWatcher:
        """Send each event from the next one on through `send`, from `append` (`streaming.direct`)."""
        watcher = DirectWatcher(send, handed=len(self.frames))
        self._direct.append(watcher)
        return watcher

    def unwatch(self, watcher: DirectWatcher) -> None:
        with contextlib.suppress(ValueError):
            self._direct.remove(watcher)

    def ping(self, watcher: DirectWatcher) -> None:
        if not watcher.deliver(PING):
            self.unwatch(watcher)

    def changed(self) -> asyncio.Future:
        """A future of the caller's own, done at the next event: cancelling it disturbs no one else."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter


class ChannelHub:
    """Publishes and replays answer events; one per event loop."""

    def __init__(self, redis: RedisStreams | None = None) -> None:
        self._logs: dict[int, StreamLog] = {}
        self.redis = redis

    def open(self, message_id: int) -> StreamLog:
        log = self._logs[message_id] = StreamLog()
        return log

    def local(self, message_id: int) -> StreamLog | None:
        return self._logs.get(message_id)

    def publish(self, message_id: int, payload: dict[str, Any]) -> int:
        return self._append(message_id, _to_json(payload), payload.get("type") in TERMINAL_TYPES)

    def publish_text(self, message_id: int, kind: str, text: str) -> int:
        """`publish({"type": kind, "text": text})` for the token path: only the text is JSON-encoded."""
        return self._append(message_id, f'{{"type":"{kind}","text":{_json_string(text)}}}', False)

    def _append(self, message_id: int, data: str, terminal: bool) -> int:
        log = self._logs[message_id]
        seq = len(log.frames) + 1
        try:
            frame = sse_frame(seq, data)
        except UnicodeEncodeError:
            # Half a surrogate pair from an agent backend: sent (and mirrored) as U+FFFD, not a
            # generation that dies mid-answer with its stream never ended.
            data = text_unicode_only(data)
            frame = sse_frame(seq, data)
        log.append(frame)
        if self.redis is not None:
            self.redis.mirror(message_id, seq, data, terminal)
        return seq

    def finish(self, message_id: int, payload: dict[str, Any]) -> None:
        """Publish the last event (`done` or `error`) and keep the log replayable for a while."""
        log = self._logs[message_id]
        log.final = payload
        log.finished = True
        self.publish(message_id, payload)
        retention = chat_settings.STREAM_RETENTION.total_seconds()
        asyncio.get_running_loop().call_later(retention, self._logs.pop, message_id, None)

    def subscribe(self, message_id: int, after: int = 0, direct: DirectSend | None = None) -> AsyncIterator[bytes]:
        """SSE bytes of the events after `after`, then live ones, ending with `done` or `error`.

        Yields `PING` after `PING_INTERVAL` seconds of silence. Falls back to Redis (another
        process runs it), then to the database (the answer finished long ago, or its process died).
        """
        log = self._logs.get(message_id)
        if log is not None:
            return _follow_local(log, after, direct)
        return self._follow_elsewhere(message_id, after)

    async def _follow_elsewhere(self, message_id: int, after: int) -> AsyncIterator[bytes]:
        if self.redis is not None and await self.redis.exists(message_id):
            async for chunk in self.redis.follow(message_id, after):
                yield chunk
            return
        async for chunk in _follow_database(message_id, after):
            yield chunk


class _Pinger:
    """Wakes one watcher with `PING` once `interval` seconds pass with nothing sent to it.

    One timer per interval rather than one armed and cancelled around every wait: with many
    streams and a token every few milliseconds, those per-wait timers cost a large share of the CPU.
    """

    __slots__ = ("_interval", "_log", "_loop", "_timer", "last_sent", "waiter", "watcher")

    def __init__(self, log: StreamLog, interval: float) -> None:
        self._log = log
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self.last_sent = self._loop.time()
        self.waiter: asyncio.Future | None = None
        #: The watcher's direct sends, while it has them: it is pinged through them.
        self.watcher: DirectWatcher | None = None
        self._timer = self._loop.call_at(self.last_sent + interval, self._due)

    def _due(self) -> None:
        now = self._loop.time()
        if self.watcher is not None:
            self.last_sent = max(self.last_sent, self.watcher.last_sent)
        due = self.last_sent + self._interval
        if now >= due:
            if self.watcher is not None:
                self._log.ping(self.watcher)
            elif self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(PING)
            due = now + self._interval
        if not self._log.finished:  # a watcher that is never closed stops being pinged here
            self._timer = self._loop.call_at(due, self._due)

    def stop(self) -> None:
        self._timer.cancel()


async def _follow_local(log: StreamLog, after: int, direct: DirectSend | None = None) -> AsyncIterator[bytes]:
    position = max(after, 0)
    pinger = _Pinger(log, chat_settings.PING_INTERVAL)
    clock = asyncio.get_running_loop().time
    sent = False
    try:
        while True:
            frames = log.frames
            if position < len(frames):
                # Everything that arrived since the last send goes out as one write.
                chunk = frames[position] if len(frames) - position == 1 else b"".join(frames[position:])
                position = len(frames)
                sent = True
                yield chunk
                pinger.last_sent = clock()
                continue
            if log.finished:
                if not sent and frames:
                    # Resumed at or past its end: the final event again, as Redis and the database
                    # answer then, so every stream ends with `done` or `error` (an empty one only
                    # makes an EventSource reconnect).
                    yield frames[-1]
                return
            if direct is not None and direct.send is not None and position == len(frames):
                # Caught up: from the next event on, the generation sends each one itself.
                watcher = pinger.watcher = log.watch_directly(direct.send)
                try:
                    blocked = await watcher.ended
                finally:
                    log.unwatch(watcher)
                    pinger.watcher = None
                    pinger.last_sent = max(pinger.last_sent, watcher.last_sent)
                if blocked is None:
                    return
                await blocked  # finish the send that had to wait, then follow the log from there
                position = watcher.handed
                continue
            pinger.waiter = log.changed()
            if await pinger.waiter is PING:
                yield PING
                pinger.last_sent = clock()
    finally:
        pinger.stop()


async def _saved_final_event(message_id: int) -> str | None:
    """The last event (JSON) of an answer no longer being generated, from the database; None while it is."""
    from django.utils import timezone

    from chat_sessions.models import MessageStatus, SessionChatMessage
    from chat_sessions.payloads import message_as_dict
    from chat_sessions.streaming.persistence import db_call

    def load() -> dict[str, Any] | None:
        from chat_sessions.services import messages_interrupt_stale

        message = SessionChatMessage.objects.filter(pk=message_id).first()
        if message is None:
            return None
        stale = message.updated_at < timezone.now() - chat_settings.STALE_STREAM_AFTER
        # No process writes it any more (`streaming.heartbeat`): it ends here, as `interrupted`.
        if message.status == MessageStatus.STREAMING and stale and messages_interrupt_stale(message_id=message_id):
            message.refresh_from_db()
        return message_as_dict(message)

    message = await db_call(load)
    if message is None:
        return json.dumps({"type": "error", "message": "This answer no longer exists.", "code": "not_found"})
    if message["status"] != MessageStatus.STREAMING:
        return json.dumps({"type": "done", "message": message}, ensure_ascii=False)
    return None


async def _follow_database(message_id: int, after: int) -> AsyncIterator[bytes]:
    """No live events here: wait for the saved answer to be final, then send it as one `done`.

    It is generated in another process without Redis to relay it, or its process died: then it
    stops being written, and is marked `interrupted` once stale (`_saved_final_event`).
    """
    waited = 0.0
    while True:
        final = await _saved_final_event(message_id)
        if final is not None:
            yield sse_frame(after + 1, final)
            return
        await asyncio.sleep(1.0)
        waited += 1.0
        if waited % chat_settings.PING_INTERVAL < 1.0:
            yield PING


def _stop_if_cancelled() -> None:
    """End a background loop whose task was cancelled, even if a library swallowed the cancellation.

    redis-py can swallow a cancellation that lands mid-command (seen at event loop shutdown); a loop
    that then waits again keeps `asyncio.run` (and so a server's shutdown) from ever finishing.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisStreams:
    """Mirror of the answer logs in Redis streams, and the cross-process stop signal."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._pending: list[tuple[int, int, str, bool]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None
        self._writing = False
        self._listener: asyncio.Task | None = None

    def key(self, message_id: int) -> str:
        return f"{self.prefix}:events:{message_id}"

    @property
    def stop_channel(self) -> str:
        return f"{self.prefix}:stop"

    def client(self):
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # `follow` blocks in XREAD for PING_INTERVAL: redis-py's default socket timeout (5 s)
            # would end every resumed stream after five silent seconds.
            client = self._clients[loop] = redis.Redis.from_url(
                self.url, socket_timeout=chat_settings.PING_INTERVAL + 5
            )
        return client

    def mirror(self, message_id: int, seq: int, data: str, terminal: bool) -> None:
        """Queue an event for Redis without waiting: the token path never blocks on Redis."""
        self._pending.append((message_id, seq, data, terminal))
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    async def _write_forever(self) -> None:
        """Write what is pending, then rest `MIRROR_INTERVAL`: one entry per answer per write.

        An entry holds the answer's consecutive events since the last write: `s` the first one's
        number, `d` their data joined by newlines (JSON never contains a raw newline), and its id
        is the last one's number, so `XREAD` from any event number still finds what follows it.
        """
        wake = self._wake
        assert wake is not None
        expiry = int(chat_settings.STREAM_RETENTION.total_seconds())
        lifetime = expiry + int(chat_settings.MAX_GENERATION_SECONDS)
        while True:
            _stop_if_cancelled()
            await wake.wait()
            wake.clear()
            events, self._pending = self._pending, []
            answers: dict[int, list] = {}
            for message_id, seq, data, terminal in events:
                entry = answers.get(message_id)
                if entry is None:
                    answers[message_id] = [seq, seq, [data], terminal]
                else:
                    entry[1] = seq
                    entry[2].append(data)
                    entry[3] = entry[3] or terminal
            pipe = self.client().pipeline(transaction=False)
            for message_id, (first, last, datas, terminal) in answers.items():
                key = self.key(message_id)
                pipe.xadd(key, {"s": first, "d": "\n".join(datas), "t": "1" if terminal else "0"}, id=f"0-{last}")
                if first == 1 or terminal:
                    pipe.expire(key, expiry if terminal else lifetime)
            self._writing = True
            try:
                await pipe.execute(raise_on_error=False)
            except Exception:
                logger.warning("Could not mirror %d stream events to Redis", len(events), exc_info=True)
            finally:
                self._writing = False
            _stop_if_cancelled()
            await asyncio.sleep(MIRROR_INTERVAL)

    async def drain(self, *, seconds: float) -> None:
        """Wait, at most `seconds`, for every queued event to be written (a process exiting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (self._pending or self._writing) and self._writer is not None and not self._writer.done():
            if loop.time() >= deadline:
                logger.warning("Exiting with %d stream events not mirrored to Redis", len(self._pending))
                return
            await asyncio.sleep(MIRROR_INTERVAL / 2)

    async def exists(self, message_id: int) -> bool:
        try:
            return bool(await self.client().exists(self.key(message_id)))
        except Exception:
            logger.warning("Redis unavailable while resuming a stream", exc_info=True)
            return False

    async def follow(self, message_id: int, after: int) -> AsyncIterator[bytes]:
        """The mirrored events after `after`, then live ones, to the last one.

        A generation whose process died never mirrors its last event. So whenever the log has
        nothing new (once caught up, then after each silence) the saved answer is read: once it is
        no longer `streaming` (it ended elsewhere, or stale, it is marked `interrupted` there) the
        stream ends with it instead of pinging until the key expires.
        """
        key = self.key(message_id)
        seen = max(after, 0)
        last = f"0-{seen}"
        # Silence is a ping, and a look at the saved answer: its process may have died, and once
        # it is stale the stream ends (`_saved_final_event`) within half the limit.
        silence = min(chat_settings.PING_INTERVAL, chat_settings.STALE_STREAM_AFTER.total_seconds() / 2)
        block = int(silence * 1000)
        wait = None  # until caught up, reads take what is there without blocking
        while True:
            result = await self.client().xread({key: last}, count=500, block=wait)
            if not result:
                final = await _saved_final_event(message_id)
                if final is not None:
                    yield sse_frame(seen + 1, final)
                    return
                if wait is not None:
                    yield PING
                wait = block
                continue
            chunks = []
            finished = False
            for entry_id, fields in result[0][1]:
                last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                newest = int(last.split("-", 1)[1])
                first = int(fields.get(b"s", newest))
                for seq, data in enumerate(fields[b"d"].split(b"\n"), start=first):
                    if seq > seen:
                        chunks.append(b"id: %d\ndata: %s\n\n" % (seq, data))
                seen = max(seen, newest)
                finished = finished or fields.get(b"t") == b"1"
            yield b"".join(chunks)
            if finished:
                return

    async def stop_publish(self, message_id: int) -> None:
        await self.client().publish(self.stop_channel, str(message_id))

    def stop_listen(self, on_stop: Callable[[int], None]) -> None:
        """Start (once per process) a listener that calls `on_stop(message_id)` for stop signals."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(on_stop))

    async def _listen(self, on_stop: Callable[[int], None]) -> None:
        while True:
            _stop_if_cancelled()
            try:
                pubsub = self.client().pubsub()
                await pubsub.subscribe(self.stop_channel)
                while True:
                    # A bounded wait, not `listen()`: a cancellation redis-py swallows mid-read is
                    # noticed within a second instead of never.
                    _stop_if_cancelled()
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        on_stop(int(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                _stop_if_cancelled()
                logger.warning("Stop-signal listener lost Redis; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ChannelHub] = weakref.WeakKeyDictionary()


def channel_hub() -> ChannelHub:
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        url = chat_settings.REDIS_URL
        hub = _hubs[loop] = ChannelHub(RedisStreams(url, chat_settings.REDIS_KEY_PREFIX) if url else None)
    return hub
