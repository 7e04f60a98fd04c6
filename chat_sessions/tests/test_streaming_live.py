"""Sending a message over a real socket to deepsight under uvicorn, with a fake upstream model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
from asgiref.sync import markcoroutinefunction
from django.conf import settings as django_settings
from django.db import connection

from chat_sessions.models import MessageStatus, SessionChatMessage
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory, SourceFactory
from deepsight.testing.servers import free_socket
from deepsight.testing.sse import sse_request

pytestmark = [pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(user):
    return ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)


@pytest.fixture(params=["deepsight", "django"])
def either_asgi_server(request, transactional_db):
    """deepsight's application (its handler sends live events directly, requests borrow pooled
    threads), and Django's own handler alone, as a host project of the reusable app may serve it."""
    from django.core.handlers.asgi import ASGIHandler

    from deepsight.testing.servers import asgi_served

    app = "deepsight.asgi:application" if request.param == "deepsight" else ASGIHandler()
    with asgi_served(app) as server:
        yield server


def session_url(server, session):
    return f"{server.url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/"


def messages_url(server, session):
    return session_url(server, session) + "messages/"


def auth(token):
    return {"Authorization": f"Token {token}"}


def send(server, session, token, text="Question?", **body):
    return sse_request("POST", messages_url(server, session), json_body={"message": text, **body}, headers=auth(token))


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def answer(message_id) -> SessionChatMessage:
    return SessionChatMessage.objects.get(pk=message_id)


def test_answer_streams_token_by_token_and_is_saved(either_asgi_server, openai_agent, session, user_token):
    openai_agent.script(tokens=["Light", " becomes", " sugar", "."], delay=0.05)

    stream = send(either_asgi_server, session, user_token, "What is it?")
    events = list(stream)

    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert stream.headers["Cache-Control"] == "no-cache"
    assert stream.headers["X-Accel-Buffering"] == "no"
    assert [e.type for e in events] == ["start", "token", "token", "token", "token", "done"]
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6]
    assert "".join(e.data["text"] for e in events if e.type == "token") == "Light becomes sugar."
    # Tokens arrive as they are produced, not in one burst at the end.
    token_times = [e.received_at for e in events if e.type == "token"]
    assert token_times[-1] - token_times[0] > 0.1
    done = events[-1].data["message"]
    assert done["status"] == "complete"
    saved = answer(done["id"])
    assert saved.message == "Light becomes sugar."
    assert saved.status == MessageStatus.COMPLETE
    assert saved.metadata["usage"]["completion_tokens"] == 4
    session.refresh_from_db()
    assert session.message_count == 2


def test_history_is_sent_to_the_model_with_the_next_question(live_server_asgi, openai_agent, session, user_token):
    openai_agent.script(tokens=["First answer."])
    list(send(live_server_asgi, session, user_token, "First question"))
    openai_agent.script(tokens=["Second answer."])

    list(send(live_server_asgi, session, user_token, "Second question"))

    sent = openai_agent.requests[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent if m["role"] != "system"] == [
        ("user", "First question"),
        ("assistant", "First answer."),
        ("user", "Second question"),
    ]
    assert openai_agent.headers[-1]["Authorization"] == "Bearer sk-test-secret"


def test_reasoning_is_streamed_and_kept_apart_from_the_answer(live_server_asgi, openai_agent, session, user_token):
    openai_agent.script(tokens=["<think>Let me", " think.</think>", "The", " answer."])

    events = list(send(live_server_asgi, session, user_token))

    assert "".join(e.data["text"] for e in events if e.type == "reasoning") == "Let me think."
    assert "".join(e.data["text"] for e in events if e.type == "token") == "The answer."
    saved = answer(events[-1].data["message"]["id"])
    assert saved.message == "The answer."
    assert saved.metadata["reasoning"] == "Let me think."


def test_the_growing_answer_is_saved_while_it_streams(live_server_asgi, openai_agent, session, user_token):
    tokens = [f"w{i} " for i in range(40)]
    openai_agent.script(tokens=tokens, delay=0.05)

    stream = send(live_server_asgi, session, user_token)
    events = iter(stream)
    answer_id = next(events).data["assistant_message_id"]
    time.sleep(1.2)
    partial = answer(answer_id)
    list(events)

    assert partial.status == MessageStatus.STREAMING
    assert partial.message
    assert "".join(tokens).startswith(partial.message)
    assert len(partial.message) < len("".join(tokens))


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ({"error_after": 3}, "upstream_error"),
        ({"fail_after": 3}, "upstream_unavailable"),
        ({"malformed_after": 3}, "upstream_protocol"),
        ({"cut_after": 3}, "upstream_incomplete"),
    ],
)
def test_an_upstream_failure_mid_answer_keeps_the_partial_text(
    live_server_asgi, openai_agent, session, user_token, script, code
):
    openai_agent.script(tokens=["one ", "two ", "three ", "four "], **script)

    events = list(send(live_server_asgi, session, user_token))

    assert events[-1].type == "error"
    assert events[-1].data["code"] == code
    assert events[-1].data["message"]
    saved = answer(events[0].data["assistant_message_id"])
    assert (saved.status, saved.message) == (MessageStatus.ERROR, "one two three ")
    assert saved.metadata["error"]["code"] == code


def test_an_upstream_that_refuses_gives_an_error_event_and_the_next_message_works(
    live_server_asgi, openai_agent, session, user_token
):
    openai_agent.script(status=500)
    failed = list(send(live_server_asgi, session, user_token))
    openai_agent.script(tokens=["Fine", " now."])

    recovered = list(send(live_server_asgi, session, user_token, "Again?"))

    assert failed[-1].type == "error"
    assert "500" in failed[-1].data["message"]
    assert "sk-test-secret" not in json.dumps(failed[-1].data)
    assert recovered[-1].type == "done"
    assert recovered[-1].data["message"]["message"] == "Fine now."
    assert list(SessionChatMessage.objects.filter(session=session).values_list("message_order", flat=True)) == [
        1,
        2,
        3,
        4,
    ]


def test_closed_tab_does_not_stop_the_answer(either_asgi_server, openai_agent, session, user_token):
    openai_agent.script(tokens=[f"t{i} " for i in range(30)], delay=0.03)

    stream = send(either_asgi_server, session, user_token, "Long one")
    received = []
    for event in stream:
        received.append(event)
        if len(received) == 3:
            break
    stream.close()

    answer_id = received[0].data["assistant_message_id"]
    assert wait_for(lambda: answer(answer_id).status == MessageStatus.COMPLETE)
    assert answer(answer_id).message == "".join(f"t{i} " for i in range(30))


class TapStreamMiddleware:
    """An async middleware that replaces streamed bodies with its own, keeping what passes through."""

    async_capable = True
    sync_capable = False
    seen: ClassVar[list[bytes]] = []

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = await self.get_response(request)
        if response.streaming:
            body = response.streaming_content

            async def tapped():
                async for chunk in body:
                    self.seen.append(chunk)
                    yield chunk

            response.streaming_content = tapped()
        return response


def test_a_middleware_that_replaces_the_stream_sees_every_event(openai_agent, session, user_token, settings):
    """Live events are sent directly only while the body is the stream's own: a middleware that
    replaced it gets each of them to pass on."""
    from chat_sessions.asgi import ASGIHandler
    from deepsight.testing.servers import asgi_served

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.TapStreamMiddleware"]
    TapStreamMiddleware.seen.clear()
    openai_agent.script(tokens=["Light", " becomes", " sugar", "."], delay=0.02)

    with asgi_served(ASGIHandler()) as server:
        events = list(send(server, session, user_token))

    assert [e.type for e in events] == ["start", "token", "token", "token", "token", "done"]
    tapped = b"".join(TapStreamMiddleware.seen).decode()
    assert [line for line in tapped.splitlines() if line.startswith("id:")] == [f"id: {n}" for n in range(1, 7)]


def test_a_client_that_reads_slowly_gets_every_token_in_order(live_server_asgi, openai_agent, session, user_token):
    """Tokens bigger than the socket buffers, to a client that stops reading for a while: the
    server's flow control makes the direct sends wait, and the response carries on from there."""
    from chat_sessions.streaming import direct

    waited = []
    original = direct.BlockedSend.__init__

    def counted(self, *args):
        waited.append(1)
        original(self, *args)

    tokens = [f"{index:03d}" + "x" * 200_000 for index in range(40)]  # 8 MB in all
    openai_agent.script(tokens=tokens, delay=0.0)
    stream = send(live_server_asgi, session, user_token)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(direct.BlockedSend, "__init__", counted)
        events = iter(stream)
        first = next(events)
        time.sleep(1.5)  # the client reads nothing meanwhile
        rest = list(events)

    assert first.type == "start"
    assert waited, "the server never had to wait for this client: the test did not exercise flow control"
    received = [e.data["text"] for e in rest if e.type == "token"]
    assert received == tokens
    assert rest[-1].type == "done"
    assert [e.id for e in [first, *rest]] == list(range(1, len(tokens) + 3))


def test_an_open_stream_holds_no_thread_of_its_own(either_asgi_server, openai_agent, user, user_token):
    """Each request gets a thread for its sync part; a stream gives it back once it starts."""
    openai_agent.script(tokens=["warm", "."], delay=0.01)
    list(
        send(either_asgi_server, ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user), user_token)
    )
    for _ in range(4):
        openai_agent.script(tokens=["slow", " answer"], delay=1.5)
    sessions = [ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user) for _ in range(4)]

    streams = [send(either_asgi_server, s, user_token) for s in sessions]
    started = [next(iter(stream)) for stream in streams]

    assert [event.type for event in started] == ["start"] * 4
    assert wait_for(lambda: not _threads_held_by_requests(), timeout=2), _threads_held_by_requests()
    assert all(any(e.type == "done" for e in stream) for stream in streams)


def test_sends_waiting_their_turn_hold_no_thread(either_asgi_server, openai_agent, user, user_token, monkeypatch):
    """Sends beyond CONCURRENT_SENDS queue on the event loop, not each on an idle thread of its own."""
    from chat_sessions.api import streams
    from chat_sessions.streaming import turns

    monkeypatch.setattr(streams, "CONCURRENT_SENDS", 1)  # this server's slots are made at its first send
    store_turn = turns.turn_start_for_user

    def slow_store(**kwargs):
        time.sleep(0.3)
        return store_turn(**kwargs)

    monkeypatch.setattr(turns, "turn_start_for_user", slow_store)
    sessions = [ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user) for _ in range(6)]
    for _ in sessions:
        openai_agent.script(tokens=["ok"], delay=0.01)
    finished = []
    senders = [
        threading.Thread(target=lambda s=s: finished.append(list(send(either_asgi_server, s, user_token))))
        for s in sessions
    ]

    for sender in senders:
        sender.start()
    time.sleep(0.6)  # every send has arrived; one is storing its turn, the others wait for the slot
    held = []
    for _ in range(8):
        held.append(_request_thread_count())
        time.sleep(0.05)
    for sender in senders:
        sender.join(timeout=30)

    assert max(held) <= 2, held
    assert len(finished) == 6
    assert all(events[-1].type == "done" for events in finished)


def _request_thread_count() -> int:
    """How many threads requests hold now (see `_threads_held_by_requests`)."""
    return _pool_lent() + len(_asgiref_request_threads())


def _threads_held_by_requests() -> list[str]:
    """Threads requests hold: pooled ones lent and not given back (deepsight/request_threads.py), and
    asgiref's own per-request executors (default names), which Django's handler alone starts."""
    lent = _pool_lent()
    return ([f"lent by the pool ({lent})"] if lent else []) + _asgiref_request_threads()


def _pool_lent() -> int:
    from deepsight.asgi import application

    return application.app.pool.lent


def _asgiref_request_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("ThreadPoolExecutor-")]


def test_a_second_send_while_one_streams_gets_409(live_server_asgi, openai_agent, session, user_token):
    openai_agent.script(tokens=[f"t{i} " for i in range(20)], delay=0.05)
    first = iter(send(live_server_asgi, session, user_token))
    next(first)

    second = send(live_server_asgi, session, user_token, "Me too")

    assert second.status == 409
    assert json.loads(second.body())["code"] == "generation_in_progress"
    assert list(first)[-1].type == "done"


def test_a_retried_send_replays_the_same_turn(live_server_asgi, openai_agent, session, user_token):
    openai_agent.script(tokens=["a", "b", "c"], delay=0.05)
    first = list(send(live_server_asgi, session, user_token, "Hi", client_message_id="turn-1"))

    retried = list(send(live_server_asgi, session, user_token, "Hi", client_message_id="turn-1"))

    assert retried[-1].type == "done"
    assert retried[-1].data["message"]["id"] == first[-1].data["message"]["id"]
    assert retried[-1].data["message"]["message"] == "abc"
    assert SessionChatMessage.objects.filter(session=session).count() == 2
    assert len(openai_agent.requests) == 1


def test_a_send_that_reuses_a_client_id_for_another_message_is_a_409(
    live_server_asgi, openai_agent, session, user_token
):
    openai_agent.script(tokens=["a", "b"])
    list(send(live_server_asgi, session, user_token, "Hi", client_message_id="turn-1"))

    reused = send(live_server_asgi, session, user_token, "Something else", client_message_id="turn-1")

    assert reused.status == 409
    assert json.loads(reused.body())["code"] == "client_message_id_reused"
    assert list(SessionChatMessage.objects.filter(session=session).values_list("message", flat=True)) == ["Hi", "ab"]


def test_stop_keeps_the_partial_answer_and_ends_the_stream(either_asgi_server, openai_agent, session, user_token):
    openai_agent.script(tokens=[f"t{i} " for i in range(100)], delay=0.05)
    stream = iter(send(either_asgi_server, session, user_token))
    start = next(stream)
    next(stream), next(stream)

    stopped = sse_request(
        "POST",
        session_url(either_asgi_server, session) + "stop/",
        headers={**auth(user_token), "Accept": "application/json"},
    )
    stop_body = json.loads(stopped.body())
    rest = list(stream)

    assert stopped.status == 200
    assert stop_body["message"]["status"] == "interrupted"
    assert rest[-1].type == "done"
    assert rest[-1].data["message"]["status"] == "interrupted"
    saved = answer(start.data["assistant_message_id"])
    assert saved.status == MessageStatus.INTERRUPTED
    assert saved.message.startswith("t0 t1 ")
    assert len(saved.message) < len("".join(f"t{i} " for i in range(100)))


def test_a_chat_deleted_for_good_mid_answer_ends_its_stream_saying_so(
    live_server_asgi, openai_agent, session, user_token
):
    """It ended with `done` and a `complete` answer that no longer existed anywhere."""
    openai_agent.script(tokens=[f"t{i} " for i in range(40)], delay=0.05)
    stream = iter(send(live_server_asgi, session, user_token))
    start = next(stream)
    next(stream)

    deleted = sse_request(
        "DELETE", session_url(live_server_asgi, session) + "?permanent=true", headers=auth(user_token)
    )
    rest = list(stream)

    assert deleted.status == 204
    assert rest[-1].type == "error"
    assert rest[-1].data["code"] == "session_deleted"
    assert not SessionChatMessage.objects.filter(pk=start.data["assistant_message_id"]).exists()


def test_stop_with_nothing_running_is_a_409(live_server_asgi, session, user_token):
    response = sse_request(
        "POST",
        session_url(live_server_asgi, session) + "stop/",
        headers={**auth(user_token), "Accept": "application/json"},
    )

    assert response.status == 409


def test_a_reconnect_resumes_after_the_last_event_seen(either_asgi_server, openai_agent, session, user_token):
    tokens = [f"t{i} " for i in range(20)]
    openai_agent.script(tokens=tokens, delay=0.03)
    stream = send(either_asgi_server, session, user_token)
    seen = []
    for event in stream:
        seen.append(event)
        if len(seen) == 4:
            break
    stream.close()
    answer_id = seen[0].data["assistant_message_id"]

    resumed = list(
        sse_request(
            "GET",
            messages_url(either_asgi_server, session) + f"{answer_id}/stream/",
            headers={**auth(user_token), "Last-Event-ID": str(seen[-1].id)},
        )
    )

    assert resumed[0].id == seen[-1].id + 1
    assert resumed[-1].type == "done"
    text = "".join(e.data["text"] for e in seen + resumed if e.type == "token")
    assert text == "".join(tokens)


def test_resuming_at_or_past_the_end_of_an_answer_still_ends_with_its_done(
    live_server_asgi, openai_agent, session, user_token
):
    # An empty 200 broke "a stream always ends with done or error", and made an EventSource reconnect.
    openai_agent.script(tokens=["all", " done"])
    finished = list(send(live_server_asgi, session, user_token))
    answer_id = finished[0].data["assistant_message_id"]
    url = messages_url(live_server_asgi, session) + f"{answer_id}/stream/"

    for last_seen in (finished[-1].id, finished[-1].id + 5):
        resumed = list(sse_request("GET", url, headers={**auth(user_token), "Last-Event-ID": str(last_seen)}))

        assert [(event.id, event.type) for event in resumed] == [(finished[-1].id, "done")]
        assert resumed[0].data == finished[-1].data


def test_resuming_a_finished_answer_returns_it(live_server_asgi, openai_agent, session, user_token):
    openai_agent.script(tokens=["all", " done"])
    finished = list(send(live_server_asgi, session, user_token))
    answer_id = finished[0].data["assistant_message_id"]

    resumed = list(
        sse_request("GET", messages_url(live_server_asgi, session) + f"{answer_id}/stream/", headers=auth(user_token))
    )

    assert resumed[-1].type == "done"
    assert "".join(e.data["text"] for e in resumed if e.type == "token") == "all done"


def test_resume_of_another_users_answer_is_not_found(live_server_asgi, openai_agent, session, user_token, other_user):
    openai_agent.script(tokens=["secret"])
    finished = list(send(live_server_asgi, session, user_token))
    answer_id = finished[0].data["assistant_message_id"]
    from rest_framework.authtoken.models import Token

    other_token = Token.objects.create(user=other_user).key
    response = sse_request(
        "GET", messages_url(live_server_asgi, session) + f"{answer_id}/stream/", headers=auth(other_token)
    )

    assert response.status == 404
    assert b"secret" not in response.body()


def test_json_clients_wait_for_the_whole_turn(live_server_asgi, openai_agent, session, user_token):
    openai_agent.script(tokens=["Whole", " answer."])

    response = sse_request(
        "POST",
        messages_url(live_server_asgi, session),
        json_body={"message": "Q"},
        headers={**auth(user_token), "Accept": "application/json"},
    )
    body = json.loads(response.body())

    assert response.status == 201
    assert body["user_message"]["message"] == "Q"
    assert (body["assistant_message"]["message"], body["assistant_message"]["status"]) == ("Whole answer.", "complete")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "x" * 32_001}, "message"),
        ({"message": "hi", "sender": "assistant"}, "sender"),
        ({"message": "hi", "message_order": 1}, "message_order"),
    ],
)
def test_bad_messages_get_a_400_naming_the_field(live_server_asgi, session, user_token, body, field):
    response = sse_request("POST", messages_url(live_server_asgi, session), json_body=body, headers=auth(user_token))

    assert response.status == 400
    assert field in json.loads(response.body())
    assert not SessionChatMessage.objects.exists()


def _second_process_server(redis_url: str, *, settings_module: str = "deepsight.settings_test", args=(), path=""):
    """deepsight in another OS process, on the same test database and Redis."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{connection.settings_dict['NAME']}"
    else:
        database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "PYTHONPATH": os.pathsep.join(filter(None, [path, os.environ.get("PYTHONPATH", "")])),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEEPSIGHT_TEST_RUN_ID": django_settings.RUN_ID,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "deepsight.asgi:application",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    def up():
        try:
            return urllib.request.urlopen(f"{url}/healthz/", timeout=1).status == 200
        except OSError:
            return False

    assert wait_for(up, timeout=20), "second deepsight process did not start"
    return process, url


@pytest.mark.redis
def test_another_web_process_resumes_and_stops_through_redis(live_server_asgi, openai_agent, session, user_token):
    redis_url = django_settings.CHAT_SESSIONS["REDIS_URL"]
    if not redis_url:
        pytest.skip("needs REDIS_URL (CI runs this with Redis)")
    process, other_url = _second_process_server(redis_url)
    try:
        openai_agent.script(tokens=[f"t{i} " for i in range(200)], delay=0.02)
        stream = send(live_server_asgi, session, user_token)
        answer_id = next(iter(stream)).data["assistant_message_id"]
        stream.close()
        other_session_url = f"{other_url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/"
        resume_url = f"{other_session_url}messages/{answer_id}/stream/"

        resumed = iter(sse_request("GET", resume_url, headers={**auth(user_token), "Last-Event-ID": "1"}))
        first_resumed = [next(resumed) for _ in range(5)]
        stopped = sse_request(
            "POST",
            f"{other_url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/stop/",
            headers={**auth(user_token), "Accept": "application/json"},
        )
        rest = list(resumed)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert [e.id for e in first_resumed] == [2, 3, 4, 5, 6]
    assert stopped.status == 200
    assert json.loads(stopped.body())["message"]["status"] == "interrupted"
    assert rest[-1].type == "done"
    assert rest[-1].data["message"]["status"] == "interrupted"
    assert answer(answer_id).status == MessageStatus.INTERRUPTED


def test_a_server_stopped_gracefully_saves_the_answer_it_cuts_short(live_server_asgi, session, user_token, tmp_path):
    # SIGTERM, as a deploy or Ctrl-C sends it: uvicorn closes the connections after its grace,
    # then exits. The answer was left `streaming` with its last second of text lost, and the
    # session refused messages for a minute.
    SourceFactory(notebook=session.container, title="Plants", content=" ".join(["Leaves are green."] * 400))
    (tmp_path / "slow_settings.py").write_text(
        "from deepsight.settings_test import *\nLOCAL_AGENT_TOKEN_DELAY = 0.02\n"
    )
    redis_url = django_settings.CHAT_SESSIONS["REDIS_URL"]  # with Redis, its last events are mirrored too
    process, url = _second_process_server(
        redis_url, settings_module="slow_settings", args=["--timeout-graceful-shutdown", "1"], path=str(tmp_path)
    )
    try:
        stream = iter(
            sse_request(
                "POST",
                f"{url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/messages/",
                json_body={"message": "Why are leaves green?"},
                headers=auth(user_token),
            )
        )
        received = [next(stream) for _ in range(30)]
        answer_id = received[0].data["assistant_message_id"]
        process.send_signal(signal.SIGTERM)
        received += list(stream)  # what the client got until the server let it go
        process.wait(timeout=30)  # uvicorn ends by raising the SIGTERM again, once it is done
    finally:
        if process.poll() is None:
            process.kill()

    saved = answer(answer_id)
    shown = "".join(event.data["text"] for event in received if event.type == "token")
    assert saved.status == MessageStatus.INTERRUPTED
    assert saved.message.startswith(shown)
    assert len(shown) > 100
    assert saved.metadata["model"] == "local"
    resumed = list(
        sse_request(
            "GET",
            session_url(live_server_asgi, session) + f"messages/{answer_id}/stream/",
            headers={**auth(user_token), "Last-Event-ID": str(received[-1].id)},
        )
    )
    assert resumed[-1].type == "done"
    assert (resumed[-1].data["message"]["status"], resumed[-1].data["message"]["message"]) == (
        "interrupted",
        saved.message,
    )


@pytest.fixture
def query_counter(monkeypatch):
    """Counts SQL statements from every thread (the request, the persistence threads)."""
    import threading

    from django.db.backends import utils

    counter = {"n": 0}
    lock = threading.Lock()
    original = utils.CursorWrapper.execute

    def counting_execute(self, *args, **kwargs):
        with lock:
            counter["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(utils.CursorWrapper, "execute", counting_execute)
    monkeypatch.setattr(utils.CursorDebugWrapper, "execute", counting_execute)
    return counter


def test_queries_per_turn_do_not_grow_with_the_number_of_tokens(
    live_server_asgi, openai_agent, session, user_token, query_counter
):
    def queries_for(tokens: int) -> int:
        openai_agent.script(tokens=[f"t{i} " for i in range(tokens)])
        before = query_counter["n"]
        events = list(send(live_server_asgi, session, user_token))
        assert events[-1].type == "done"
        time.sleep(0.3)  # let any trailing flush land in this measurement
        return query_counter["n"] - before

    short = queries_for(5)
    long = queries_for(500)

    print(f"queries per turn: 5 tokens {short}, 500 tokens {long}")
    assert long <= short + 6, (short, long)
    assert long < 50


def test_a_silent_upstream_gets_ping_comments_so_proxies_keep_the_stream(
    either_asgi_server, openai_agent, session, user_token, settings
):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "PING_INTERVAL": 0.2}
    openai_agent.script(tokens=["late"], first_token_delay=1.0)

    stream = send(either_asgi_server, session, user_token)
    events = list(stream)

    assert stream.pings >= 3
    assert events[-1].type == "done"


def test_an_archived_session_refuses_messages_until_unarchived(live_server_asgi, openai_agent, session, user_token):
    session.status = "archived"
    session.save()

    refused = send(live_server_asgi, session, user_token)
    refused_body = json.loads(refused.body())
    sse_request(
        "PATCH", session_url(live_server_asgi, session), json_body={"status": "active"}, headers=auth(user_token)
    ).body()
    accepted = list(send(live_server_asgi, session, user_token))

    assert refused.status == 409
    assert refused_body["code"] == "session_archived"
    assert accepted[-1].type == "done"


def test_an_answer_whose_server_omits_done_but_says_it_finished_is_complete(
    live_server_asgi, openai_agent, session, user_token
):
    openai_agent.script(tokens=["All", " here."], no_terminator=True)

    events = list(send(live_server_asgi, session, user_token))

    assert events[-1].type == "done"
    assert answer(events[-1].data["message"]["id"]).message == "All here."
