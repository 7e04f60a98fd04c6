"""Notebooks mirrored into the fake RAGFlow by the (eager) workers: datasets, documents, agents."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat_sessions import services as chat_services
from notebooks import provisioning, services, tasks
from notebooks.models import ParseStatus, RagFlowAgent, RagFlowDataset, RemoteStatus, Source
from notebooks.ragflow.agent import RagFlowNotebookAgent
from notebooks.ragflow.dsl import VERSION_KEY, template_load
from notebooks.tests.conftest import EDITED_PROMPT, answer_prompt

pytestmark = pytest.mark.django_db

NOTES = (
    "Photosynthesis converts light energy into chemical energy stored in glucose.\n\n"
    "Chlorophyll absorbs mostly blue and red light, which is why leaves look green."
)


@pytest.fixture
def notebook(ragflow, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.notebook_create(owner=user, name="Botany")


def text_source(notebook, capture, *, title="Field notes", content=NOTES):
    with capture(execute=True):
        source = services.source_create_text(notebook=notebook, title=title, content=content)
    source.refresh_from_db()
    return source


# Datasets
# ------------------------------------------------------------------------------


def test_creating_a_notebook_creates_its_dataset_in_ragflow(notebook, ragflow, owner_client):
    dataset = RagFlowDataset.objects.get(notebook=notebook)

    assert dataset.status == RemoteStatus.READY
    assert dataset.last_error == ""
    assert ragflow.datasets[dataset.remote_id]["name"] == f"deepsight-{notebook.pk}"
    assert dataset.metadata["chunk_method"] == "naive"
    assert owner_client.get(f"/api/v1/notebooks/{notebook.pk}/").json()["dataset_status"] == "ready"


def test_without_ragflow_a_notebook_has_no_dataset_and_sources_are_ready_at_once(
    settings, user, django_capture_on_commit_callbacks
):
    settings.RAGFLOW_BASE_URL = ""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notebook = services.notebook_create(owner=user, name="Offline")
        source = services.source_create_text(notebook=notebook, title="t", content="some text")

    assert not RagFlowDataset.objects.filter(notebook=notebook).exists()
    assert (source.parse_status, source.parse_progress) == (ParseStatus.READY, 1.0)
    assert callbacks == []


def test_a_dataset_ragflow_keeps_failing_ends_in_error_with_the_reason(
    ragflow, user, owner_client, django_capture_on_commit_callbacks
):
    ragflow.fail("POST", "/api/v1/datasets", times=50, code=100, message="Elasticsearch is down")

    with django_capture_on_commit_callbacks(execute=True):
        notebook = services.notebook_create(owner=user, name="Unlucky")

    dataset = RagFlowDataset.objects.get(notebook=notebook)
    assert dataset.status == RemoteStatus.ERROR
    assert "Elasticsearch is down" in dataset.last_error
    assert len(ragflow.requests_to("POST", "/api/v1/datasets")) == 1 + tasks.RETRYING["max_retries"]
    body = owner_client.get(f"/api/v1/notebooks/{notebook.pk}/").json()
    assert body["dataset_status"] == "error"
    assert body["dataset_error"]


def test_a_dataset_ragflow_refuses_fails_at_once_without_retries(
    ragflow, settings, user, django_capture_on_commit_callbacks
):
    settings.RAGFLOW_API_KEY = "ragflow-revokedKEY"

    with django_capture_on_commit_callbacks(execute=True):
        notebook = services.notebook_create(owner=user, name="Refused")

    dataset = RagFlowDataset.objects.get(notebook=notebook)
    assert dataset.status == RemoteStatus.ERROR
    assert "API key" in dataset.last_error
    assert "revokedKEY" not in dataset.last_error
    assert len(ragflow.requests) == 1


def test_a_repeated_dataset_task_adopts_the_dataset_instead_of_making_a_second(notebook, ragflow):
    dataset = RagFlowDataset.objects.get(notebook=notebook)
    RagFlowDataset.objects.filter(pk=dataset.pk).update(remote_id="", status=RemoteStatus.PENDING)

    tasks.dataset_provision.delay(notebook_id=str(notebook.pk))

    assert RagFlowDataset.objects.get(pk=dataset.pk).remote_id == dataset.remote_id
    assert len(ragflow.datasets) == 1


# Sources
# ------------------------------------------------------------------------------


def test_new_sources_wait_for_ragflow_instead_of_being_ready(notebook, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        source = services.source_create_text(notebook=notebook, title="Notes", content=NOTES)

    assert (source.parse_status, source.parse_progress) == (ParseStatus.PENDING, 0.0)


def test_pasted_text_is_uploaded_as_a_txt_file_and_parsed_to_ready(
    notebook, ragflow, django_capture_on_commit_callbacks
):
    ragflow.parse_polls = 3

    source = text_source(notebook, django_capture_on_commit_callbacks)

    document = ragflow.documents[source.remote_document_id]
    assert document["name"] == "Field notes.txt"
    assert document["content"] == NOTES.encode()
    assert (source.parse_status, source.parse_progress, source.chunk_count) == (ParseStatus.READY, 1.0, 2)
    assert source.last_error == ""
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id
    assert len(ragflow.requests_to("GET", f"/api/v1/datasets/{dataset_id}/documents")) == 3


def test_an_uploaded_file_is_sent_with_its_name_and_bytes(notebook, ragflow, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("lab notes.md", b"# Leaves\n\nChlorophyll is green.", content_type="text/markdown")

    with django_capture_on_commit_callbacks(execute=True):
        source = services.source_create_file(notebook=notebook, upload=upload)
    source.refresh_from_db()

    document = ragflow.documents[source.remote_document_id]
    assert document["name"] == "lab notes.md"
    assert document["content"] == b"# Leaves\n\nChlorophyll is green."
    assert source.parse_status == ParseStatus.READY


def test_a_failed_parse_shows_ragflows_reason_on_the_source(notebook, ragflow, django_capture_on_commit_callbacks):
    ragflow.parse_outcome = "FAIL"

    source = text_source(notebook, django_capture_on_commit_callbacks)

    assert source.parse_status == ParseStatus.ERROR
    assert "bad file" in source.last_error


def test_parsing_that_never_finishes_ends_in_an_error_after_the_polling_budget(
    notebook, ragflow, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(tasks, "PARSE_POLLS", 4)
    ragflow.parse_polls = 10

    source = text_source(notebook, django_capture_on_commit_callbacks)

    assert source.parse_status == ParseStatus.ERROR
    assert "did not finish parsing" in source.last_error
    assert 0 < source.parse_progress < 1
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id
    assert len(ragflow.requests_to("GET", f"/api/v1/datasets/{dataset_id}/documents")) == 4


def test_a_source_added_before_the_dataset_exists_is_uploaded_once_it_does(
    ragflow, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as dataset_work:
        notebook = services.notebook_create(owner=user, name="Early bird")
    source = text_source(notebook, django_capture_on_commit_callbacks)
    assert source.parse_status == ParseStatus.PENDING
    assert "Waiting for the notebook's knowledge base" in source.last_error

    with django_capture_on_commit_callbacks(execute=True):
        for callback in dataset_work:
            callback()

    source.refresh_from_db()
    assert source.parse_status == ParseStatus.READY
    assert source.remote_document_id in ragflow.documents
    assert len(ragflow.documents) == 1


def test_an_upload_repeated_by_a_second_worker_sends_the_file_once(
    notebook, ragflow, django_capture_on_commit_callbacks
):
    source = text_source(notebook, django_capture_on_commit_callbacks)

    assert provisioning.source_upload(source_id=str(source.pk)) is False
    tasks.source_upload.delay(source_id=str(source.pk))

    assert len(ragflow.documents) == 1
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id
    assert len(ragflow.requests_to("POST", f"/api/v1/datasets/{dataset_id}/chunks")) == 1


def test_an_upload_interrupted_by_an_outage_is_retried_and_uploads_once(
    notebook, ragflow, django_capture_on_commit_callbacks
):
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id
    ragflow.fail("POST", f"/api/v1/datasets/{dataset_id}/documents", times=2, status=502, code=None)

    source = text_source(notebook, django_capture_on_commit_callbacks)

    assert source.parse_status == ParseStatus.READY
    assert len(ragflow.documents) == 1
    assert len(ragflow.requests_to("POST", f"/api/v1/datasets/{dataset_id}/documents")) == 3


def dataset_deleted_in_ragflow(ragflow, notebook) -> str:
    """As RAGFlow's UI deletes a dataset: it and its documents go; deepsight is not told."""
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id
    del ragflow.datasets[dataset_id]
    for document_id in [d for d, doc in ragflow.documents.items() if doc["dataset_id"] == dataset_id]:
        del ragflow.documents[document_id]
    return dataset_id


def test_a_dataset_deleted_in_ragflow_is_made_again_with_every_source_and_the_agent_pointed_at_it(
    notebook, agent, ragflow, owner_client, django_capture_on_commit_callbacks
):
    earlier = text_source(notebook, django_capture_on_commit_callbacks, title="Earlier notes")
    lost_id = dataset_deleted_in_ragflow(ragflow, notebook)

    added = text_source(notebook, django_capture_on_commit_callbacks, title="Later notes", content="Stomata breathe.")

    dataset = RagFlowDataset.objects.get(notebook=notebook)
    assert (dataset.status, dataset.last_error) == (RemoteStatus.READY, "")
    assert dataset.remote_id not in ("", lost_id)
    assert list(ragflow.datasets) == [dataset.remote_id]
    for source in (earlier, added):
        source.refresh_from_db()
        assert (source.parse_status, source.last_error) == (ParseStatus.READY, "")
        assert ragflow.documents[source.remote_document_id]["dataset_id"] == dataset.remote_id
    assert len(ragflow.documents) == 2  # each sent once to the new dataset
    agent.refresh_from_db()
    assert (agent.template_version, agent.last_error) == ("1", "")
    assert ragflow.agents[agent.remote_id]["dsl"]["components"]["Retrieval:KB"]["obj"]["params"]["kb_ids"] == [
        dataset.remote_id
    ]
    assert owner_client.get(f"/api/v1/notebooks/{notebook.pk}/").json()["dataset_status"] == "ready"


def test_a_dataset_lost_while_a_source_was_parsing_is_found_by_the_parse_poll(
    notebook, ragflow, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the upload task is run by hand below
        source = services.source_create_text(notebook=notebook, title="Field notes", content=NOTES)
    assert provisioning.source_upload(source_id=str(source.pk)) is True  # uploaded, parsing
    lost_id = dataset_deleted_in_ragflow(ragflow, notebook)

    with django_capture_on_commit_callbacks(execute=True):
        assert provisioning.source_parse_refresh(source_id=str(source.pk)) is True  # nothing left to follow

    source.refresh_from_db()
    dataset = RagFlowDataset.objects.get(notebook=notebook)
    assert dataset.remote_id not in ("", lost_id)
    assert (source.parse_status, source.last_error) == (ParseStatus.READY, "")
    assert ragflow.documents[source.remote_document_id]["dataset_id"] == dataset.remote_id


def test_a_not_found_for_a_dataset_ragflow_still_has_does_not_make_it_again(
    notebook, ragflow, django_capture_on_commit_callbacks
):
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id
    ragflow.fail("POST", f"/api/v1/datasets/{dataset_id}/documents", code=102, message="Something else is missing")

    source = text_source(notebook, django_capture_on_commit_callbacks)

    assert source.parse_status == ParseStatus.ERROR
    assert "Something else is missing" in source.last_error
    assert RagFlowDataset.objects.get(notebook=notebook).remote_id == dataset_id
    assert list(ragflow.datasets) == [dataset_id]
    assert len(ragflow.requests_to("GET", "/api/v1/datasets")) >= 1  # it asked before deciding


# Agents
# ------------------------------------------------------------------------------


def test_the_first_session_creates_the_agent_from_the_versioned_template(
    notebook, ragflow, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.session_create(container=notebook, user=notebook.owner)

    agent = RagFlowAgent.objects.get(notebook=notebook)
    template = template_load()
    assert agent.status == RemoteStatus.READY
    assert (agent.template_name, agent.template_version) == ("knowledge_base_agent", template.version)
    assert agent.template_version == "1"
    assert agent.llm_id == settings.RAGFLOW_LLM_ID
    remote = ragflow.agents[agent.remote_id]
    assert remote["title"] == f"deepsight-nb-{notebook.pk}"
    components = remote["dsl"]["components"]
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id
    assert components["Retrieval:KB"]["obj"]["params"]["kb_ids"] == [dataset_id]
    assert components["LLM:Answer"]["obj"]["params"]["llm_id"] == settings.RAGFLOW_LLM_ID
    assert VERSION_KEY not in remote["dsl"]
    assert {"components", "path", "history", "retrieval", "globals"} <= set(remote["dsl"])


def test_more_sessions_of_a_notebook_reuse_its_agent(notebook, ragflow, django_capture_on_commit_callbacks):
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            chat_services.session_create(container=notebook, user=notebook.owner)

    assert len(ragflow.requests_to("POST", "/api/v1/agents")) == 1
    assert RagFlowAgent.objects.filter(notebook=notebook).count() == 1


@pytest.mark.ragflow_version((0, 26))
def test_on_v026_the_agent_id_comes_from_the_create_answer(notebook, ragflow, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.session_create(container=notebook, user=notebook.owner)

    agent = RagFlowAgent.objects.get(notebook=notebook)
    assert agent.remote_id in ragflow.agents
    assert ragflow.requests_to("GET", "/api/v1/agents") == []


def test_an_agent_whose_dataset_failed_is_set_up_again_when_the_user_asks(
    ragflow, user, django_capture_on_commit_callbacks
):
    ragflow.fail("POST", "/api/v1/datasets", times=50, code=100, message="Elasticsearch is down")
    with django_capture_on_commit_callbacks(execute=True):
        notebook = services.notebook_create(owner=user, name="Flaky")
        session = chat_services.session_create(container=notebook, user=user)
    agent = RagFlowAgent.objects.get(notebook=notebook)
    assert agent.status == RemoteStatus.ERROR
    assert "knowledge base is not ready" in agent.last_error
    assert "Elasticsearch is down" in agent.last_error

    ragflow._failures.clear()  # RAGFlow is back
    backend = RagFlowNotebookAgent()

    with django_capture_on_commit_callbacks(execute=True):
        pending = backend.prepare_turn(session=session, question="hello?")
    context = backend.prepare_turn(session=session, question="hello again?")

    assert pending["agent_pending"]  # its answer waits for the worker's new try
    agent.refresh_from_db()
    assert agent.status == RemoteStatus.READY
    assert context["agent_id"] == agent.remote_id
    assert RagFlowDataset.objects.get(notebook=notebook).status == RemoteStatus.READY


def test_an_agent_needs_the_llm_setting_and_says_so(notebook, settings, django_capture_on_commit_callbacks):
    settings.RAGFLOW_LLM_ID = ""

    with django_capture_on_commit_callbacks(execute=True):
        chat_services.session_create(container=notebook, user=notebook.owner)

    agent = RagFlowAgent.objects.get(notebook=notebook)
    assert agent.status == RemoteStatus.ERROR
    assert "RAGFLOW_LLM_ID" in agent.last_error


def test_sources_of_a_notebook_made_before_ragflow_was_configured_are_uploaded_with_its_first_dataset(
    ragflow, settings, user, django_capture_on_commit_callbacks
):
    url = settings.RAGFLOW_BASE_URL
    settings.RAGFLOW_BASE_URL = ""
    notebook = services.notebook_create(owner=user, name="Old")
    old = services.source_create_text(notebook=notebook, title="Old notes", content=NOTES)
    settings.RAGFLOW_BASE_URL = url

    with django_capture_on_commit_callbacks(execute=True):
        session = chat_services.session_create(container=notebook, user=user)

    old.refresh_from_db()
    assert old.remote_document_id in ragflow.documents
    assert old.parse_status == ParseStatus.READY
    assert RagFlowAgent.objects.get(notebook=notebook).status == RemoteStatus.READY
    assert session.pk
    assert Source.objects.filter(notebook=notebook).count() == 1


def test_a_source_that_failed_can_be_sent_again_from_the_admin(
    notebook, ragflow, admin_client, django_capture_on_commit_callbacks
):
    ragflow.parse_outcome = "FAIL"
    source = text_source(notebook, django_capture_on_commit_callbacks)
    assert source.parse_status == ParseStatus.ERROR

    ragflow.parse_outcome = "DONE"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/notebooks/source/", {"action": "ragflow_retry", "_selected_action": [source.pk]}
        )

    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.parse_status, source.last_error, source.chunk_count) == (ParseStatus.READY, "", 2)
    assert len(ragflow.documents) == 1  # parsed again, not uploaded again


def test_a_file_gone_from_storage_ends_its_source_in_error_instead_of_crashing(
    notebook, ragflow, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("gone.md", b"# Soon gone", content_type="text/markdown")
    with django_capture_on_commit_callbacks(execute=False):
        source = services.source_create_file(notebook=notebook, upload=upload)
    source.file.storage.delete(source.file.name)

    tasks.source_upload.delay(source_id=str(source.pk))

    source.refresh_from_db()
    assert (source.parse_status, source.last_error) == (ParseStatus.ERROR, "The stored file could not be read.")
    assert ragflow.documents == {}


# Agent template updates
# ------------------------------------------------------------------------------


@pytest.fixture
def agent(notebook, django_capture_on_commit_callbacks):
    """The notebook's agent, made in RAGFlow from the template as it is in the repository (version 1)."""
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.session_create(container=notebook, user=notebook.owner)
    made = RagFlowAgent.objects.get(notebook=notebook)
    assert (made.status, made.template_version) == (RemoteStatus.READY, "1")
    return made


def beat_run(capture) -> int:
    with capture(execute=True):
        return tasks.agents_outdated_update.delay().get()


@pytest.mark.parametrize(
    "version", [pytest.param((0, 24)), pytest.param((0, 26), marks=pytest.mark.ragflow_version((0, 26)))]
)
def test_a_raised_template_version_reaches_existing_agents_on_the_next_beat_run(
    version, notebook, agent, ragflow, settings, template_edit, django_capture_on_commit_callbacks
):
    assert ragflow.version == version
    template_edit()

    asked = beat_run(django_capture_on_commit_callbacks)

    assert asked == 1
    agent.refresh_from_db()
    assert (agent.status, agent.template_version, agent.last_error) == (RemoteStatus.READY, "2", "")
    remote = ragflow.agents[agent.remote_id]
    assert answer_prompt(remote["dsl"]) == EDITED_PROMPT
    dataset_id = RagFlowDataset.objects.get(notebook=notebook).remote_id
    assert remote["dsl"]["components"]["Retrieval:KB"]["obj"]["params"]["kb_ids"] == [dataset_id]
    assert remote["dsl"]["components"]["LLM:Answer"]["obj"]["params"]["llm_id"] == settings.RAGFLOW_LLM_ID
    assert VERSION_KEY not in remote["dsl"]
    assert len(ragflow.requests_to("PUT", f"/api/v1/agents/{agent.remote_id}")) == 1
    assert len(ragflow.agents) == 1  # updated in place, not made again

    assert beat_run(django_capture_on_commit_callbacks) == 0  # now current: left alone
    assert len(ragflow.requests_to("PUT", f"/api/v1/agents/{agent.remote_id}")) == 1


def test_a_beat_run_asks_for_at_most_its_share_least_recently_touched_first(
    agent, ragflow, user, template_edit, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        other_notebook = services.notebook_create(owner=user, name="Zoology")
        chat_services.session_create(container=other_notebook, user=user)
    other = RagFlowAgent.objects.get(notebook=other_notebook)
    RagFlowAgent.objects.filter(pk=other.pk).update(updated_at=agent.updated_at - timedelta(days=1))
    template_edit()

    with django_capture_on_commit_callbacks(execute=True):
        assert provisioning.agents_outdated_update(limit=1) == 1

    assert dict(RagFlowAgent.objects.values_list("pk", "template_version")) == {agent.pk: "1", other.pk: "2"}
    assert beat_run(django_capture_on_commit_callbacks) == 1
    assert set(RagFlowAgent.objects.values_list("template_version", flat=True)) == {"2"}


def test_another_llm_setting_reaches_existing_agents_on_the_next_beat_run(
    agent, ragflow, settings, django_capture_on_commit_callbacks
):
    settings.RAGFLOW_LLM_ID = "deepseek-chat@DeepSeek"

    assert beat_run(django_capture_on_commit_callbacks) == 1

    agent.refresh_from_db()
    assert (agent.template_version, agent.llm_id, agent.last_error) == ("1", "deepseek-chat@DeepSeek", "")
    llm = ragflow.agents[agent.remote_id]["dsl"]["components"]["LLM:Answer"]["obj"]["params"]
    assert llm["llm_id"] == "deepseek-chat@DeepSeek"
    assert beat_run(django_capture_on_commit_callbacks) == 0


def test_an_agent_made_before_its_llm_was_recorded_is_sent_its_dsl_once(
    agent, ragflow, settings, django_capture_on_commit_callbacks
):
    RagFlowAgent.objects.filter(pk=agent.pk).update(llm_id="")

    assert beat_run(django_capture_on_commit_callbacks) == 1
    assert beat_run(django_capture_on_commit_callbacks) == 0

    agent.refresh_from_db()
    assert agent.llm_id == settings.RAGFLOW_LLM_ID
    assert len(ragflow.requests_to("PUT", f"/api/v1/agents/{agent.remote_id}")) == 1


def test_an_agent_replaced_while_its_update_was_sent_keeps_what_it_was_made_from(
    agent, ragflow, template_edit, monkeypatch, django_capture_on_commit_callbacks
):
    real_call = provisioning.ragflow_call

    def call_then_replace(fn):
        result = real_call(fn)
        # Meanwhile the agent was made again (and so from the new template) under another id.
        RagFlowAgent.objects.filter(pk=agent.pk).update(remote_id="replacement", template_version="made-anew")
        return result

    monkeypatch.setattr(provisioning, "ragflow_call", call_then_replace)
    template_edit()

    assert provisioning.agent_template_update(notebook_id=str(agent.notebook_id)) is True

    agent.refresh_from_db()
    assert (agent.remote_id, agent.template_version) == ("replacement", "made-anew")


def test_agents_on_the_current_template_are_not_asked_for(agent, ragflow, django_capture_on_commit_callbacks):
    assert beat_run(django_capture_on_commit_callbacks) == 0
    assert ragflow.requests_to("PUT", r"/api/v1/agents/.*") == []


def test_an_agent_ragflow_no_longer_has_keeps_its_version_and_says_why(
    agent, ragflow, settings, template_edit, django_capture_on_commit_callbacks
):
    del ragflow.agents[agent.remote_id]  # deleted by hand in RAGFlow's UI
    template_edit()

    assert beat_run(django_capture_on_commit_callbacks) == 1

    agent.refresh_from_db()
    assert (agent.status, agent.template_version) == (RemoteStatus.READY, "1")
    assert agent.last_error.startswith(
        f"Could not bring the agent to template version 2 and LLM {settings.RAGFLOW_LLM_ID}: "
    )
    assert "Only owner of canvas authorized" in agent.last_error
    assert beat_run(django_capture_on_commit_callbacks) == 1  # asked again on every run until it works


def test_an_update_during_an_outage_is_retried_until_ragflow_answers(
    agent, ragflow, template_edit, django_capture_on_commit_callbacks
):
    ragflow.fail("PUT", f"/api/v1/agents/{agent.remote_id}", times=2, status=502, code=None)
    template_edit()

    beat_run(django_capture_on_commit_callbacks)

    agent.refresh_from_db()
    assert (agent.template_version, agent.last_error) == ("2", "")
    assert len(ragflow.requests_to("PUT", f"/api/v1/agents/{agent.remote_id}")) == 3
    assert answer_prompt(ragflow.agents[agent.remote_id]["dsl"]) == EDITED_PROMPT


def test_an_update_still_failing_after_the_retries_is_recorded_not_raised(
    agent, ragflow, template_edit, django_capture_on_commit_callbacks
):
    ragflow.fail("PUT", f"/api/v1/agents/{agent.remote_id}", times=50, code=100, message="Redis is down")
    template_edit()

    beat_run(django_capture_on_commit_callbacks)

    agent.refresh_from_db()
    assert (agent.status, agent.template_version) == (RemoteStatus.READY, "1")
    assert agent.last_error.endswith("Redis is down")
    assert len(ragflow.requests_to("PUT", f"/api/v1/agents/{agent.remote_id}")) == tasks.RETRYING["max_retries"] + 1


def test_agents_can_be_updated_from_the_admin(
    agent, ragflow, admin_client, template_edit, django_capture_on_commit_callbacks
):
    template_edit()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/notebooks/ragflowagent/", {"action": "template_update", "_selected_action": [agent.pk]}, follow=True
        )

    assert response.status_code == 200
    assert "1 agent(s) will be brought up to date" in response.content.decode()
    agent.refresh_from_db()
    assert agent.template_version == "2"
    assert answer_prompt(ragflow.agents[agent.remote_id]["dsl"]) == EDITED_PROMPT


def test_without_ragflow_the_beat_run_asks_for_nothing(
    agent, ragflow, settings, template_edit, django_capture_on_commit_callbacks
):
    template_edit()
    settings.RAGFLOW_BASE_URL = ""

    assert beat_run(django_capture_on_commit_callbacks) == 0
    assert ragflow.requests_to("PUT", r"/api/v1/agents/.*") == []
