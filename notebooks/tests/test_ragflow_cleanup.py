"""What is deleted here is deleted in RAGFlow too, by a worker, visibly when RAGFlow refuses."""

from __future__ import annotations

import re

import pytest

from chat_sessions import services as chat_services
from chat_sessions.agents.base import AgentError
from chat_sessions.models import ChatSession, CleanupStatus
from notebooks import provisioning, services, tasks
from notebooks.models import CleanupKind, RagFlowAgent, RagFlowDataset, RemoteCleanup, Source
from notebooks.ragflow.agent import RagFlowNotebookAgent
from notebooks.ragflow.client import ragflow_call

pytestmark = pytest.mark.django_db

NOTES = "Photosynthesis converts light energy into chemical energy stored in glucose."


@pytest.fixture
def notebook(ragflow, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.notebook_create(owner=user, name="Botany")


@pytest.fixture
def source(notebook, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = services.source_create_text(notebook=notebook, title="Field notes", content=NOTES)
    created.refresh_from_db()
    assert created.remote_document_id
    return created


def assert_every_delete_names_its_ids(fake):
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert deletes, "nothing was deleted"
    for request in deletes:
        if not re.fullmatch(r"/api/v1/agents/[0-9a-f]+", request.path):  # the agent is named in the path
            assert isinstance(request.json, dict), request.path
            assert request.json.get("ids"), request.path
            assert all(request.json["ids"]), request.path


def test_deleting_a_source_deletes_its_ragflow_document(source, ragflow, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.source_delete(source=source)

    assert source.remote_document_id not in ragflow.documents
    cleanup = RemoteCleanup.objects.get()
    assert (cleanup.kind, cleanup.status, cleanup.attempts) == (CleanupKind.DOCUMENT, CleanupStatus.DONE, 1)
    assert cleanup.finished_at is not None
    assert cleanup.remote_ids == {}
    assert_every_delete_names_its_ids(ragflow)


def test_deleting_a_notebook_deletes_its_agent_sessions_then_its_agent_then_its_dataset(
    notebook, source, ragflow, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        session = chat_services.session_create(container=notebook, user=user)
    agent_id = RagFlowAgent.objects.get(notebook=notebook).remote_id
    known = ragflow_call(lambda client: client.agent_session_create(agent_id=agent_id))
    ChatSession.objects.filter(pk=session.pk).update(remote_agent_id=agent_id, remote_session_id=known)
    # A session RAGFlow has but deepsight never recorded (its turn died before saving the id).
    unknown = ragflow_call(lambda client: client.agent_session_create(agent_id=agent_id))
    notebook_id = notebook.pk

    with django_capture_on_commit_callbacks(execute=True):
        services.notebook_delete(notebook=notebook)

    assert (ragflow.sessions, ragflow.agents, ragflow.datasets, ragflow.documents) == ({}, {}, {}, {})
    deletes = [r for r in ragflow.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == [
        f"/api/v1/agents/{agent_id}/sessions",
        f"/api/v1/agents/{agent_id}",
        "/api/v1/datasets",
    ]
    assert set(deletes[0].json["ids"]) == {known, unknown}
    cleanup = RemoteCleanup.objects.get()
    assert (cleanup.kind, cleanup.status, cleanup.notebook_id) == (
        CleanupKind.NOTEBOOK,
        CleanupStatus.DONE,
        notebook_id,
    )
    assert_every_delete_names_its_ids(ragflow)


def test_deleting_a_notebook_never_provisioned_owes_ragflow_nothing(settings, user, django_capture_on_commit_callbacks):
    settings.RAGFLOW_BASE_URL = ""
    notebook = services.notebook_create(owner=user, name="Offline")

    with django_capture_on_commit_callbacks(execute=True):
        services.notebook_delete(notebook=notebook)

    assert not RemoteCleanup.objects.exists()


def test_a_cleanup_ragflow_refuses_is_left_failed_and_visible_and_can_be_retried_from_the_admin(
    source, ragflow, settings, admin_client, django_capture_on_commit_callbacks
):
    settings.RAGFLOW_API_KEY = "ragflow-revokedKEY"
    with django_capture_on_commit_callbacks(execute=True):
        services.source_delete(source=source)

    cleanup = RemoteCleanup.objects.get()
    assert (cleanup.status, cleanup.attempts) == (CleanupStatus.FAILED, 1)
    assert "API key" in cleanup.last_error
    assert "revokedKEY" not in cleanup.last_error
    assert source.remote_document_id in ragflow.documents
    page = admin_client.get("/admin/notebooks/remotecleanup/").content.decode()
    assert "Field notes" in page
    assert "Failed" in page

    settings.RAGFLOW_API_KEY = ragflow.api_key
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/notebooks/remotecleanup/", {"action": "retry", "_selected_action": [cleanup.pk]}
        )

    assert response.status_code == 302
    cleanup.refresh_from_db()
    assert (cleanup.status, cleanup.attempts, cleanup.last_error) == (CleanupStatus.DONE, 2, "")
    assert source.remote_document_id not in ragflow.documents


def test_a_cleanup_is_retried_through_an_outage_until_it_succeeds(source, ragflow, django_capture_on_commit_callbacks):
    dataset_id = RagFlowDataset.objects.get(notebook=source.notebook).remote_id
    # One task attempt sends the delete 4 times (the client's own retries); the 5th goes through.
    ragflow.fail("DELETE", f"/api/v1/datasets/{dataset_id}/documents", times=4, status=502, code=None)

    with django_capture_on_commit_callbacks(execute=True):
        services.source_delete(source=source)

    cleanup = RemoteCleanup.objects.get()
    assert (cleanup.status, cleanup.attempts) == (CleanupStatus.DONE, 2)
    assert source.remote_document_id not in ragflow.documents


def test_a_cleanup_that_keeps_failing_ends_failed_after_its_retries_instead_of_leaking_silently(
    source, ragflow, django_capture_on_commit_callbacks
):
    ragflow.fail("DELETE", "/api/v1/datasets/.*/documents", times=10_000, status=502, code=None)

    with django_capture_on_commit_callbacks(execute=True):
        services.source_delete(source=source)

    cleanup = RemoteCleanup.objects.get()
    attempts = 1 + tasks.remote_cleanup_run.max_retries
    assert (cleanup.status, cleanup.attempts) == (CleanupStatus.FAILED, attempts)
    assert "HTTP 502" in cleanup.last_error
    assert cleanup.remote_ids["document_ids"] == [source.remote_document_id]


def test_a_source_deleted_while_it_uploads_leaves_no_document_behind(
    notebook, ragflow, monkeypatch, django_capture_on_commit_callbacks
):
    real_call = provisioning.ragflow_call

    def upload_then_user_deletes(fn):
        result = real_call(fn)
        if isinstance(result, dict) and result.get("type") == "doc":
            Source.objects.all().delete()  # the user deletes the source while it uploads
        return result

    monkeypatch.setattr(provisioning, "ragflow_call", upload_then_user_deletes)

    with django_capture_on_commit_callbacks(execute=True):
        services.source_create_text(notebook=notebook, title="Short-lived", content=NOTES)

    assert ragflow.documents == {}
    cleanup = RemoteCleanup.objects.get()
    assert cleanup.status == CleanupStatus.DONE
    assert "Orphan" in cleanup.label


@pytest.mark.asyncio
async def test_closing_a_deleted_chat_sessions_ragflow_session_deletes_only_that_session(ragflow):
    agent_id = await _agent_with_sessions(ragflow, 2)
    doomed, kept = list(ragflow.sessions)

    await RagFlowNotebookAgent().session_close(remote_agent_id=agent_id, remote_session_id=doomed)

    assert list(ragflow.sessions) == [kept]
    assert ragflow.requests_to("DELETE", f"/api/v1/agents/{agent_id}/sessions")[0].json == {"ids": [doomed]}


@pytest.mark.asyncio
async def test_a_ragflow_session_that_cannot_be_deleted_raises_for_the_caller_to_retry(ragflow, settings):
    agent_id = await _agent_with_sessions(ragflow, 1)
    settings.RAGFLOW_API_KEY = "ragflow-revokedKEY"

    with pytest.raises(AgentError) as refused:
        await RagFlowNotebookAgent().session_close(
            remote_agent_id=agent_id, remote_session_id=next(iter(ragflow.sessions))
        )

    assert refused.value.code == "upstream_auth"
    assert "revokedKEY" not in refused.value.message
    assert len(ragflow.sessions) == 1


async def _agent_with_sessions(fake, count):
    from notebooks.ragflow.client import ragflow_client_private

    async with ragflow_client_private() as client:
        agent_id = await client.agent_create(title="deepsight-nb-x", dsl={"components": {}})
        for _ in range(count):
            await client.agent_session_create(agent_id=agent_id)
    return agent_id


def test_a_cleanup_whose_task_was_lost_is_done_by_the_next_sweep(source, ragflow, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    document_id = source.remote_document_id
    record = provisioning.source_remote_cleanup_record(source=source)
    Source.objects.filter(pk=source.pk).delete()
    RemoteCleanup.objects.filter(pk=record.pk).update(updated_at=timezone.now() - timedelta(hours=2))

    with django_capture_on_commit_callbacks(execute=True):
        resumed = tasks.remote_cleanups_resume()

    record.refresh_from_db()
    assert resumed == 1
    assert record.status == CleanupStatus.DONE
    assert any(r.method == "DELETE" and document_id in str(r.json) for r in ragflow.requests)


def test_a_source_deleted_while_ragflow_was_switched_off_is_cleaned_up_at_the_next_sweep(
    source, ragflow, settings, django_capture_on_commit_callbacks
):
    """Found by a probe: its clean-up waited an hour untouched, while RAGFlow still cited the source."""
    from datetime import timedelta

    from django.utils import timezone

    document_id, base_url = source.remote_document_id, settings.RAGFLOW_BASE_URL
    settings.RAGFLOW_BASE_URL = ""
    with django_capture_on_commit_callbacks(execute=True):
        services.source_delete(source=source)
    settings.RAGFLOW_BASE_URL = base_url
    record = RemoteCleanup.objects.get()
    assert (record.status, record.attempts) == (CleanupStatus.PENDING, 0)

    with django_capture_on_commit_callbacks(execute=True):
        at_once = tasks.remote_cleanups_resume()  # an upload's clean-up just written is not taken for lost
    RemoteCleanup.objects.filter(pk=record.pk).update(updated_at=timezone.now() - timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        resumed = tasks.remote_cleanups_resume()

    record.refresh_from_db()
    assert (at_once, resumed) == (0, 1)
    assert record.status == CleanupStatus.DONE
    assert any(r.method == "DELETE" and document_id in str(r.json) for r in ragflow.requests)


@pytest.fixture
def staff_client(client):
    from chat_sessions.tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_deleting_a_notebook_from_the_admin_deletes_it_in_ragflow_too(
    notebook, source, ragflow, staff_client, django_capture_on_commit_callbacks
):
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/admin/notebooks/notebook/{notebook.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Source.objects.exists()
    assert dataset_id not in ragflow.datasets
    cleanup = RemoteCleanup.objects.get()
    assert (cleanup.kind, cleanup.status) == (CleanupKind.NOTEBOOK, CleanupStatus.DONE)


def test_deleting_sources_with_the_admins_bulk_action_deletes_their_ragflow_documents(
    source, ragflow, staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/notebooks/source/", {"action": "delete_selected", "_selected_action": [source.pk], "post": "yes"}
        )

    assert response.status_code == 302
    assert not Source.objects.exists()
    assert source.remote_document_id not in ragflow.documents
    assert RemoteCleanup.objects.get().kind == CleanupKind.DOCUMENT


@pytest.fixture
def uploaded(notebook, django_capture_on_commit_callbacks):
    """A file source of the notebook, uploaded to RAGFlow, with its file in storage."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    with django_capture_on_commit_callbacks(execute=True):
        created = services.source_create_file(
            notebook=notebook, upload=SimpleUploadedFile("notes.md", NOTES.encode(), "text/markdown")
        )
    created.refresh_from_db()
    assert created.remote_document_id
    assert created.file.storage.exists(created.file.name)
    return created


def _deleted_everywhere(ragflow, notebook_id, file):
    """The user's notebook is gone here and in RAGFlow, and its uploaded file from storage."""
    assert (ragflow.datasets, ragflow.agents, ragflow.documents) == ({}, {}, {})
    cleanup = RemoteCleanup.objects.get()
    assert (cleanup.kind, cleanup.status, cleanup.notebook_id) == (
        CleanupKind.NOTEBOOK,
        CleanupStatus.DONE,
        notebook_id,
    )
    assert not file.storage.exists(file.name)
    assert (Source.objects.count(), ChatSession.objects.count()) == (0, 0)


def test_deleting_a_user_from_the_admin_deletes_their_notebooks_in_ragflow_and_their_files(
    notebook, uploaded, ragflow, user, staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.session_create(container=notebook, user=user)
        response = staff_client.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not type(user).objects.filter(pk=user.pk).exists()
    _deleted_everywhere(ragflow, notebook.pk, uploaded.file)


def test_deleting_users_in_bulk_or_in_a_shell_deletes_their_notebooks_in_ragflow_too(
    notebook, uploaded, ragflow, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        deleted, _ = type(user).objects.filter(pk=user.pk).delete()

    assert deleted
    _deleted_everywhere(ragflow, notebook.pk, uploaded.file)


def test_a_user_deletion_that_rolls_back_keeps_their_files_and_owes_ragflow_nothing(
    notebook, uploaded, ragflow, user, django_capture_on_commit_callbacks
):
    from django.db import transaction

    def delete_then_fail():
        with transaction.atomic():
            user.delete()
            raise RuntimeError("the request failed after the deletion")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        delete_then_fail()

    assert Source.objects.get() == uploaded
    assert uploaded.file.storage.exists(uploaded.file.name)
    assert not RemoteCleanup.objects.exists()
    assert uploaded.remote_document_id in ragflow.documents


def test_a_conversation_deleted_while_ragflow_is_switched_off_stays_owed_not_done(
    settings, user, monkeypatch, django_capture_on_commit_callbacks
):
    """Found by a probe: its clean-up was marked done, and the conversation stayed in RAGFlow for good."""
    from chat_sessions import tasks as chat_tasks
    from chat_sessions.agents.registry import agent_backends_reset
    from chat_sessions.models import RemoteSessionCleanup
    from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory

    settings.RAGFLOW_BASE_URL = ""
    agent_backends_reset()
    monkeypatch.setitem(chat_tasks.remote_session_delete.app.conf, "task_eager_propagates", False)
    notebook = NotebookFactory(owner=user)
    session = ChatSessionFactory(
        container=notebook, created_by=user, remote_agent_id="agent-7", remote_session_id="conv-42"
    )

    with django_capture_on_commit_callbacks(execute=True):
        chat_services.session_delete(session=session)

    cleanup = RemoteSessionCleanup.objects.get()
    assert cleanup.status == CleanupStatus.FAILED
    assert cleanup.last_error == "RAGFlow is not configured, so its conversation was not deleted."
