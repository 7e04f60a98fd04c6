"""The web process killed mid-answer (kill -9): after a restart the answer is marked interrupted (by
the sweep, or by the next send or resumed stream once it is stale), the text it had saved is still
there, and the next message in the session works; a live answer whose agent is silent is not taken
for dead.

A real OS process: SIGKILL leaves no `finally` to run, so the answer is left `streaming` in the
database exactly as a crash, the OOM killer or a lost machine would leave it.
"""

from __future__ import annotations

import json
import threading
import time
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


#: Seconds: the `STALE_STREAM_AFTER` of the servers of the tests that wait for an answer to go stale.
STALE = 2.0


@pytest.fixture
def killed_mid_answer(fake_openai, user, user_token):
    """A server killed with SIGKILL while it streamed an answer, then started again."""
    yield from _killed_mid_answer(fake_openai, user, user_token)


@pytest.fixture
def killed_then_restarted_quick_to_judge(fake_openai, user, user_token):
    """The same, restarted with `STALE_STREAM_AFTER` of `STALE` seconds (the default is a minute)."""
    yield from _killed_mid_answer(fake_openai, user, user_token, stale_after=STALE)


def _killed_mid_answer(fake_openai, user, user_token, **restart):
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
        server = ServerProcess(openai_url=fake_openai.base_url, **restart).start()
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


def stale(answer_id: int) -> bool:
    written = SessionChatMessage.objects.get(pk=answer_id).updated_at
    return written < timezone.now() - timedelta(seconds=STALE)


def test_after_a_restart_the_next_message_ends_the_dead_answer_instead_of_being_refused(
    killed_then_restarted_quick_to_judge, fake_openai, user_token
):
    killed = killed_then_restarted_quick_to_judge
    assert wait_for(lambda: stale(killed.answer_id), timeout=STALE + 10)
    fake_openai.script(tokens=["Back", " again."])

    # No sweep: before, the session refused every message (409) until one ran, up to 20 minutes.
    after = list(send(killed.server.url, killed.session, user_token, "Are you back?"))

    assert after[-1].type == "done", after[-1].data
    assert after[-1].data["message"]["message"] == "Back again."
    dead = SessionChatMessage.objects.get(pk=killed.answer_id)
    assert dead.status == MessageStatus.INTERRUPTED
    assert dead.message.startswith(killed.received)
    assert_turns_whole(killed.session)


def test_resuming_the_answer_of_a_killed_server_ends_once_it_is_stale_without_a_sweep(
    killed_then_restarted_quick_to_judge, user_token
):
    killed = killed_then_restarted_quick_to_judge
    resume_url = f"{session_url(killed.server.url, killed.session)}messages/{killed.answer_id}/stream/"

    started = time.monotonic()
    # Before, the stream pinged for STALE_STREAM_AFTER (15 minutes), then ended with `stream_lost`.
    resumed = list(sse_request("GET", resume_url, headers=auth(user_token), timeout=STALE + 10))

    assert resumed[-1].type == "done"
    assert resumed[-1].data["message"]["status"] == "interrupted"
    assert resumed[-1].data["message"]["message"].startswith(killed.received)
    assert time.monotonic() - started < STALE + 5


def test_a_live_answer_whose_agent_is_silent_past_the_stale_limit_is_not_taken_for_dead(fake_openai, user, user_token):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    fake_openai.script(tokens=["Worth", " the", " wait."], first_token_delay=STALE * 3)
    server = ServerProcess(openai_url=fake_openai.base_url, stale_after=STALE, heartbeat=STALE / 4).start()
    try:
        read: list[list] = []
        reader = threading.Thread(target=lambda: read.append(list(send(server.url, session, user_token))), daemon=True)
        reader.start()
        assert wait_for(lambda: SessionChatMessage.objects.filter(session=session, status="streaming").exists())
        time.sleep(STALE * 1.5)  # silent past the limit: only the heartbeat writes the answer

        second = send(server.url, session, user_token, "Still there?")
        refusal = (second.status, json.loads(second.body()).get("code") if second.status != 200 else "accepted")
        second.close()
        reader.join(timeout=STALE * 3 + 15)
    finally:
        server.stop()

    # Without the heartbeat the answer would have looked dead: marked interrupted, the second accepted.
    assert refusal == (409, "generation_in_progress")
    assert read, "the stream never ended"
    assert read[0][-1].type == "done", read[0][-1].data
    assert read[0][-1].data["message"]["message"] == "Worth the wait."
    assert read[0][-1].data["message"]["status"] == "complete"
