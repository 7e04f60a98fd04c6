"""The notebooks' admin: a source's page for any size of text, and RAGFlow actions that say what they did."""

from __future__ import annotations

import pytest

from chat_sessions.tests.factories import NotebookFactory, SourceFactory
from chat_sessions.tests.test_admin import change_form
from notebooks.models import CleanupKind, RagFlowAgent, RemoteCleanup

pytestmark = pytest.mark.django_db


def test_a_source_with_megabytes_of_text_is_edited_on_a_page_that_shows_its_start(admin_client):
    text = "Chloroplasts hold chlorophyll. " * 70_000  # 2.1 MB, as a large upload's text is
    source = SourceFactory(title="Big", content=text)
    url = f"/admin/notebooks/source/{source.pk}/change/"

    page = admin_client.get(url)
    saved = admin_client.post(url, {**change_form(admin_client, url), "title": "Big, renamed"})

    assert len(page.content) < 100_000
    assert "Chloroplasts hold chlorophyll." in page.content.decode()
    assert f"({len(text):,} characters)" in page.content.decode()
    assert saved.status_code == 302, saved.content.decode()[:2000]
    source.refresh_from_db()
    assert (source.title, source.content) == ("Big, renamed", text)


def test_sources_are_added_where_their_text_is_read_not_in_the_admin(admin_client):
    assert admin_client.get("/admin/notebooks/source/add/").status_code == 403


def _agent() -> RagFlowAgent:
    return RagFlowAgent.objects.create(
        notebook=NotebookFactory(), title="deepsight-nb", remote_id="agent-1", template_name="kb", template_version="1"
    )


def _cleanup() -> RemoteCleanup:
    return RemoteCleanup.objects.create(
        kind=CleanupKind.NOTEBOOK, label="deepsight-x", notebook_id=NotebookFactory().pk, remote_ids={"dataset_id": "d"}
    )


@pytest.mark.parametrize(
    ("url", "action", "row"),
    [
        ("/admin/notebooks/source/", "ragflow_retry", SourceFactory),
        ("/admin/notebooks/ragflowagent/", "template_update", _agent),
        ("/admin/notebooks/remotecleanup/", "retry", _cleanup),
    ],
    ids=["sources", "agents", "clean-ups"],
)
def test_a_ragflow_action_says_nothing_was_queued_while_ragflow_is_not_configured(
    admin_client, settings, url, action, row
):
    settings.RAGFLOW_BASE_URL = ""
    selected = row()

    page = admin_client.post(url, {"action": action, "_selected_action": [selected.pk]}, follow=True).content.decode()

    assert "RAGFlow is not configured (RAGFLOW_BASE_URL), so nothing was queued." in page
    assert "queued again" not in page
    assert "brought up to date" not in page


def test_updating_agents_without_a_chat_model_says_why_nothing_happens(admin_client, settings):
    settings.RAGFLOW_BASE_URL, settings.RAGFLOW_LLM_ID = "http://ragflow.invalid", ""
    agent = _agent()

    page = admin_client.post(
        "/admin/notebooks/ragflowagent/", {"action": "template_update", "_selected_action": [agent.pk]}, follow=True
    ).content.decode()

    assert "RAGFLOW_LLM_ID is not set, so no agent can be updated." in page
    assert "brought up to date" not in page
