"""Sending a message over a real socket to deepsight under uvicorn, with a fake upstream model."""

from __future__ import annotations

import time

import pytest

from chat_sessions.models import MessageStatus, SessionChatMessage
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory
from deepsight.testing.sse import sse_request

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def session(user):
    return ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)


def messages_url(server, session):
    return f"{server.url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/messages/"


def auth(token):
    return {"Authorization": f"Token {token}"}


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_answer_streams_token_by_token_and_is_saved(live_server_asgi, openai_agent, session, user_token):
    openai_agent.script(tokens=["Light", " becomes", " sugar", "."], delay=0.05)

    stream = sse_request(
        "POST", messages_url(live_server_asgi, session), json_body={"message": "What is it?"}, headers=auth(user_token)
    )
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
    saved = SessionChatMessage.objects.get(pk=done["id"])
    assert saved.message == "Light becomes sugar."
    assert saved.status == MessageStatus.COMPLETE
    assert saved.metadata["usage"]["completion_tokens"] == 4
    session.refresh_from_db()
    assert session.message_count == 2


def test_closed_tab_does_not_stop_the_answer(live_server_asgi, openai_agent, session, user_token):
    openai_agent.script(tokens=[f"t{i} " for i in range(30)], delay=0.03)

    stream = sse_request(
        "POST", messages_url(live_server_asgi, session), json_body={"message": "Long one"}, headers=auth(user_token)
    )
    received = []
    for event in stream:
        received.append(event)
        if len(received) == 3:
            break
    stream.close()

    answer_id = received[0].data["assistant_message_id"]
    assert wait_for(lambda: SessionChatMessage.objects.get(pk=answer_id).status == MessageStatus.COMPLETE)
    assert SessionChatMessage.objects.get(pk=answer_id).message == "".join(f"t{i} " for i in range(30))
