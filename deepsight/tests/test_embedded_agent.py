"""The embedded default: add a source, open a session, get a streamed answer citing it, offline."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat_sessions.models import ChatSession, MessageStatus, SessionChatMessage
from chat_sessions.tests.factories import NotebookFactory, SourceFactory
from deepsight.testing.sse import sse_request
from notebooks.agents import NO_SOURCES, NOTHING_FOUND
from notebooks.search import passages_rank, passages_split

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def notebook_id(owner_client):
    return owner_client.post("/api/v1/notebooks/", {"name": "Biology"}, format="json").json()["id"]


def ask(server, token, notebook_id, question):
    session = sse_request(
        "POST",
        f"{server.url}/api/v1/notebooks/{notebook_id}/chat/sessions/",
        json_body={},
        headers={"Authorization": f"Token {token}", "Accept": "application/json"},
    )
    session_id = json.loads(session.body())["session"]["id"]
    return list(
        sse_request(
            "POST",
            f"{server.url}/api/v1/notebooks/{notebook_id}/chat/sessions/{session_id}/messages/",
            json_body={"message": question},
            headers={"Authorization": f"Token {token}"},
        )
    )


def test_a_user_gets_a_streamed_answer_citing_their_source(
    live_server_asgi, owner_client, user_token, notebook_id, settings
):
    settings.LOCAL_AGENT_TOKEN_DELAY = 0.005
    owner_client.post(
        f"/api/v1/notebooks/{notebook_id}/sources/",
        {
            "file": SimpleUploadedFile(
                "cells.md", b"# Cells\n\nMitochondria produce ATP, the energy currency of the cell."
            )
        },
        format="multipart",
    )
    owner_client.post(
        f"/api/v1/notebooks/{notebook_id}/sources/",
        {"title": "Rivers", "content": "The Nile flows north through eleven countries."},
        format="json",
    )

    events = ask(live_server_asgi, user_token, notebook_id, "What do mitochondria produce?")

    tokens = [e for e in events if e.type == "token"]
    assert len(tokens) > 5
    text = "".join(e.data["text"] for e in tokens)
    assert "Mitochondria produce ATP" in text
    assert "Nile" not in text
    reference = next(e for e in events if e.type == "reference")
    assert [s["title"] for s in reference.data["sources"]] == ["cells.md"]
    assert events[-1].type == "done"
    saved = SessionChatMessage.objects.get(pk=events[-1].data["message"]["id"])
    assert saved.status == MessageStatus.COMPLETE
    assert saved.metadata["sources"][0]["title"] == "cells.md"


def test_the_local_agent_says_so_when_nothing_matches(live_server_asgi, owner_client, user_token, notebook_id):
    owner_client.post(
        f"/api/v1/notebooks/{notebook_id}/sources/",
        {"title": "Rivers", "content": "The Nile flows north."},
        format="json",
    )

    events = ask(live_server_asgi, user_token, notebook_id, "Explain quantum chromodynamics")

    assert "".join(e.data["text"] for e in events if e.type == "token") == NOTHING_FOUND
    assert not [e for e in events if e.type == "reference"]


def test_the_local_agent_asks_for_sources_when_there_are_none(live_server_asgi, user_token, notebook_id):
    events = ask(live_server_asgi, user_token, notebook_id, "Anything?")

    assert "".join(e.data["text"] for e in events if e.type == "token") == NO_SOURCES


def ask_in_scoped_session(client, notebook_id, source_ids, question):
    """A new session scoped to `source_ids`, asked one question; the JSON turn's response."""
    session_id = client.post(
        f"/api/v1/notebooks/{notebook_id}/chat/sessions/", {"rag_document_ids": source_ids}, format="json"
    ).json()["session"]["id"]
    return client.post(
        f"/api/v1/notebooks/{notebook_id}/chat/sessions/{session_id}/messages/",
        {"message": question},
        format="json",
        HTTP_ACCEPT="application/json",
    )


def test_a_session_limited_to_some_sources_only_searches_those(owner_client, notebook_id):
    first = owner_client.post(
        f"/api/v1/notebooks/{notebook_id}/sources/",
        {"title": "A", "content": "Alpha particles are helium nuclei."},
        format="json",
    ).json()["id"]
    owner_client.post(
        f"/api/v1/notebooks/{notebook_id}/sources/",
        {"title": "B", "content": "Beta particles are electrons."},
        format="json",
    )

    body = ask_in_scoped_session(owner_client, notebook_id, [first], "What are beta particles?").json()

    assert "electrons" not in body["assistant_message"]["message"]


def test_a_session_scoped_to_ids_that_name_no_source_of_the_notebook_is_refused(owner_client, notebook_id, user):
    """Such a session answered as if the notebook had no sources; now it is a 400 naming the ids."""
    own = owner_client.post(
        f"/api/v1/notebooks/{notebook_id}/sources/", {"title": "A", "content": "Alpha particles."}, format="json"
    ).json()["id"]
    elsewhere = str(SourceFactory(notebook=NotebookFactory(owner=user)).id)
    url = f"/api/v1/notebooks/{notebook_id}/chat/sessions/"

    refused = owner_client.post(
        url, {"rag_document_ids": [own, "not-a-source", "Ky\u0c7d", elsewhere, "not-a-source"]}, format="json"
    )
    accepted = owner_client.post(url, {"rag_document_ids": [own, own.upper()]}, format="json")

    assert refused.status_code == 400
    assert refused.json() == {
        "rag_document_ids": [f"No such document in this notebook: not-a-source, Ky\u0c7d, {elsewhere}."]
    }
    assert accepted.status_code == 201
    assert ChatSession.objects.filter(container_id=notebook_id).count() == 1


def test_a_message_sent_from_the_browsable_apis_form_leads_to_the_conversation(client, user, notebook_id):
    """A browser's form post waits for the answer, then is sent to the history page (post, redirect, get)."""
    client.force_login(user)
    url = f"/api/v1/notebooks/{notebook_id}/chat/sessions/"
    session_id = client.post(url, {}, content_type="application/json").json()["session"]["id"]
    messages = f"{url}{session_id}/messages/"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

    sent = client.post(messages, {"message": "What is here?\nAnything?"}, HTTP_ACCEPT=browser)
    page = client.get(sent["Location"], HTTP_ACCEPT=browser)

    assert sent.status_code == 303
    assert sent["Location"] == messages
    assert page.status_code == 200
    assert "What is here?" in page.content.decode()
    saved = SessionChatMessage.objects.filter(session_id=session_id).order_by("message_order")
    assert [m.status for m in saved] == [MessageStatus.COMPLETE, MessageStatus.COMPLETE]
    assert saved[0].message == "What is here?\nAnything?"


def test_bm25_prefers_the_passage_that_matches_more_rare_terms():
    passages = [
        *passages_split(source_id="1", title="Plants", content="Chlorophyll absorbs light. Plants are green."),
        *passages_split(source_id="2", title="Animals", content="Animals eat plants. Plants grow."),
    ]

    best = passages_rank(question="How does chlorophyll absorb light?", passages=passages)

    assert [p.title for p in best] == ["Plants"]
    assert best[0].score > 0


def test_long_sources_are_split_into_passages_of_bounded_size():
    content = "\n\n".join(" ".join(f"w{i}_{j}" for j in range(80)) for i in range(5))

    passages = passages_split(source_id="1", title="Long", content=content)

    assert all(len(p.text.split()) <= 120 for p in passages)
    assert " ".join(p.text for p in passages).split() == content.split()
