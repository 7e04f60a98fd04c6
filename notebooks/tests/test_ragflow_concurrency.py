"""Sessions opened at the same moment, from two threads with their own database connections."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from chat_sessions import services as chat_services
from chat_sessions.models import ChatSession
from notebooks import provisioning, services
from notebooks.models import RagFlowAgent, RemoteStatus

pytestmark = pytest.mark.django_db(transaction=True)


def at_the_same_moment(action, *, threads=2):
    """Run `action` in several threads released together; the errors they raised."""
    barrier = threading.Barrier(threads)
    errors = []

    def run():
        try:
            barrier.wait(timeout=10)
            action()
        except Exception as exc:  # any failure is reported to the test
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return errors


def test_two_sessions_opened_at_the_same_moment_create_one_agent(ragflow, user):
    notebooks = [services.notebook_create(owner=user, name=f"Race {n}") for n in range(4)]

    for notebook in notebooks:
        errors = at_the_same_moment(
            lambda notebook=notebook: chat_services.session_create(container=notebook, user=user)
        )
        assert errors == []

    assert ChatSession.objects.count() == 8
    assert RagFlowAgent.objects.count() == 4
    assert set(RagFlowAgent.objects.values_list("status", flat=True)) == {RemoteStatus.READY}
    assert len(ragflow.requests_to("POST", "/api/v1/agents")) == 4
    assert len(ragflow.agents) == 4


def test_agent_ensure_called_by_many_at_once_enqueues_the_creation_once(ragflow, user, monkeypatch):
    notebook = services.notebook_create(owner=user, name="Crowd")
    enqueued = []
    real_enqueue = provisioning._on_commit_enqueue

    def counting_enqueue(task_name, **kwargs):
        if task_name == "agent_provision":
            enqueued.append(kwargs)
        real_enqueue(task_name, **kwargs)

    monkeypatch.setattr(provisioning, "_on_commit_enqueue", counting_enqueue)

    errors = at_the_same_moment(lambda: provisioning.agent_ensure(notebook_id=notebook.pk), threads=4)

    assert errors == []
    assert enqueued == [{"notebook_id": str(notebook.pk)}]
    assert len(ragflow.requests_to("POST", "/api/v1/agents")) == 1
