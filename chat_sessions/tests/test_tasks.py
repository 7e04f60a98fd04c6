"""Tasks enqueued on commit, and the remote clean-up of deleted sessions: retried, then visibly failed."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest
from celery.exceptions import Retry
from django.db import transaction

from chat_sessions import services, tasks
from chat_sessions.agents.base import AgentBackend, AgentError
from chat_sessions.models import (
    ChatSession,
    CleanupStatus,
    MessageStatus,
    RemoteSessionCleanup,
    SessionChatMessage,
)
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory, UserFactory

pytestmark = pytest.mark.django_db


class RemoteAgent(AgentBackend):
    """Stands in for RAGFlow: records the conversations it deleted, or refuses `failures` times."""

    deleted: ClassVar[list[tuple[str, str]]] = []
    failures: ClassVar[int] = 0

    async def session_close(self, *, remote_agent_id: str, remote_session_id: str) -> None:
        if RemoteAgent.failures:
            RemoteAgent.failures -= 1
            raise AgentError("RAGFlow answered HTTP 502.", code="upstream_error")
        RemoteAgent.deleted.append((remote_agent_id, remote_session_id))


@pytest.fixture
def remote(settings):
    settings.CHAT_SESSIONS = {
        **settings.CHAT_SESSIONS,
        "AGENT_BACKEND": "chat_sessions.tests.test_tasks.RemoteAgent",
        "TITLE_BACKEND": None,
    }
    RemoteAgent.deleted, RemoteAgent.failures = [], 0
    return RemoteAgent


@pytest.fixture
def eager_retries(monkeypatch):
    """Let an eagerly run task retry in place (the test settings re-raise its `Retry` instead)."""
    monkeypatch.setitem(tasks.remote_session_delete.app.conf, "task_eager_propagates", False)


@pytest.fixture
def delays(monkeypatch):
    """What was handed to the broker: (task name, kwargs), in order."""
    sent: list[tuple[str, dict[str, Any]]] = []
    for task in (tasks.session_title_generate, tasks.remote_session_delete):
        monkeypatch.setattr(task, "delay", lambda _name=task.name, **kwargs: sent.append((_name, kwargs)))
    return sent


def remote_session(user=None) -> ChatSession:
    notebook = NotebookFactory(owner=user) if user else NotebookFactory()
    return ChatSessionFactory(
        container=notebook, created_by=notebook.owner, remote_agent_id="agent-7", remote_session_id="conv-42"
    )


def turn_finished(session: ChatSession, *, status: str) -> SessionChatMessage:
    started = services.turn_start(session=session, user=session.created_by, text="What is a thylakoid?")
    return services.message_finish(
        message_id=started.assistant_message.pk, text="A membrane sac.", status=status, metadata={}
    )


# Enqueued only once the data is committed
# ------------------------------------------------------------------------------


def test_the_first_complete_answer_asks_for_a_title_once_it_is_committed(delays, django_capture_on_commit_callbacks):
    session = ChatSessionFactory()

    with django_capture_on_commit_callbacks() as callbacks:
        turn_finished(session, status=MessageStatus.COMPLETE)
        assert delays == []

    for callback in callbacks:
        callback()
    assert delays == [("chat_sessions.tasks.session_title_generate", {"session_id": str(session.pk)})]


@pytest.mark.parametrize("status", [MessageStatus.INTERRUPTED, MessageStatus.ERROR])
def test_an_unfinished_first_answer_asks_for_no_title(delays, django_capture_on_commit_callbacks, status):
    session = ChatSessionFactory()

    with django_capture_on_commit_callbacks(execute=True):
        turn_finished(session, status=status)

    assert delays == []


def test_a_later_answer_in_a_titled_session_asks_for_no_title(delays, django_capture_on_commit_callbacks):
    session = ChatSessionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        turn_finished(session, status=MessageStatus.COMPLETE)
    services.session_title_apply(session_id=session.pk, title="Named by the worker")
    delays.clear()

    with django_capture_on_commit_callbacks(execute=True):
        turn_finished(session, status=MessageStatus.COMPLETE)

    assert delays == []


def test_a_rolled_back_deletion_leaves_no_cleanup_and_sends_nothing(delays, django_capture_on_commit_callbacks):
    session = remote_session()
    session_id = session.pk

    def delete_then_fail():
        with transaction.atomic():
            services.session_delete(session=session)
            raise RuntimeError("something after the delete failed")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        delete_then_fail()

    assert callbacks == []
    assert delays == []
    assert ChatSession.objects.filter(pk=session_id).exists()
    assert not RemoteSessionCleanup.objects.exists()


def test_a_broker_that_is_down_does_not_undo_the_deletion(monkeypatch, django_capture_on_commit_callbacks):
    session = remote_session()

    def broker_down(**kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.remote_session_delete, "delay", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        services.session_delete(session=session)

    assert not ChatSession.objects.filter(pk=session.pk).exists()
    assert RemoteSessionCleanup.objects.get().status == CleanupStatus.PENDING


# Remote clean-up of a permanently deleted session
# ------------------------------------------------------------------------------


def test_deleting_a_session_for_good_deletes_its_remote_conversation(
    remote, owner_client, user, django_capture_on_commit_callbacks
):
    session = remote_session(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.delete(
            f"/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/?permanent=true"
        )

    assert response.status_code == 204
    assert remote.deleted == [("agent-7", "conv-42")]
    cleanup = RemoteSessionCleanup.objects.get()
    assert (cleanup.session_id, cleanup.container_id) == (session.pk, str(session.container_id))
    assert (cleanup.status, cleanup.attempts, cleanup.last_error) == (CleanupStatus.DONE, 1, "")
    assert cleanup.finished_at is not None


@pytest.mark.parametrize("how", ["delete-page", "bulk-action"])
def test_deleting_a_session_from_the_admin_deletes_its_remote_conversation(
    remote, client, django_capture_on_commit_callbacks, how
):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    session = remote_session()

    with django_capture_on_commit_callbacks(execute=True):
        if how == "delete-page":
            response = client.post(f"/admin/chat_sessions/chatsession/{session.pk}/delete/", {"post": "yes"})
        else:
            response = client.post(
                "/admin/chat_sessions/chatsession/",
                {"action": "delete_selected", "_selected_action": [str(session.pk)], "post": "yes"},
            )

    assert response.status_code == 302
    assert not ChatSession.objects.filter(pk=session.pk).exists()
    assert remote.deleted == [("agent-7", "conv-42")]
    assert RemoteSessionCleanup.objects.get().status == CleanupStatus.DONE


def test_closing_a_session_keeps_its_remote_conversation(
    remote, owner_client, user, django_capture_on_commit_callbacks
):
    session = remote_session(user)

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.delete(f"/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/")

    assert remote.deleted == []
    assert not RemoteSessionCleanup.objects.exists()


def test_a_session_that_never_reached_the_remote_needs_no_cleanup(remote, django_capture_on_commit_callbacks):
    session = ChatSessionFactory(remote_agent_id="agent-7", remote_session_id="")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.session_delete(session=session)

    assert callbacks == []
    assert remote.deleted == []
    assert not RemoteSessionCleanup.objects.exists()


def test_a_refused_cleanup_is_recorded_and_retried_with_backoff(remote, django_capture_on_commit_callbacks):
    remote.failures = 1
    with django_capture_on_commit_callbacks():
        services.session_delete(session=remote_session())
    cleanup = RemoteSessionCleanup.objects.get()

    with pytest.raises(Retry) as retry:
        tasks.remote_session_delete.apply(kwargs={"cleanup_id": cleanup.pk}, throw=True)

    cleanup.refresh_from_db()
    assert (cleanup.status, cleanup.attempts) == (CleanupStatus.PENDING, 1)
    assert cleanup.last_error == "RAGFlow answered HTTP 502."
    assert 0 <= retry.value.when <= tasks.REMOTE_CLEANUP_BACKOFF_FACTOR


def test_backoff_grows_with_each_retry_up_to_a_ceiling(monkeypatch):
    countdowns = []
    real = tasks.get_exponential_backoff_interval

    def spy(**kwargs):
        kwargs["full_jitter"] = False  # the ceiling of each jittered wait
        countdowns.append(real(**kwargs))
        return countdowns[-1]

    def remote_down(**kwargs):
        raise AgentError("RAGFlow is down.")

    monkeypatch.setattr(tasks, "get_exponential_backoff_interval", spy)
    monkeypatch.setattr(services, "remote_session_cleanup_run", remote_down)

    for retries in range(tasks.REMOTE_CLEANUP_RETRIES):
        with pytest.raises(Retry):
            tasks.remote_session_delete.apply(kwargs={"cleanup_id": 1}, retries=retries, throw=True)

    assert countdowns == [5, 10, 20, 40, 80, 160, 320, 600]


def test_a_remote_that_recovers_is_cleaned_up_on_a_retry(remote, eager_retries, django_capture_on_commit_callbacks):
    remote.failures = 2
    with django_capture_on_commit_callbacks():
        services.session_delete(session=remote_session())
    cleanup = RemoteSessionCleanup.objects.get()

    tasks.remote_session_delete.apply(kwargs={"cleanup_id": cleanup.pk}, throw=False)

    cleanup.refresh_from_db()
    assert (cleanup.status, cleanup.attempts, cleanup.last_error) == (CleanupStatus.DONE, 3, "")
    assert remote.deleted == [("agent-7", "conv-42")]


def test_a_remote_that_keeps_refusing_leaves_a_visible_failed_cleanup(
    remote, eager_retries, django_capture_on_commit_callbacks, caplog
):
    remote.failures = 1000
    with django_capture_on_commit_callbacks():
        services.session_delete(session=remote_session())
    cleanup = RemoteSessionCleanup.objects.get()

    result = tasks.remote_session_delete.apply(kwargs={"cleanup_id": cleanup.pk}, throw=False)

    cleanup.refresh_from_db()
    assert result.get() is False
    assert cleanup.status == CleanupStatus.FAILED
    assert cleanup.attempts == tasks.REMOTE_CLEANUP_RETRIES + 1
    assert cleanup.last_error == "RAGFlow answered HTTP 502."
    assert remote.deleted == []
    assert "Giving up deleting remote session conv-42" in caplog.text


def test_a_cleanup_already_done_is_not_attempted_again(remote, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.session_delete(session=remote_session())
    cleanup = RemoteSessionCleanup.objects.get()

    tasks.remote_session_delete.delay(cleanup_id=cleanup.pk)

    cleanup.refresh_from_db()
    assert remote.deleted == [("agent-7", "conv-42")]
    assert cleanup.attempts == 1


def test_failed_cleanups_are_listed_in_the_admin_and_can_be_retried(
    remote, admin_client, django_capture_on_commit_callbacks
):
    failed = RemoteSessionCleanup.objects.create(
        session_id="0b6f5a4e-8a59-4f43-9d86-1b3f64b1a001",
        remote_session_id="conv-lost",
        status=CleanupStatus.FAILED,
        attempts=9,
        last_error="RAGFlow answered HTTP 502.",
    )
    RemoteSessionCleanup.objects.create(
        session_id="0b6f5a4e-8a59-4f43-9d86-1b3f64b1a002", remote_session_id="conv-gone", status=CleanupStatus.DONE
    )

    listing = admin_client.get("/admin/chat_sessions/remotesessioncleanup/?status__exact=failed")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/chat_sessions/remotesessioncleanup/",
            {"action": "retry_cleanups", "_selected_action": [failed.pk]},
        )

    assert listing.status_code == 200
    assert b"conv-lost" in listing.content
    assert b"RAGFlow answered HTTP 502." in listing.content
    assert b"conv-gone" not in listing.content
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (CleanupStatus.DONE, 10)
    assert remote.deleted == [("", "conv-lost")]


def test_housekeeping_asks_again_for_a_cleanup_whose_task_was_lost(delays, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from chat_sessions.models import RemoteSessionCleanup

    stuck = RemoteSessionCleanup.objects.create(session_id=uuid.uuid4(), remote_session_id="r-1")
    fresh = RemoteSessionCleanup.objects.create(session_id=uuid.uuid4(), remote_session_id="r-2")
    RemoteSessionCleanup.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(hours=2))

    with django_capture_on_commit_callbacks(execute=True):
        resumed = services.remote_session_cleanups_resume()

    assert resumed == 1
    assert delays == [("chat_sessions.tasks.remote_session_delete", {"cleanup_id": stuck.pk})]
    assert RemoteSessionCleanup.objects.get(pk=fresh.pk).status == "pending"
