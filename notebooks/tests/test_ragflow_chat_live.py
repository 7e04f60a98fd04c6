"""End to end over real sockets: deepsight under uvicorn, RAGFlow faked, a user asking a notebook."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request

import pytest

from chat_sessions.models import ChatSession, CleanupStatus, MessageStatus, SessionChatMessage
from deepsight.testing.sse import sse_request
from notebooks import services, tasks
from notebooks.models import ParseStatus, RagFlowAgent, RemoteCleanup, RemoteStatus, Source
from notebooks.ragflow.agent import (
    AGENT_MISSING,
    AUTH_FAILED,
    BROKE_OFF,
    BROKE_OFF_AT_ONCE,
    NO_LLM,
    NOT_READY,
    SETUP_FAILED,
)
from notebooks.tests.conftest import EDITED_PROMPT, RAGFLOW_TEST_KEY, answer_prompt

pytestmark = [pytest.mark.django_db(transaction=True)]

NOTES = (
    "Photosynthesis converts light energy into chemical energy stored in glucose.\n\n"
    "Chlorophyll absorbs mostly blue and red light, which is why leaves look green."
)
QUESTION = "How does photosynthesis store light energy?"


def auth(token):
    return {"Authorization": f"Token {token}"}


@pytest.fixture
def source(ragflow, user):
    notebook = services.notebook_create(owner=user, name="Botany")
    created = services.source_create_text(notebook=notebook, title="Field notes", content=NOTES)
    created.refresh_from_db()
    assert created.parse_status == ParseStatus.READY
    return created


@pytest.fixture
def chat(live_server_asgi, source, user_token):
    """A chat session opened over the API, as the browser opens a tab."""
    return chat_open(live_server_asgi, source, user_token)


def chat_open(server, source, token):
    url = f"{server.url}/api/v1/notebooks/{source.notebook_id}/chat/sessions/"
    request = urllib.request.Request(
        url,
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", **auth(token)},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        session = json.loads(response.read())["session"]
    return ChatSession.objects.get(pk=session["id"])


def ask(server, session, token, text=QUESTION):
    url = f"{server.url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/messages/"
    stream = sse_request("POST", url, json_body={"message": text}, headers=auth(token))
    events = list(stream)
    assert stream.status == 200
    return events


def answer_text(events):
    return "".join(e.data["text"] for e in events if e.type == "token")


def test_a_question_streams_a_cited_answer_from_the_notebooks_agent(
    live_server_asgi, ragflow, source, chat, user_token
):
    events = ask(live_server_asgi, chat, user_token)

    types = [e.type for e in events]
    assert types[0] == "start"
    assert types[-1] == "done"
    assert types.count("reference") == 1
    assert set(types[1:-1]) == {"token", "reference"}
    assert types.count("token") > 5  # streamed piece by piece, not in one block
    text = answer_text(events)
    assert text.startswith("Your sources say: Photosynthesis converts light energy into chemical energy")
    cited = int(re.search(r"\[ID:(\d+)\]", text).group(1))
    sources = next(e for e in events if e.type == "reference").data["sources"]
    quoted = next(s for s in sources if s["index"] == cited)
    assert quoted["title"] == "Field notes"
    assert quoted["source_id"] == str(source.pk)
    assert quoted["document_id"] == source.remote_document_id
    assert quoted["snippet"].startswith("Photosynthesis converts light energy")

    saved = SessionChatMessage.objects.get(pk=events[-1].data["message"]["id"])
    assert saved.status == MessageStatus.COMPLETE
    assert saved.message == text
    assert saved.metadata["sources"] == sources
    assert saved.metadata["model"] == "ragflow"
    chat.refresh_from_db()
    agent = RagFlowAgent.objects.get(notebook_id=chat.container_id)
    assert chat.remote_agent_id == agent.remote_id
    assert ragflow.sessions[chat.remote_session_id]["agent_id"] == agent.remote_id
    body = ragflow.requests_to("POST", f"/api/v1/agents/{agent.remote_id}/completions")[0].json
    assert body == {"question": QUESTION, "query": QUESTION, "stream": True, "session_id": chat.remote_session_id}


def test_the_next_question_continues_the_same_ragflow_session(live_server_asgi, ragflow, chat, user_token):
    ask(live_server_asgi, chat, user_token)
    chat.refresh_from_db()
    first_session = chat.remote_session_id

    events = ask(live_server_asgi, chat, user_token, text="Why are leaves green?")

    assert events[-1].type == "done"
    assert "Chlorophyll absorbs mostly blue and red light" in answer_text(events)
    chat.refresh_from_db()
    assert chat.remote_session_id == first_session
    assert len(ragflow.requests_to("POST", r"/api/v1/agents/\w+/sessions")) == 1
    assert [m["role"] for m in ragflow.sessions[first_session]["message"]] == ["assistant", *["user", "assistant"] * 2]


def test_after_a_template_update_open_conversations_go_on_and_new_ones_get_the_new_agent(
    live_server_asgi, ragflow, source, chat, user_token, template_edit
):
    ask(live_server_asgi, chat, user_token)
    chat.refresh_from_db()
    conversation = chat.remote_session_id
    template_edit()

    assert tasks.agents_outdated_update.delay().get() == 1

    events = ask(live_server_asgi, chat, user_token, text="Why are leaves green?")
    assert events[-1].type == "done"
    chat.refresh_from_db()
    # The open conversation keeps its RAGFlow session, and so its memory and the DSL it began with.
    assert chat.remote_session_id == conversation
    assert answer_prompt(ragflow.sessions[conversation]["dsl"]) != EDITED_PROMPT
    assert len(ragflow.sessions[conversation]["message"]) == 5

    newer = chat_open(live_server_asgi, source, user_token)
    events = ask(live_server_asgi, newer, user_token)
    assert events[-1].type == "done"
    assert "Photosynthesis converts light energy" in answer_text(events)
    newer.refresh_from_db()
    assert answer_prompt(ragflow.sessions[newer.remote_session_id]["dsl"]) == EDITED_PROMPT
    assert len(ragflow.agents) == 1


def test_reasoning_is_streamed_apart_from_the_answer(live_server_asgi, ragflow, chat, user_token):
    ragflow.script(thinking=["Look", " at the notes."], tokens=["Glucose", "."])

    events = ask(live_server_asgi, chat, user_token)

    assert "".join(e.data["text"] for e in events if e.type == "reasoning") == "Look at the notes."
    assert answer_text(events) == "Glucose."
    saved = SessionChatMessage.objects.get(pk=events[-1].data["message"]["id"])
    assert (saved.message, saved.metadata["reasoning"]) == ("Glucose.", "Look at the notes.")


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"error_after": 2}, id="code-500-frame"),
        pytest.param({"drop_after": 2}, id="dropped-connection"),
    ],
)
def test_a_ragflow_failure_mid_answer_keeps_the_partial_text_and_the_next_question_works(
    live_server_asgi, ragflow, chat, user_token, fault
):
    ragflow.script(tokens=["Light", " becomes", " sugar", " eventually."], **fault)

    events = ask(live_server_asgi, chat, user_token)

    assert [e.type for e in events] == ["start", "token", "token", "error"]
    error = events[-1].data
    assert (error["message"], error["code"]) == (BROKE_OFF, "upstream_error")
    saved = SessionChatMessage.objects.get(pk=events[0].data["assistant_message_id"])
    assert (saved.status, saved.message) == (MessageStatus.ERROR, "Light becomes")
    assert saved.metadata["error"]["message"] == BROKE_OFF

    after = ask(live_server_asgi, chat, user_token)

    assert after[-1].type == "done"
    assert answer_text(after).startswith("Your sources say:")


def test_an_invalid_api_key_gives_a_clear_error_without_the_key_and_the_chat_recovers(
    live_server_asgi, ragflow, settings, chat, user_token
):
    settings.RAGFLOW_API_KEY = "ragflow-leakedWRONGkey"

    events = ask(live_server_asgi, chat, user_token)

    assert [e.type for e in events] == ["start", "error"]
    assert (events[-1].data["message"], events[-1].data["code"]) == (AUTH_FAILED, "upstream_auth")
    saved = SessionChatMessage.objects.get(pk=events[0].data["assistant_message_id"])
    assert saved.status == MessageStatus.ERROR
    everything_shown = json.dumps([e.data for e in events]) + json.dumps(saved.metadata) + saved.message
    assert "leakedWRONGkey" not in everything_shown
    assert RAGFLOW_TEST_KEY not in everything_shown

    settings.RAGFLOW_API_KEY = RAGFLOW_TEST_KEY
    after = ask(live_server_asgi, chat, user_token)

    assert after[-1].type == "done"


def test_a_question_before_the_agent_exists_says_it_is_being_set_up(
    live_server_asgi, ragflow, source, user, user_token
):
    session = ChatSession.objects.create(container_id=source.notebook_id, created_by=user, title="New Chat")
    ragflow.fail("POST", "/api/v1/agents", times=100, code=100, message="canvas store down")

    events = ask(live_server_asgi, session, user_token)

    assert [e.type for e in events] == ["start", "error"]
    assert (events[-1].data["message"], events[-1].data["code"]) == (NOT_READY, "agent_not_ready")
    assert "canvas store down" in RagFlowAgent.objects.get(notebook_id=source.notebook_id).last_error


def _agent_being_created(source, user):
    """A session of a notebook whose agent a worker has been asked to create, and not yet has."""
    from notebooks.provisioning import agent_title
    from notebooks.ragflow.dsl import DEFAULT_TEMPLATE, template_load

    template = template_load(name=DEFAULT_TEMPLATE)
    RagFlowAgent.objects.create(
        notebook_id=source.notebook_id,
        title=agent_title(notebook_id=source.notebook_id),
        template_name=template.name,
        template_version=template.version,
    )
    return ChatSession.objects.create(container_id=source.notebook_id, created_by=user, title="New Chat")


def test_a_first_question_asked_while_the_agent_is_being_created_waits_for_it_and_is_answered(
    live_server_asgi, ragflow, source, user, user_token
):
    from notebooks import provisioning

    session = _agent_being_created(source, user)
    worker = threading.Timer(1.0, lambda: provisioning.agent_provision(notebook_id=str(source.notebook_id)))
    worker.start()  # the worker gets to it a second after the question

    events = ask(live_server_asgi, session, user_token)
    worker.join()

    # Before, the question failed at once: "still being set up in RAGFlow. Try again in a minute."
    assert events[-1].type == "done", events[-1].data
    assert "light energy" in answer_text(events)
    assert [e.type for e in events].count("reference") == 1


def test_a_question_waiting_for_an_agent_whose_creation_fails_says_so_without_waiting_out_the_wait(
    live_server_asgi, ragflow, source, user, user_token
):
    from notebooks import provisioning

    session = _agent_being_created(source, user)
    ragflow.fail("POST", "/api/v1/agents", times=100, code=100, message="canvas store down")
    worker = threading.Timer(0.5, lambda: provisioning.agent_provision(notebook_id=str(source.notebook_id)))
    worker.start()

    started = time.monotonic()
    events = ask(live_server_asgi, session, user_token)
    worker.join()

    assert [e.type for e in events] == ["start", "error"]
    assert (events[-1].data["message"], events[-1].data["code"]) == (SETUP_FAILED, "agent_not_ready")
    assert time.monotonic() - started < 10  # not the 30 s wait


def test_a_question_whose_agent_is_not_created_within_the_wait_says_it_is_being_set_up(
    live_server_asgi, ragflow, source, user, user_token, settings
):
    settings.RAGFLOW_AGENT_READY_WAIT = 1.0
    session = _agent_being_created(source, user)

    started = time.monotonic()
    events = ask(live_server_asgi, session, user_token)

    assert [e.type for e in events] == ["start", "error"]
    assert (events[-1].data["message"], events[-1].data["code"]) == (NOT_READY, "agent_not_ready")
    assert 1.0 <= time.monotonic() - started < 10


def test_inline_think_tags_are_streamed_as_reasoning_too(live_server_asgi, ragflow, chat, user_token):
    ragflow.script(tokens=["<thi", "nk>Check the", " notes.</think>", "Glucose", "."])

    events = ask(live_server_asgi, chat, user_token)

    assert "".join(e.data["text"] for e in events if e.type == "reasoning") == "Check the notes."
    assert answer_text(events) == "Glucose."


def test_a_ragflow_session_that_disappeared_is_replaced_and_the_question_answered(
    live_server_asgi, ragflow, chat, user_token
):
    ask(live_server_asgi, chat, user_token)
    chat.refresh_from_db()
    lost = chat.remote_session_id
    ragflow.sessions.clear()  # deleted in RAGFlow behind deepsight's back

    events = ask(live_server_asgi, chat, user_token)

    assert events[-1].type == "done"
    assert answer_text(events).startswith("Your sources say:")
    chat.refresh_from_db()
    assert chat.remote_session_id not in ("", lost)
    assert chat.remote_session_id in ragflow.sessions


def test_an_agent_deleted_in_ragflow_is_made_again_and_the_next_question_answered(
    live_server_asgi, ragflow, chat, user_token
):
    """Found by a probe: every question failed for good, and the admin showed the agent ready."""
    ask(live_server_asgi, chat, user_token)
    lost = RagFlowAgent.objects.get(notebook_id=chat.container_id).remote_id
    ragflow.agents.clear()  # deleted in RAGFlow behind deepsight's back
    ragflow.sessions.clear()

    failed = ask(live_server_asgi, chat, user_token)
    agent = RagFlowAgent.objects.get(notebook_id=chat.container_id)
    agent_after_failure = (agent.remote_id, agent.status, agent.last_error)
    events = ask(live_server_asgi, chat, user_token)

    assert failed[-1].type == "error"
    assert failed[-1].data["message"] == AGENT_MISSING
    assert agent_after_failure[:2] == ("", RemoteStatus.ERROR)
    assert "no longer had this agent" in agent_after_failure[2]
    assert events[-1].type == "done"
    assert answer_text(events).startswith("Your sources say:")
    agent.refresh_from_db()
    assert (agent.status, agent.last_error) == (RemoteStatus.READY, "")
    assert agent.remote_id not in ("", lost)
    assert agent.remote_id in ragflow.agents
    replaced = RemoteCleanup.objects.get(notebook_id=chat.container_id)  # in case RAGFlow had it after all
    assert (replaced.remote_ids, replaced.status) == ({}, CleanupStatus.DONE)


def test_without_a_chat_model_the_question_says_what_is_missing_not_to_try_again(
    live_server_asgi, ragflow, settings, source, user, user_token
):
    settings.RAGFLOW_LLM_ID = ""
    session = ChatSession.objects.create(container_id=source.notebook_id, created_by=user, title="New Chat")

    events = ask(live_server_asgi, session, user_token)

    assert [e.type for e in events] == ["start", "error"]
    assert (events[-1].data["message"], events[-1].data["code"]) == (NO_LLM, "not_configured")


def test_an_answer_that_breaks_off_before_its_first_word_does_not_claim_text_was_kept(
    live_server_asgi, ragflow, chat, user_token
):
    ragflow.script(tokens=["Never", " said."], error_after=0)

    events = ask(live_server_asgi, chat, user_token)

    assert [e.type for e in events] == ["start", "error"]
    assert events[-1].data["message"] == BROKE_OFF_AT_ONCE


def test_an_answer_says_how_many_sources_were_not_searched_while_they_are_processed(
    live_server_asgi, ragflow, source, chat, user_token
):
    """Found by a probe: a question asked while a source uploaded got "not found", with no hint why."""
    for title, status in (("Still parsing", ParseStatus.PARSING), ("Still uploading", ParseStatus.PENDING)):
        Source.objects.create(notebook_id=source.notebook_id, title=title, content="x", parse_status=status)

    events = ask(live_server_asgi, chat, user_token)
    Source.objects.filter(notebook_id=source.notebook_id).update(parse_status=ParseStatus.READY)
    later = ask(live_server_asgi, chat, user_token)

    assert events[-1].type == "done"
    assert answer_text(events).endswith("_(2 sources are still being processed, so they were not searched.)_")
    assert events[-1].data["message"]["message"] == answer_text(events)
    assert "still being processed" not in answer_text(later)
