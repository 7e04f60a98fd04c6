"""Fixtures for the RAGFlow side: a fake RAGFlow on loopback, and deepsight configured to use it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from chat_sessions.agents.registry import agent_backends_reset
from deepsight.testing.fake_ragflow import FakeRagFlow
from notebooks.ragflow import dsl

RAGFLOW_TEST_KEY = "ragflow-TESTkey7f3a9c1e5b"


@pytest.fixture
def fake_ragflow(request):
    """A fake RAGFlow (v0.24 unless the test is marked `@pytest.mark.ragflow_version((0, 26))`)."""
    marker = request.node.get_closest_marker("ragflow_version")
    version = marker.args[0] if marker else (0, 24)
    fake = FakeRagFlow(api_key=RAGFLOW_TEST_KEY, version=version).start()
    yield fake
    fake.stop()


@pytest.fixture
def eager_retries():
    """Let eager tasks retry as a worker would, and still fail the test when a task crashes.

    With `task_eager_propagates` Celery raises `Retry` out of an eager task instead of running it
    again, so it is turned off here; a task that fails for any other reason is collected through
    the `task_failure` signal and fails the test at teardown instead of passing unseen.
    """
    from celery.signals import task_failure

    from deepsight.celery import app

    propagates = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    failures = []

    def collect(sender=None, exception=None, **kwargs):
        failures.append(f"{sender.name}: {exception!r}")

    task_failure.connect(collect, weak=False)
    try:
        yield failures
    finally:
        task_failure.disconnect(collect)
        app.conf.task_eager_propagates = propagates
    assert failures == [], "a Celery task failed"


@pytest.fixture
def ragflow(settings, fake_ragflow, eager_retries):
    """deepsight talking to the fake RAGFlow: notebooks, sources and chats all go through it."""
    settings.RAGFLOW_BASE_URL = fake_ragflow.url
    settings.RAGFLOW_API_KEY = RAGFLOW_TEST_KEY
    settings.RAGFLOW_LLM_ID = "qwen-plus@Tongyi-Qianwen"
    settings.RAGFLOW_RETRY_BACKOFF = 0.01
    settings.RAGFLOW_TIMEOUT = 5.0
    agent_backends_reset()
    yield fake_ragflow
    agent_backends_reset()


#: The answer prompt of the template as `template_edit` changes it.
EDITED_PROMPT = "You are the notebook's assistant, version two. Cite every claim.\n\n{Retrieval:KB@formalized_content}"


def answer_prompt(remote_dsl: dict) -> str:
    """The answer prompt of an agent DSL as RAGFlow holds it."""
    return remote_dsl["components"]["LLM:Answer"]["obj"]["params"]["sys_prompt"]


@pytest.fixture
def template_deploy(tmp_path, monkeypatch):
    """Call it with a change to make to the repository's agent template: that template is deployed."""

    def deploy(change: Callable[[dict], None]) -> None:
        raw = json.loads((dsl.TEMPLATES_DIR / f"{dsl.DEFAULT_TEMPLATE}.json").read_text(encoding="utf-8"))
        change(raw)
        (tmp_path / f"{dsl.DEFAULT_TEMPLATE}.json").write_text(json.dumps(raw), encoding="utf-8")
        monkeypatch.setattr(dsl, "TEMPLATES_DIR", tmp_path)
        dsl.template_load.cache_clear()

    yield deploy
    dsl.template_load.cache_clear()  # the next test reads the template in the repository again


@pytest.fixture
def template_edit(template_deploy):
    """Call it to deploy an edited agent template: a new answer prompt and its version raised to "2"."""

    def edit(raw: dict) -> None:
        raw[dsl.VERSION_KEY] = "2"
        raw["components"]["LLM:Answer"]["obj"]["params"]["sys_prompt"] = EDITED_PROMPT

    return lambda: template_deploy(edit)


def pytest_configure(config):
    config.addinivalue_line("markers", "ragflow_version(version): the RAGFlow version the fake imitates")
