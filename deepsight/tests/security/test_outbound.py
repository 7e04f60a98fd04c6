"""Outbound safety: upstream addresses come only from settings, API keys and internal error text never leak.

deepsight calls two upstreams (the RAGFlow API and an OpenAI-compatible model server). Nothing a
client sends can choose where those calls go, the keys for them appear in no log line, error,
event, stored message or response, and what goes wrong inside is logged, not shown.
"""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from chat_sessions.models import SessionChatMessage
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory
from deepsight.testing.fake_openai import FakeOpenAI
from deepsight.testing.sse import sse_request
from deepsight.tests.security.live import send
from notebooks import services as notebook_services
from notebooks.tests.conftest import RAGFLOW_TEST_KEY

pytestmark = pytest.mark.django_db

OPENAI_KEY = "sk-test-secret"


@pytest.fixture
def decoy():
    """Another OpenAI-compatible server: a request reaching it means a client chose the address."""
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def test_no_input_of_the_api_takes_an_address(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(target))
    schemas = yaml.safe_load(target.read_text())["components"]["schemas"]

    suspicious = []
    for name, schema in schemas.items():
        if not name.endswith("Request"):  # COMPONENT_SPLIT_REQUEST: inputs are the *Request schemas
            continue
        for field, spec in (schema.get("properties") or {}).items():
            if any(word in field.lower() for word in ("url", "uri", "host", "endpoint", "base", "server")):
                suspicious.append(f"{name}.{field}")
            if spec.get("format") in ("uri", "url", "hostname", "ipv4", "ipv6"):
                suspicious.append(f"{name}.{field} ({spec['format']})")

    assert not suspicious, f"inputs that could steer an upstream call: {suspicious}"
    assert any(name.endswith("Request") for name in schemas)  # the scan looked at real inputs


@pytest.mark.django_db(transaction=True)
def test_an_address_sent_as_the_model_name_is_only_a_name(live_server_asgi, openai_agent, decoy, user, user_token):
    session = ChatSessionFactory(
        container=NotebookFactory(owner=user), created_by=user, llm_model_name=f"{decoy.base_url}/chat/completions"
    )

    events = list(send(live_server_asgi.url, session, user_token, "Where do you call?"))

    assert events[-1].type == "done"
    assert decoy.requests == []
    assert openai_agent.requests[-1]["model"] == f"{decoy.base_url}/chat/completions"


@pytest.mark.django_db(transaction=True)
def test_an_address_in_the_body_or_headers_of_a_send_goes_nowhere(live_server_asgi, openai_agent, decoy, user):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    token = Token.objects.create(user=user).key
    url = f"{live_server_asgi.url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/messages/"

    headers = {"Authorization": f"Token {token}"}
    refused = sse_request("POST", url, json_body={"message": "hi", "base_url": decoy.base_url}, headers=headers)
    accepted = list(
        sse_request(
            "POST",
            url,
            json_body={"message": "hi"},
            headers={
                "Authorization": f"Token {token}",
                "X-Forwarded-Host": decoy.base_url.split("//")[1],
                "Host": decoy.base_url.split("//")[1].split("/")[0],
            },
        )
    )

    assert refused.status == 400
    assert "base_url" in json.loads(refused.body())
    assert accepted[-1].type == "done"
    assert decoy.requests == []


OPENAI_FAULTS = [{"status": 401}, {"status": 500}, {"malformed_after": 1}, {"fail_after": 1}, {"error_after": 1}]


@pytest.mark.django_db(transaction=True)
def test_the_model_servers_key_is_in_no_log_event_stored_message_or_response(
    live_server_asgi, openai_agent, user, user_token, caplog
):
    caplog.set_level(logging.DEBUG)
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    shown = []
    for fault in OPENAI_FAULTS:
        openai_agent.script(tokens=["a", "b", "c"], **fault)
        shown.append(json.dumps([event.data for event in send(live_server_asgi.url, session, user_token)]))

    assert openai_agent.headers[-1]["Authorization"] == f"Bearer {OPENAI_KEY}"  # the key was really in use
    assert caplog.records, "nothing was logged: the check proves nothing"
    assert OPENAI_KEY not in caplog.text
    assert all(OPENAI_KEY not in text for text in shown)
    assert "upstream says no" in caplog.text  # the upstream's refusal is logged for the operator...
    assert all("upstream says no" not in text for text in shown)  # ...and never shown to the user
    for message in SessionChatMessage.objects.all():
        assert OPENAI_KEY not in message.message + json.dumps(message.metadata)


@pytest.mark.django_db(transaction=True)
def test_the_ragflow_key_is_in_no_log_event_stored_message_or_response(
    live_server_asgi, ragflow, user, user_token, caplog
):
    caplog.set_level(logging.DEBUG)
    notebook = notebook_services.notebook_create(owner=user, name="Botany")
    notebook_services.source_create_text(notebook=notebook, title="Notes", content="Light becomes sugar.")
    session = ChatSessionFactory(container=notebook, created_by=user)
    shown = []
    ragflow.fail("POST", r"/api/v1/agents/[^/]+/completions", times=1, status=502, code=None)
    ragflow.script(tokens=["Light", " becomes"], error_after=1)
    ragflow.script(tokens=["Light", " becomes"], drop_after=1)
    for _ in range(3):
        shown.append(json.dumps([event.data for event in send(live_server_asgi.url, session, user_token, "Light?")]))
    api = Client()
    api.force_login(user)
    pages = [api.get(url).content.decode() for url in ("/api/v1/notebooks/", f"/api/v1/notebooks/{notebook.id}/")]

    assert any(request.path.endswith("/completions") for request in ragflow.requests)
    assert caplog.records
    assert RAGFLOW_TEST_KEY not in caplog.text
    assert all(RAGFLOW_TEST_KEY not in text for text in shown + pages)
    for message in SessionChatMessage.objects.all():
        assert RAGFLOW_TEST_KEY not in message.message + json.dumps(message.metadata)


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_failure_inside_a_generation_shows_a_plain_message_not_its_details(
    live_server_asgi, openai_agent, user, user_token, monkeypatch, caplog
):
    from chat_sessions.agents.openai import OpenAICompatibleAgent

    async def explode(self, *, turn):
        raise RuntimeError("password=hunter2 host=db.internal:5432 in /srv/deepsight/secret.py")
        yield  # pragma: no cover

    monkeypatch.setattr(OpenAICompatibleAgent, "stream_reply", explode)
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)

    events = list(send(live_server_asgi.url, session, user_token))

    assert events[-1].type == "error"
    assert events[-1].data["code"] == "internal_error"
    saved = SessionChatMessage.objects.get(pk=events[0].data["assistant_message_id"])
    for shown in (json.dumps([event.data for event in events]), json.dumps(saved.metadata)):
        assert "hunter2" not in shown
        assert "db.internal" not in shown
        assert "secret.py" not in shown
    assert "hunter2" in caplog.text  # kept for the operator, in the log


def test_an_unexpected_failure_in_a_view_is_a_bare_500(monkeypatch, user):
    def explode(**kwargs):
        raise RuntimeError("password=hunter2 host=db.internal:5432")

    monkeypatch.setattr("chat_sessions.services.session_create", explode)
    notebook = NotebookFactory(owner=user)
    browser = Client(raise_request_exception=False)
    browser.force_login(user)

    for accept in ("application/json", "text/html"):
        response = browser.post(
            f"/api/v1/notebooks/{notebook.id}/chat/sessions/", {}, content_type="application/json", HTTP_ACCEPT=accept
        )
        assert response.status_code == 500
        assert b"hunter2" not in response.content
        assert b"db.internal" not in response.content
        assert b"Traceback" not in response.content
