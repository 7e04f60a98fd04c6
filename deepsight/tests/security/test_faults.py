"""Faults survived, nothing lost: every way an upstream, a browser or the database can fail mid-turn.

For each fault the tests say what the user sees (the stream's last event), what is stored (the
answer's status and text) and that the next message in the same session works, over real sockets
to uvicorn with the fake OpenAI-compatible server and the fake RAGFlow. Where an existing test
already pins one aspect (chat_sessions/tests/test_streaming_live.py), this table adds the others.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
from django.db import OperationalError

from chat_sessions.agents.base import AgentBackend, ReasoningEvent, TokenEvent
from chat_sessions.agents.registry import agent_backends_reset
from chat_sessions.models import MessageStatus, SessionChatMessage
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory
from deepsight.testing.servers import free_socket
from deepsight.tests.security.live import assert_turns_whole, nothing_streams, send, session_url, wait_for
from notebooks import services as notebook_services
from notebooks.ragflow.agent import BROKE_OFF, TOO_SLOW, UNREACHABLE

pytestmark = pytest.mark.django_db(transaction=True)

TOKENS = ["one ", "two ", "three ", "four "]


@pytest.fixture
def session(user):
    return ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)


def answer(events) -> SessionChatMessage:
    return SessionChatMessage.objects.get(pk=events[0].data["assistant_message_id"])


def assert_next_message_works(server, session, token, fake, *, tokens=("Fine", " now.")):
    if fake is not None:
        fake.script(tokens=list(tokens))
    events = list(send(server.url, session, token, "And now?"))
    assert events[-1].type == "done", events[-1].data
    assert events[-1].data["message"]["status"] == "complete"
    assert_turns_whole(session)
    return events


def closed_port_url() -> str:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1"


# The OpenAI-compatible upstream
# ------------------------------------------------------------------------------

OPENAI_FAULTS = {
    # fault: (script, what the user sees: code, the text kept)
    "refuses-with-http-500": ({"status": 500}, "upstream_error", ""),
    "refuses-our-key": ({"status": 401}, "upstream_auth", ""),
    "times-out-before-the-first-token": ({"first_token_delay": 3}, "upstream_unavailable", ""),
    # Takes the request and never answers it: its headers never come.
    "never-answers-the-request": ({"headers_delay": 3}, "upstream_unavailable", ""),
    # Open, silent, and never a `[DONE]`: the read timeout ends it.
    "goes-silent-and-never-sends-the-terminator": ({"delay": 3}, "upstream_unavailable", "one "),
    "dies-after-two-tokens": ({"fail_after": 2}, "upstream_unavailable", "one two "),
    "sends-a-code-500-frame": ({"error_after": 2}, "upstream_error", "one two "),
    "sends-malformed-json": ({"malformed_after": 2}, "upstream_protocol", "one two "),
}


@pytest.mark.parametrize("fault", list(OPENAI_FAULTS))
def test_an_openai_upstream_fault_is_an_error_event_the_text_so_far_is_kept_and_the_chat_goes_on(
    live_server_asgi, openai_agent, settings, session, user_token, fault
):
    script, code, kept = OPENAI_FAULTS[fault]
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "HTTP_READ_TIMEOUT": 0.5}
    openai_agent.script(tokens=TOKENS, **script)

    events = list(send(live_server_asgi.url, session, user_token))

    assert events[-1].type == "error"
    assert events[-1].data["code"] == code
    shown = json.dumps([event.data for event in events])
    assert "upstream says no" not in shown  # the upstream's own error text stays in the logs
    assert "model overloaded" not in shown
    assert "sk-test-secret" not in shown
    saved = answer(events)
    assert (saved.status, saved.message) == (MessageStatus.ERROR, kept)
    assert saved.metadata["error"]["code"] == code
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


def test_an_unreachable_openai_upstream_is_an_error_and_the_chat_goes_on(
    live_server_asgi, openai_agent, settings, session, user_token
):
    working = settings.CHAT_SESSIONS["OPENAI"]
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "OPENAI": {**working, "BASE_URL": closed_port_url()}}

    events = list(send(live_server_asgi.url, session, user_token))

    assert [event.type for event in events] == ["start", "error"]
    assert events[-1].data["code"] == "upstream_unavailable"
    assert answer(events).status == MessageStatus.ERROR
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "OPENAI": working}
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


def test_a_stream_closed_without_done_after_its_final_frame_is_a_whole_answer(
    live_server_asgi, openai_agent, session, user_token
):
    openai_agent.script(tokens=TOKENS, no_terminator=True)

    events = list(send(live_server_asgi.url, session, user_token))

    # finish_reason "stop" and the usage frame came; only `data: [DONE]` is missing.
    assert events[-1].type == "done"
    assert (answer(events).status, answer(events).message) == (MessageStatus.COMPLETE, "".join(TOKENS))
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


def test_an_upstream_that_streams_nul_characters_still_has_its_answer_saved(
    live_server_asgi, openai_agent, session, user_token
):
    # PostgreSQL refuses NUL in text and \u0000 in jsonb; a model (or a document it quotes) can emit it.
    openai_agent.script(tokens=["<think>mull\x00ing</think>", "Null", "\x00", " byte."], delay=0.3)

    events = list(send(live_server_asgi.url, session, user_token))

    assert events[-1].type == "done", events[-1].data
    saved = answer(events)
    assert saved.status == MessageStatus.COMPLETE
    assert saved.message == "Null\ufffd byte."
    assert saved.metadata["reasoning"] == "mull\ufffding"
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


def test_an_upstream_that_streams_half_of_a_utf16_pair_still_has_its_answer_saved(
    live_server_asgi, openai_agent, session, user_token
):
    # JSON can spell half a surrogate pair ("\\ud83c"), say a model's emoji cut across two frames.
    # Python reads it, but no UTF-8 byte can carry it: not the stream, PostgreSQL, nor SQLite.
    openai_agent.script(tokens=["<think>a \ud83c</think>", "Leaf ", "\ud83c", "\udf3f", " green."], delay=0.3)

    events = list(send(live_server_asgi.url, session, user_token))

    assert events[-1].type == "done", events[-1].data
    assert [event.data["text"] for event in events if event.type == "token"] == ["Leaf ", "\ufffd", "\ufffd", " green."]
    saved = answer(events)
    assert saved.status == MessageStatus.COMPLETE
    assert saved.message == "Leaf \ufffd\ufffd green."
    assert saved.metadata["reasoning"] == "a \ufffd"
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


class HalfPairAgent(AgentBackend):
    """A host project's backend passing on text as a Python library decoded it: halves and all."""

    name = "half-pairs"

    async def stream_reply(self, *, turn):
        yield ReasoningEvent(text="a \ud83c")
        for text in ("Leaf ", "\ud83c", "\udf3f", " green."):
            await asyncio.sleep(0.05)
            yield TokenEvent(text=text)


def test_an_agent_backend_that_yields_half_of_a_utf16_pair_ends_its_stream_and_saves_the_answer(
    live_server_asgi, settings, session, user_token
):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "AGENT_BACKEND": f"{__name__}.HalfPairAgent"}

    events = list(send(live_server_asgi.url, session, user_token))

    # Before, encoding the event raised inside the generation: no `done`, and a stream left open.
    assert events[-1].type == "done", events[-1].data
    assert [event.data["text"] for event in events if event.type == "token"] == ["Leaf ", "\ufffd", "\ufffd", " green."]
    saved = answer(events)
    assert saved.status == MessageStatus.COMPLETE
    assert saved.message == "Leaf \U0001f33f green."  # the two halves, side by side in the text, are one leaf
    assert saved.metadata["reasoning"] == "a \ufffd"
    assert events[-1].data["message"]["message"] == saved.message
    assert_next_message_works(live_server_asgi, session, user_token, None)


def test_a_generation_that_crashes_past_its_own_error_handling_still_ends_its_stream(
    live_server_asgi, openai_agent, session, user_token, monkeypatch
):
    from chat_sessions.streaming import generation

    async def broken_finish(*args, **kwargs):
        raise RuntimeError("a bug in saving the answer")

    monkeypatch.setattr(generation, "_finish", broken_finish)
    openai_agent.script(tokens=TOKENS)

    # Read in a thread: a stream that never ends sends pings forever, and would hang the test.
    read: list[list] = []
    reader = threading.Thread(target=lambda: read.append(list(send(live_server_asgi.url, session, user_token))))
    reader.daemon = True
    reader.start()
    reader.join(timeout=20)

    assert read, "the stream never ended"
    events = read[0]
    assert (events[-1].type, events[-1].data["code"]) == ("error", "internal_error")
    # The answer does not stay `streaming` (that would refuse the session's next message).
    assert wait_for(lambda: answer(events).status == MessageStatus.INTERRUPTED)
    monkeypatch.undo()
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


# The browser going away
# ------------------------------------------------------------------------------


STAGES = {"before-any-event": 0, "after-start": 1, "mid-answer": 4, "after-the-last-token": 11}


@pytest.mark.parametrize("events_read", list(STAGES.values()), ids=list(STAGES))
def test_a_browser_that_leaves_at_any_stage_still_gets_the_whole_answer_stored(
    live_server_asgi, openai_agent, session, user_token, events_read
):
    tokens = [f"t{i} " for i in range(10)]
    openai_agent.script(tokens=tokens, delay=0.03)

    stream = send(live_server_asgi.url, session, user_token)
    seen = []
    for event in stream:
        if len(seen) == events_read:
            break
        seen.append(event)
    stream.close()

    assert wait_for(lambda: SessionChatMessage.objects.filter(session=session).count() == 2)
    assert wait_for(lambda: nothing_streams(session))
    saved = SessionChatMessage.objects.get(session=session, message_order=2)
    assert (saved.status, saved.message) == (MessageStatus.COMPLETE, "".join(tokens))
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


def test_a_browser_that_leaves_while_its_turn_is_being_stored_still_gets_the_answer(
    live_server_asgi, openai_agent, session, user_token, monkeypatch
):
    from chat_sessions.agents.openai import OpenAICompatibleAgent

    prepared = threading.Event()

    def slow_prepare(self, *, session, question):
        prepared.set()
        time.sleep(0.5)  # the browser is gone by the time the turn is ready
        return {}

    monkeypatch.setattr(OpenAICompatibleAgent, "prepare_turn", slow_prepare)
    openai_agent.script(tokens=["Still", " answered."])
    body = json.dumps({"message": "Anyone there?"}).encode()
    head = (
        f"POST {session_url('', session)}messages/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Token {user_token}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    with socket.create_connection(("127.0.0.1", live_server_asgi.port), timeout=10) as sock:
        sock.sendall(head + body)
        assert prepared.wait(10)
    # closed before any byte of the answer came back

    assert wait_for(lambda: SessionChatMessage.objects.filter(session=session, message_order=2).exists())
    assert wait_for(lambda: nothing_streams(session))
    saved = SessionChatMessage.objects.get(session=session, message_order=2)
    assert (saved.status, saved.message) == (MessageStatus.COMPLETE, "Still answered.")
    monkeypatch.undo()
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


@pytest.mark.redis
def test_an_answer_resumed_in_another_web_process_survives_a_long_silence(
    live_server_asgi, openai_agent, session, user_token
):
    from django.conf import settings

    from deepsight.testing.sse import sse_request
    from deepsight.tests.security.live import ServerProcess, auth

    if not settings.CHAT_SESSIONS.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL: only Redis carries a stream to another process (CI runs it there)")
    openai_agent.script(tokens=["Thinking", " done."], delay=7)  # longer than redis-py's 5 s socket timeout
    other = ServerProcess(openai_url=openai_agent.base_url).start()
    try:
        stream = iter(send(live_server_asgi.url, session, user_token))
        start, first = next(stream), next(stream)
        answer_id = start.data["assistant_message_id"]
        resumed = list(
            sse_request(
                "GET",
                f"{session_url(other.url, session)}messages/{answer_id}/stream/",
                headers={**auth(user_token), "Last-Event-ID": str(first.id)},
            )
        )
    finally:
        other.stop()

    assert resumed[-1].type == "done"
    assert first.data["text"] + "".join(e.data["text"] for e in resumed if e.type == "token") == "Thinking done."


# The process shutting down
# ------------------------------------------------------------------------------


class _SwallowingRedis:
    """Stands in for redis-py where it swallowed a cancellation mid-command (seen at loop shutdown)."""

    async def _swallow(self):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return None

    def pubsub(self):
        return self

    async def subscribe(self, channel):
        return None

    async def get_message(self, **kwargs):
        return await self._swallow()

    async def listen(self):
        while True:
            yield await self._swallow()

    def pipeline(self, transaction=False):
        return self

    def xadd(self, *args, **kwargs):
        return self

    def expire(self, *args, **kwargs):
        return self

    async def execute(self, raise_on_error=True):
        return await self._swallow()


def test_the_redis_loops_stop_when_cancelled_even_if_redis_swallows_the_cancellation(monkeypatch):
    """Otherwise `asyncio.run` never finishes: a server's shutdown (or a test) hangs for good."""
    from chat_sessions.streaming.channels import RedisStreams

    monkeypatch.setattr(RedisStreams, "client", lambda self: _SwallowingRedis())

    async def scenario():
        streams = RedisStreams("redis://unused", "test")
        streams.stop_listen(lambda message_id: None)
        streams.mirror(1, 1, "{}", False)
        await asyncio.sleep(0.1)  # both loops are inside a Redis call now
        tasks = [streams._listener, streams._writer]
        for task in tasks:
            task.cancel()
        done, pending = await asyncio.wait(tasks, timeout=5)
        return len(done), len(pending)

    assert asyncio.run(scenario()) == (2, 0)


# The database connection dropping
# ------------------------------------------------------------------------------


@pytest.fixture
def flaky_database(monkeypatch):
    """The first two batch writes of streaming text and the first final write fail as on a dropped connection."""
    from chat_sessions import services

    failures = {"messages_flush": 2, "message_finish": 1}
    real = {name: getattr(services, name) for name in failures}
    lock = threading.Lock()

    def failing(name):
        def call(**kwargs):
            with lock:
                if failures[name] > 0:
                    failures[name] -= 1
                    raise OperationalError("server closed the connection unexpectedly")
            return real[name](**kwargs)

        call.__name__ = name
        return call

    for name in failures:
        monkeypatch.setattr(services, name, failing(name))
    return failures


def test_a_dropped_database_connection_during_flushes_and_the_final_write_loses_nothing(
    live_server_asgi, openai_agent, session, user_token, flaky_database
):
    tokens = [f"w{i} " for i in range(20)]
    openai_agent.script(tokens=tokens, delay=0.05)

    events = list(send(live_server_asgi.url, session, user_token))

    assert flaky_database == {"messages_flush": 0, "message_finish": 0}  # every fault was hit
    assert events[-1].type == "done"
    saved = answer(events)
    assert (saved.status, saved.message) == (MessageStatus.COMPLETE, "".join(tokens))
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


@pytest.mark.postgres
def test_postgres_killing_every_other_connection_mid_answer_loses_nothing(
    live_server_asgi, openai_agent, session, user_token
):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs it there")
    tokens = [f"w{i} " for i in range(30)]
    openai_agent.script(tokens=tokens, delay=0.05)

    stream = iter(send(live_server_asgi.url, session, user_token))
    first = [next(stream) for _ in range(8)]
    assert wait_for(lambda: answer(first).message != "")  # a flush went through the persistence thread
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        killed = cursor.fetchone()[0]
    rest = list(stream)

    assert killed >= 1
    assert rest[-1].type == "done"
    saved = answer(first)
    assert (saved.status, saved.message) == (MessageStatus.COMPLETE, "".join(tokens))
    assert_next_message_works(live_server_asgi, session, user_token, openai_agent)


# The RAGFlow upstream
# ------------------------------------------------------------------------------


@pytest.fixture
def ragflow_chat(ragflow, user):
    notebook = notebook_services.notebook_create(owner=user, name="Botany")
    notebook_services.source_create_text(
        notebook=notebook, title="Notes", content="Photosynthesis converts light energy into chemical energy."
    )
    return ChatSessionFactory(container=notebook, created_by=user)


RAGFLOW_FAULTS = {
    "refuses-with-an-html-502": ("fail", {"status": 502, "code": None}, UNREACHABLE, ""),
    "times-out-before-the-first-token": ("script", {"first_token_delay": 3}, TOO_SLOW, ""),
    "never-answers-the-request": ("script", {"headers_delay": 3}, TOO_SLOW, ""),
    "dies-after-two-tokens": ("script", {"drop_after": 2}, BROKE_OFF, "one two "),
    "sends-a-code-500-frame": ("script", {"error_after": 2}, BROKE_OFF, "one two "),
    # Open, silent, and never a `message_end` or `[DONE]`: the read timeout ends it.
    "goes-silent-and-never-sends-the-terminator": ("script", {"delay": 3}, TOO_SLOW, "one "),
}


@pytest.mark.parametrize("fault", list(RAGFLOW_FAULTS))
def test_a_ragflow_fault_is_an_error_event_the_text_so_far_is_kept_and_the_chat_goes_on(
    live_server_asgi, ragflow, ragflow_chat, settings, user_token, fault
):
    how, options, message, kept = RAGFLOW_FAULTS[fault]
    settings.RAGFLOW_STREAM_READ_TIMEOUT = 0.5
    settings.RAGFLOW_RETRY_BACKOFF = 0.01
    agent_backends_reset()
    if how == "fail":
        ragflow.fail("POST", r"/api/v1/agents/[^/]+/completions", times=1, **options)
    else:
        ragflow.script(tokens=TOKENS, **options)

    events = list(send(live_server_asgi.url, ragflow_chat, user_token))

    assert events[-1].type == "error"
    assert events[-1].data["message"] == message
    assert "Bad Gateway" not in json.dumps([event.data for event in events])
    saved = answer(events)
    assert (saved.status, saved.message) == (MessageStatus.ERROR, kept)
    assert_next_message_works(live_server_asgi, ragflow_chat, user_token, ragflow, tokens=("Light", " to sugar."))
