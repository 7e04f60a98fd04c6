"""Schemathesis against the OpenAPI schema served at /api/v1/schema/, in process through the WSGI app.

Every operation of the schema, with valid data (positive) and invalid data (negative), some cases
aimed at the owner's real objects and some at ids made up by Hypothesis: no 5xx ever, documented
responses match their schema, negative data is refused with a 4xx, and an operation that declares
authentication enforces it. Before the owner's request, the same request is replayed with a second
user's token (the BOLA hook): on the owner's objects it must be a 404 and change nothing.

The streaming send runs with `Accept: application/json` (the schema documents both answers): the
test client cannot hold an event stream open, and the event stream has its own tests over real
sockets. A stateful run follows links between operations (drf-spectacular writes none: Schemathesis
infers most, and those from a new notebook to the routes under it are added here).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from chat_sessions.models import ChatSession, SessionChatMessage
from deepsight.tests.security.conftest import world_create
from deepsight.tests.security.test_permission_matrix import snapshot
from notebooks.models import Notebook, Source

# The resume route streams; served through WSGI, Django says so (and reads the whole stream).
pytestmark = pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")

# Authentication enforcement is proven for every route and method by test_permission_matrix.py.
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]
EXAMPLES = 15
JSON = "application/json"
SEND = "POST /api/v1/notebooks/{container_id}/chat/sessions/{session_id}/messages/"
RESUME = "GET /api/v1/notebooks/{container_id}/chat/sessions/{session_id}/messages/{message_id}/stream/"
# A send waits for its generation and a resume reads the saved answer: both from other threads,
# which must see committed rows.
TRANSACTIONAL = {SEND, RESUME}


def _operations() -> dict[str, bool]:
    """The schema's operations, each with whether it takes any input (parameters or a body).

    Read without HTTP so tests can be collected before the database exists.
    """
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return {
        f"{method.upper()} {path}": bool(operation.get("parameters") or operation.get("requestBody"))
        for path, item in generated["paths"].items()
        for method, operation in item.items()
    }


OPERATIONS = _operations()
LABELS = list(OPERATIONS)


@functools.cache
def api_schema():
    return schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())


@pytest.fixture
def in_process():
    """Requests served in this thread keep the test's connection, as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api(in_process, django_db_blocker):
    with django_db_blocker.unblock():
        return api_schema()


@pytest.fixture
def tokens(user, other_user):
    return {
        "owner": {"Authorization": f"Token {Token.objects.create(user=user).key}"},
        "other": {"Authorization": f"Token {Token.objects.create(user=other_user).key}"},
    }


def real_path_parameters(world) -> dict[str, str]:
    return {
        "notebook_id": str(world.notebook.pk),
        "container_id": str(world.notebook.pk),
        "session_id": str(world.session.pk),
        "source_id": str(world.source.pk),
        "message_id": str(world.answer.pk),
    }


def restore(world) -> None:
    """Bring back what an earlier example deleted, under the same ids, so real ids stay real."""
    notebook, session = world.notebook, world.session
    if not Notebook.objects.filter(pk=notebook.pk).exists():
        notebook.save(force_insert=True)
    if not Source.objects.filter(pk=world.source.pk).exists():
        world.source.save(force_insert=True)
    if not ChatSession.objects.filter(pk=session.pk).exists():
        session.save(force_insert=True)
    for message in (world.question, world.answer):
        if not SessionChatMessage.objects.filter(pk=message.pk).exists():
            message.save(force_insert=True)


def _params(modes):
    for label in LABELS:
        for mode in modes:
            if mode == GenerationMode.NEGATIVE and not OPERATIONS[label]:
                continue  # nothing to send wrong (the API's root)
            marks = [pytest.mark.django_db(transaction=label in TRANSACTIONAL)]
            yield pytest.param(label, mode, marks=marks, id=f"{mode}:{label}")


def test_the_fuzzed_operations_are_every_operation_the_api_serves(api):
    served = {result.ok().label for result in api.get_all_operations()}

    assert served == set(LABELS)
    assert any("stream" in label for label in served)  # the streaming routes are in the schema too


@pytest.mark.parametrize(("label", "mode"), list(_params([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])))
def test_no_input_breaks_an_operation_or_reaches_another_users_objects(api, label, mode, user, tokens):
    world = world_create(user)
    operation = api.find_operation_by_label(label)
    path_names = set(re.findall(r"{(\w+)}", operation.path))
    real = {name: value for name, value in real_path_parameters(world).items() if name in path_names}
    fixed_headers = {"Accept": "application/json"} if label == SEND else {}
    strategies = [operation.as_strategy(mode, headers=fixed_headers or None)]
    if real:
        strategies.append(operation.as_strategy(mode, path_parameters=real, headers=fixed_headers or None))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def run(case):
        restore(world)
        if case.media_type and case.media_type != JSON and "file" not in str(case.body):
            # Bodies as the API's clients send them. A form or multipart body that does not parse is
            # an empty one, which is valid where every field is optional: not negative data at all.
            case.media_type = JSON
        targets_owner = bool(real) and all(case.path_parameters.get(name) == value for name, value in real.items())
        if targets_owner:
            before = snapshot(world)
            foreign = case.call(headers={**fixed_headers, **tokens["other"]})
            assert foreign.status_code == 404, f"another user got {foreign.status_code} on {case.formatted_path}"
            assert snapshot(world) == before, f"another user changed the owner's data with {label}"
        response = case.call(headers={**fixed_headers, **tokens["owner"]})
        # A multipart upload is an HTML form: DRF reads an empty optional field as left out, so an
        # empty `content` beside a file is a valid form, not negative data.
        negative = mode == GenerationMode.NEGATIVE and case.media_type in (None, JSON)
        checks = NEGATIVE_CHECKS if negative else CHECKS
        case.validate_response(response, checks=checks, headers={**fixed_headers, **tokens["owner"]})

    run()


def with_notebook_links(api):
    """The schema plus links from a created notebook to everything under it.

    Schemathesis infers most links (a session's id to its messages...), but not that a notebook's
    `id` is the `container_id` of the chat routes: these are written here, as OpenAPI links.
    """
    raw = copy.deepcopy(api.raw_schema)
    links = {}
    for path, item in raw["paths"].items():
        for operation in item.values():
            names = set(re.findall(r"{(\w+)}", path))
            if len(names) == 1 and names & {"notebook_id", "container_id"}:
                (name,) = names
                links[f"{operation['operationId']}"] = {
                    "operationId": operation["operationId"],
                    "parameters": {f"path.{name}": "$response.body#/id"},
                }
    raw["paths"]["/api/v1/notebooks/"]["post"]["responses"]["201"]["links"] = links
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = api.app
    schema.location = api.location
    return schema


def run_sequences(schema, tokens, *, max_examples: int) -> set[str]:
    """Run Schemathesis's stateful sequences over `schema`; return the operations that succeeded.

    Every call with path parameters is made first by the other user, who must get a 404 (the BOLA
    hook); every response is validated against the schema. Failures are recorded as they happen.
    """
    machine = schema.as_state_machine()
    succeeded: set[str] = set()
    failures: list[str] = []

    def headers_for(case, who: str) -> dict[str, str]:
        return {**tokens[who], **({"Accept": JSON} if case.operation.label == SEND else {})}

    class Sequences(machine):
        def call(self, case, **kwargs):
            if case.path_parameters:  # the BOLA hook: the other user first, on ids the owner just made
                foreign = case.call(headers=headers_for(case, "other")).status_code
                if foreign not in (404, 405):
                    failures.append(f"another user got {foreign}: {case.operation.label} {case.formatted_path}")
                    raise AssertionError(failures[-1])
            return case.call(headers=headers_for(case, "owner"))

        def after_call(self, response, case):
            if response.status_code < 300:
                succeeded.add(case.operation.label)

        def validate_response(self, response, case, additional_checks=(), **kwargs):
            try:
                case.validate_response(response, checks=CHECKS, headers=headers_for(case, "owner"))
            except Exception as exc:
                failures.append(str(exc)[:2000])
                raise

    # As Schemathesis's own runner does: generation only, no shrinking. Its stateful strategies read
    # earlier responses (ids the server made), which Hypothesis cannot replay, so Hypothesis may stop
    # a run as flaky; that is not a failure of the API, whose failures are recorded as they happen.
    # Derandomized: the same sequences of operations every run, so what they reach is not luck.
    with contextlib.suppress(Flaky):
        run_state_machine_as_test(
            Sequences,
            settings=settings(
                phases=[Phase.generate],
                max_examples=max_examples,
                stateful_step_count=10,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    assert failures == [], failures[:3]
    return succeeded


@pytest.mark.django_db(transaction=True)
def test_stateful_sequences_over_the_whole_api_never_fail_or_reach_another_user(api, user, tokens):
    succeeded = run_sequences(with_notebook_links(api), tokens, max_examples=25)

    assert "POST /api/v1/notebooks/" in succeeded, sorted(succeeded)
    assert any("{notebook_id}" in label for label in succeeded), sorted(succeeded)


@pytest.mark.django_db(transaction=True)
def test_stateful_sequences_from_a_new_notebook_through_its_chat_never_fail_or_reach_another_user(api, user, tokens):
    """Over the whole API, most sequences stay among the notebook routes; here only the chat follows."""
    chat = with_notebook_links(api).include(
        lambda ctx: ctx.operation.label == "POST /api/v1/notebooks/" or "/chat/" in ctx.operation.path
    )

    succeeded = run_sequences(chat, tokens, max_examples=25)

    # The links were followed: a notebook made, a session opened under its id, then used.
    assert "POST /api/v1/notebooks/{container_id}/chat/sessions/" in succeeded, sorted(succeeded)
    assert any("{session_id}" in label for label in succeeded), sorted(succeeded)
