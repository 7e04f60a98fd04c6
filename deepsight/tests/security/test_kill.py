"""The web process killed mid-answer (kill -9): after a restart the sweep marks the answer interrupted,
the text it had saved is still there, and the next message in the session works.

A real OS process: SIGKILL leaves no `finally` to run, so the answer is left `streaming` in the
database exactly as a crash, the OOM killer or a lost machine would leave it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from chat_sessions.conf import chat_settings
from chat_sessions.models import MessageStatus, SessionChatMessage
from chat_sessions.services import messages_interrupt_stale
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory
from deepsight.testing.sse import sse_request
from deepsight.tests.security.live import ServerProcess, assert_turns_whole, auth, send, session_url, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOKENS = [f"t{i} " for i in range(300)]


@dataclass
class Killed:
    server: ServerProcess
    session: object
    answer_id: int
    received: str


@pytest.fixture
def killed_mid_answer(fake_openai, user, user_token):
    """A server killed with SIGKILL while it streamed an answer, then started again."""
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    fake_openai.script(tokens=TOKENS, delay=0.03)
    server = ServerProcess(openai_url=fake_openai.base_url).start()
    try:
        stream = iter(send(server.url, session, user_token))
        answer_id = next(stream).data["assistant_message_id"]
        received = "".join(next(stream).data["text"] for _ in range(20))
        assert wait_for(lambda: len(SessionChatMessage.objects.get(pk=answer_id).message) >= len(received))
        server.kill()
        assert SessionChatMessage.objects.get(pk=answer_id).status == MessageStatus.STREAMING  # no `finally` ran
        server = ServerProcess(openai_url=fake_openai.base_url).start()
        yield Killed(server, session, answer_id, received)
    finally:
        server.stop()


def sweep() -> int:
    return messages_interrupt_stale(now=timezone.now() + chat_settings.STALE_STREAM_AFTER + timedelta(seconds=1))


def test_a_server_killed_mid_answer_leaves_an_interrupted_answer_with_its_text_and_the_chat_goes_on(
    killed_mid_answer, fake_openai, user_token
):
    server, session = killed_mid_answer.server, killed_mid_answer.session

    swept = sweep()
    saved = SessionChatMessage.objects.get(pk=killed_mid_answer.answer_id)
    fake_openai.script(tokens=["After", " the", " restart."])
    after = list(send(server.url, session, user_token, "Are you back?"))

    assert swept == 1
    assert saved.status == MessageStatus.INTERRUPTED
    assert saved.message.startswith(killed_mid_answer.received)  # at least what the user saw was saved
    assert "".join(TOKENS).startswith(saved.message)
    assert after[-1].type == "done"
    assert after[-1].data["message"]["message"] == "After the restart."
    assert_turns_whole(session)


def test_resuming_the_answer_of_a_killed_server_ends_with_the_saved_answer(killed_mid_answer, user_token):
    server, session = killed_mid_answer.server, killed_mid_answer.session
    sweep()
    resume_url = f"{session_url(server.url, session)}messages/{killed_mid_answer.answer_id}/stream/"

    resumed = list(sse_request("GET", resume_url, headers=auth(user_token), timeout=8))

    assert resumed[-1].type == "done"
    assert resumed[-1].data["message"]["status"] == "interrupted"
    assert resumed[-1].data["message"]["message"].startswith(killed_mid_answer.received)
