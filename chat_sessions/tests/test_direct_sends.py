"""Live events sent by the task that publishes them (`streaming.direct`); a send that waits or fails."""

from __future__ import annotations

import asyncio

import pytest

from chat_sessions.streaming.channels import PING, ChannelHub
from chat_sessions.streaming.direct import DirectSend

MESSAGE = 1


class RecordingSend:
    """An ASGI `send` that takes each body at once, or waits while `hold` is set (flow control)."""

    def __init__(self, *, hold_from: int | None = None, fail_from: int | None = None) -> None:
        self.bodies: list[bytes] = []
        self.started = 0
        self.hold_from = hold_from
        self.fail_from = fail_from
        self.released = asyncio.Event()

    async def __call__(self, message: dict) -> None:
        assert message["type"] == "http.response.body"
        assert message["more_body"] is True
        self.started += 1
        if self.fail_from is not None and len(self.bodies) >= self.fail_from:
            raise ConnectionResetError("the client went away")
        if self.hold_from is not None and len(self.bodies) >= self.hold_from:
            await self.released.wait()
        self.bodies.append(message["body"])


async def follow(hub: ChannelHub, send: RecordingSend, *, after: int = 0) -> tuple[asyncio.Task, list[bytes]]:
    """A response served as Django serves it: each part of its body sent through the same `send`
    it was given to send through directly. Returns the task and the parts its body yielded."""
    direct = DirectSend()
    direct.send = send
    yielded: list[bytes] = []

    async def iterate() -> None:
        async for chunk in hub.subscribe(MESSAGE, after, direct):
            yielded.append(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    task = asyncio.create_task(iterate())
    for _ in range(3):  # let it catch up on the log and start watching
        await asyncio.sleep(0)
    return task, yielded


@pytest.fixture
def hub() -> ChannelHub:
    """A hub with one answer's log open, as a generation opens it."""
    hub = ChannelHub()
    hub.open(MESSAGE)
    return hub


def frames(hub: ChannelHub) -> list[bytes]:
    return list(hub.local(MESSAGE).frames)


@pytest.mark.asyncio
async def test_each_live_event_is_sent_as_it_is_published_and_the_body_ends_with_the_answer(hub):
    hub.publish(MESSAGE, {"type": "start"})
    send = RecordingSend()
    task, yielded = await follow(hub, send)

    for token in ("Photo", "synthesis"):
        hub.publish_text(MESSAGE, "token", token)
        # Sent within the publish call: no task had to wake for it.
        assert send.bodies[-1] == frames(hub)[-1]
    hub.finish(MESSAGE, {"type": "done"})
    await asyncio.wait_for(task, 1)

    assert yielded == frames(hub)[:1]  # the event from before it watched came through the body
    assert send.bodies == frames(hub)
    assert b'"type":"done"' in send.bodies[-1]


@pytest.mark.asyncio
async def test_a_send_that_has_to_wait_is_finished_by_the_response_and_nothing_is_lost_or_repeated(hub):
    send = RecordingSend(hold_from=2)
    task, yielded = await follow(hub, send)

    for index in range(6):
        hub.publish_text(MESSAGE, "token", f"t{index}")  # the third one waits for the client
    assert len(send.bodies) == 2
    send.released.set()
    for index in range(6, 9):
        hub.publish_text(MESSAGE, "token", f"t{index}")
        await asyncio.sleep(0)
    hub.finish(MESSAGE, {"type": "done"})
    await asyncio.wait_for(task, 1)

    # The held send went out first, then the response relayed what came meanwhile, in order.
    assert b"".join(send.bodies) == b"".join(frames(hub))
    assert b"".join(yielded).startswith(b"".join(frames(hub)[3:6]))


@pytest.mark.asyncio
async def test_after_a_wait_the_response_sends_directly_again(hub):
    send = RecordingSend(hold_from=1)
    task, _ = await follow(hub, send)
    hub.publish_text(MESSAGE, "token", "a")
    hub.publish_text(MESSAGE, "token", "b")  # waits
    send.hold_from = None
    send.released.set()
    for _ in range(5):
        await asyncio.sleep(0)

    hub.publish_text(MESSAGE, "token", "c")

    assert send.bodies[-1] == frames(hub)[-1]
    hub.finish(MESSAGE, {"type": "done"})
    await asyncio.wait_for(task, 1)
    assert b"".join(send.bodies) == b"".join(frames(hub))


@pytest.mark.asyncio
async def test_a_failing_send_ends_that_response_with_its_error_and_the_answer_goes_on(hub):
    broken = RecordingSend(fail_from=1)
    healthy = RecordingSend()
    broken_task, _ = await follow(hub, broken)
    healthy_task, _ = await follow(hub, healthy)

    for token in ("a", "b", "c"):
        hub.publish_text(MESSAGE, "token", token)
    hub.finish(MESSAGE, {"type": "done"})

    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(broken_task, 1)
    await asyncio.wait_for(healthy_task, 1)
    assert healthy.bodies == frames(hub)
    assert broken.bodies == frames(hub)[:1]


@pytest.mark.asyncio
async def test_a_closed_response_is_sent_nothing_more(hub):
    send = RecordingSend()
    task, _ = await follow(hub, send)
    hub.publish_text(MESSAGE, "token", "a")

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    hub.publish_text(MESSAGE, "token", "b")

    assert send.bodies == frames(hub)[:1]


@pytest.mark.asyncio
@pytest.mark.parametrize("picked_up", [True, False], ids=["while-the-response-finishes-it", "before-it-does"])
async def test_a_closed_response_drops_its_waiting_send(hub, picked_up):
    send = RecordingSend(hold_from=0)
    task, _ = await follow(hub, send)
    hub.publish_text(MESSAGE, "token", "a")  # waits for a client that never reads again
    if picked_up:
        await asyncio.sleep(0)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    send.released.set()
    await asyncio.sleep(0)

    assert send.bodies == []


@pytest.mark.asyncio
async def test_a_silent_answer_is_pinged_through_the_direct_send(hub, settings):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "PING_INTERVAL": 0.05}
    send = RecordingSend()
    task, yielded = await follow(hub, send)

    await asyncio.sleep(0.18)

    assert send.bodies[:2] == [PING, PING]
    hub.finish(MESSAGE, {"type": "done"})
    await asyncio.wait_for(task, 1)
    assert yielded == []


@pytest.mark.asyncio
async def test_a_busy_answer_is_not_pinged(hub, settings):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "PING_INTERVAL": 0.1}
    send = RecordingSend()
    task, _ = await follow(hub, send)

    for index in range(12):
        hub.publish_text(MESSAGE, "token", f"t{index}")
        await asyncio.sleep(0.025)
    hub.finish(MESSAGE, {"type": "done"})
    await asyncio.wait_for(task, 1)

    assert PING not in send.bodies
    assert send.bodies == frames(hub)


@pytest.mark.asyncio
async def test_a_ping_due_while_a_send_waits_starts_no_second_send(hub):
    send = RecordingSend(hold_from=0)
    log = hub.local(MESSAGE)
    watcher = log.watch_directly(send)
    hub.publish_text(MESSAGE, "token", "a")  # waits

    log.ping(watcher)  # the response has not taken the waiting send over yet

    assert send.started == 1
    send.released.set()
    await (await watcher.ended)
    assert send.bodies == frames(hub)
