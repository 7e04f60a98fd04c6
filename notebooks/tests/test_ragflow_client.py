"""The RAGFlow client against the fake RAGFlow, over real HTTP: shapes, quirks and failures."""

from __future__ import annotations

import logging
import re
import time

import aiohttp
import pytest
import pytest_asyncio

from notebooks.ragflow.client import RagFlowClient
from notebooks.ragflow.errors import (
    RagFlowAuthError,
    RagFlowNotFound,
    RagFlowProtocolError,
    RagFlowRefused,
    RagFlowStreamError,
    RagFlowTimeout,
    RagFlowUnavailable,
)
from notebooks.ragflow.stream import AnswerText, ReasoningText, References, SessionSeen, Usage
from notebooks.tests.conftest import RAGFLOW_TEST_KEY

pytestmark = pytest.mark.asyncio

PHOTOSYNTHESIS = (
    "Photosynthesis converts light energy into chemical energy stored in glucose.\n\n"
    "Chlorophyll absorbs mostly blue and red light, which is why leaves look green."
)


@pytest_asyncio.fixture
async def client(fake_ragflow):
    async with aiohttp.ClientSession() as session:
        yield RagFlowClient(base_url=fake_ragflow.url, api_key=RAGFLOW_TEST_KEY, session=session, retry_backoff=0.01)


async def parsed_document(client, fake, *, text=PHOTOSYNTHESIS):
    dataset = await client.dataset_create(name="deepsight-test")
    document = await client.document_upload(
        dataset_id=dataset["id"], filename="notes.txt", content=text.encode(), content_type="text/plain"
    )
    await client.documents_parse(dataset_id=dataset["id"], document_ids=[document["id"]])
    while not (await client.document_status(dataset_id=dataset["id"], document_id=document["id"])).finished:
        pass
    return dataset, document


async def agent_with_answer(client, fake):
    dataset, document = await parsed_document(client, fake)
    dsl = {
        "components": {
            "Retrieval:KB": {"obj": {"component_name": "Retrieval", "params": {"kb_ids": [dataset["id"]]}}},
        }
    }
    agent_id = await client.agent_create(title="deepsight-nb-test", dsl=dsl)
    session_id = await client.agent_session_create(agent_id=agent_id)
    return agent_id, session_id, document


async def frames_of(client, agent_id, session_id, question="How does photosynthesis store light energy?"):
    return [
        frame
        async for frame in client.agent_completion_stream(agent_id=agent_id, session_id=session_id, question=question)
    ]


async def collect(stream, into):
    async for frame in stream:
        into.append(frame)


def answer_of(frames):
    return "".join(frame.text for frame in frames if isinstance(frame, AnswerText))


# Datasets and documents
# ------------------------------------------------------------------------------


async def test_dataset_create_reads_back_the_id_and_the_name_ragflow_chose(client, fake_ragflow):
    first = await client.dataset_create(name="deepsight-nb")
    second = await client.dataset_create(name="deepsight-nb")

    assert first["id"] in fake_ragflow.datasets
    assert first["name"] == "deepsight-nb"
    assert second["name"] == "deepsight-nb(1)"  # v0.22+ renames instead of refusing


async def test_dataset_find_knows_a_dataset_by_its_exact_name_and_none_otherwise(client):
    created = await client.dataset_create(name="deepsight-find-me")

    assert (await client.dataset_find(name="deepsight-find-me"))["id"] == created["id"]
    assert await client.dataset_find(name="deepsight-never-made") is None


async def test_a_parsed_document_reports_progress_then_done_with_its_chunks(client, fake_ragflow):
    fake_ragflow.parse_polls = 3
    dataset = await client.dataset_create(name="deepsight-parse")
    document = await client.document_upload(
        dataset_id=dataset["id"], filename="notes.txt", content=PHOTOSYNTHESIS.encode(), content_type="text/plain"
    )
    await client.documents_parse(dataset_id=dataset["id"], document_ids=[document["id"]])

    seen = [await client.document_status(dataset_id=dataset["id"], document_id=document["id"]) for _ in range(3)]

    assert [s.run for s in seen] == ["RUNNING", "RUNNING", "DONE"]
    assert seen[0].progress < seen[1].progress < seen[2].progress == 1.0
    assert seen[2].chunk_count == 2
    upload = fake_ragflow.requests_to("POST", f"/api/v1/datasets/{dataset['id']}/documents")[0]
    assert upload.filenames == ["notes.txt"]


async def test_a_failed_parse_carries_ragflows_reason(client, fake_ragflow):
    fake_ragflow.parse_outcome = "FAIL"
    fake_ragflow.parse_polls = 1
    dataset = await client.dataset_create(name="deepsight-fail")
    document = await client.document_upload(dataset_id=dataset["id"], filename="bad.txt", content=b"x")
    await client.documents_parse(dataset_id=dataset["id"], document_ids=[document["id"]])

    state = await client.document_status(dataset_id=dataset["id"], document_id=document["id"])

    assert state.run == "FAIL"
    assert state.finished
    assert "bad file" in state.message
    assert state.progress == 0.0  # RAGFlow says -1; never shown as negative


async def test_parsing_a_document_already_being_parsed_is_not_an_error(client):
    dataset = await client.dataset_create(name="deepsight-twice")
    document = await client.document_upload(dataset_id=dataset["id"], filename="a.txt", content=b"text")
    await client.documents_parse(dataset_id=dataset["id"], document_ids=[document["id"]])

    await client.documents_parse(dataset_id=dataset["id"], document_ids=[document["id"]])


async def test_a_business_error_in_an_http_200_answer_is_a_typed_error(client):
    dataset = await client.dataset_create(name="deepsight-errors")

    with pytest.raises(RagFlowNotFound, match="Documents not found"):
        await client.documents_parse(dataset_id=dataset["id"], document_ids=["no-such-document"])
    with pytest.raises(RagFlowRefused, match="code 101"):
        await client.dataset_create(name=" ")


async def test_deleting_what_is_already_gone_succeeds(client, fake_ragflow):
    dataset, document = await parsed_document(client, fake_ragflow)
    agent_id = await client.agent_create(title="deepsight-nb-gone", dsl={"components": {}})

    for _ in range(2):
        await client.documents_delete(dataset_id=dataset["id"], document_ids=[document["id"]])
        await client.agent_delete(agent_id=agent_id)
        await client.dataset_delete(dataset_ids=[dataset["id"]])

    assert fake_ragflow.datasets == {}
    assert fake_ragflow.agents == {}


# Deletes never send an empty id list
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("dataset_delete", {"dataset_ids": []}),
        ("dataset_delete", {"dataset_ids": [""]}),
        ("documents_delete", {"dataset_id": "ds1", "document_ids": []}),
        ("agent_sessions_delete", {"agent_id": "ag1", "session_ids": []}),
        ("agent_sessions_delete", {"agent_id": "ag1", "session_ids": ["s1", ""]}),
        ("agent_delete", {"agent_id": ""}),
    ],
)
async def test_a_delete_without_ids_is_refused_before_anything_is_sent(client, fake_ragflow, method, kwargs):
    await client.dataset_create(name="deepsight-survivor")

    with pytest.raises(ValueError, match="id"):
        await getattr(client, method)(**kwargs)

    assert [r for r in fake_ragflow.requests if r.method == "DELETE"] == []
    assert len(fake_ragflow.datasets) == 1


async def test_every_delete_the_client_sends_names_its_ids(client, fake_ragflow):
    agent_id, session_id, document = await agent_with_answer(client, fake_ragflow)

    await client.agent_sessions_delete(agent_id=agent_id, session_ids=[session_id])
    await client.agent_delete(agent_id=agent_id)
    await client.documents_delete(dataset_id=document["dataset_id"], document_ids=[document["id"]])
    await client.dataset_delete(dataset_ids=[document["dataset_id"]])

    deletes = [r for r in fake_ragflow.requests if r.method == "DELETE"]
    assert len(deletes) == 4
    for request in deletes:
        if not re.fullmatch(r"/api/v1/agents/[0-9a-f]+", request.path):
            assert request.json["ids"], request.path


# Agents
# ------------------------------------------------------------------------------


async def test_agent_create_finds_the_new_agent_by_title_when_ragflow_answers_true(client, fake_ragflow):
    agent_id = await client.agent_create(title="deepsight-nb-1", dsl={"components": {}})

    assert fake_ragflow.agents[agent_id]["title"] == "deepsight-nb-1"
    lookup = fake_ragflow.requests_to("GET", "/api/v1/agents")
    assert lookup[0].query == {"title": "deepsight-nb-1"}


@pytest.mark.ragflow_version((0, 26))
async def test_agent_create_uses_the_agent_returned_by_v026(client, fake_ragflow):
    agent_id = await client.agent_create(title="deepsight-nb-2", dsl={"components": {}})

    assert fake_ragflow.agents[agent_id]["title"] == "deepsight-nb-2"
    assert fake_ragflow.requests_to("GET", "/api/v1/agents") == []


@pytest.mark.parametrize("version", [(0, 24), (0, 26)])
async def test_agent_create_adopts_the_agent_an_earlier_try_made(client, fake_ragflow, version):
    fake_ragflow.version = version
    first = await client.agent_create(title="deepsight-nb-3", dsl={"components": {}})

    again = await client.agent_create(title="deepsight-nb-3", dsl={"components": {}})

    assert again == first
    assert len(fake_ragflow.agents) == 1


@pytest.mark.ragflow_version((0, 26))
async def test_agent_find_falls_back_to_a_keyword_search_when_v026_ignores_the_title(client, fake_ragflow):
    wanted = await client.agent_create(title="deepsight-nb-wanted", dsl={"components": {}})
    for n in range(35):  # pushes the wanted agent off the first page of an unfiltered list
        await client.agent_create(title=f"other-agent-{n}", dsl={"components": {}})

    assert await client.agent_find(title="deepsight-nb-wanted") == wanted
    searches = [r.query for r in fake_ragflow.requests_to("GET", "/api/v1/agents")]
    assert searches[-1]["keywords"] == "deepsight-nb-wanted"
    assert searches[-1]["canvas_category"] == "agent_canvas"


@pytest.mark.parametrize("version", [(0, 24), (0, 26)])
async def test_agent_update_replaces_the_dsl_and_sessions_opened_before_keep_theirs(client, fake_ragflow, version):
    fake_ragflow.version = version
    agent_id = await client.agent_create(title="deepsight-nb-update", dsl={"components": {"old": {}}})
    before = await client.agent_session_create(agent_id=agent_id)

    await client.agent_update(agent_id=agent_id, dsl={"components": {"new": {}}})
    after = await client.agent_session_create(agent_id=agent_id)

    assert fake_ragflow.agents[agent_id]["dsl"] == {"components": {"new": {}}}
    assert fake_ragflow.agents[agent_id]["title"] == "deepsight-nb-update"
    assert fake_ragflow.sessions[before]["dsl"] == {"components": {"old": {}}}
    assert fake_ragflow.sessions[after]["dsl"] == {"components": {"new": {}}}
    assert fake_ragflow.requests_to("PUT", f"/api/v1/agents/{agent_id}")[0].json == {"dsl": {"components": {"new": {}}}}


@pytest.mark.parametrize("version", [(0, 24), (0, 26)])
async def test_updating_an_agent_ragflow_no_longer_has_is_refused(client, fake_ragflow, version):
    fake_ragflow.version = version

    with pytest.raises(RagFlowRefused) as refused:
        await client.agent_update(agent_id="0123456789abcdef", dsl={"components": {}})

    assert refused.value.code == 103


async def test_updates_are_never_retried_inside_a_call(client, fake_ragflow):
    agent_id = await client.agent_create(title="deepsight-nb-once", dsl={"components": {}})
    fake_ragflow.fail("PUT", f"/api/v1/agents/{agent_id}", status=503, code=None)

    with pytest.raises(RagFlowUnavailable):
        await client.agent_update(agent_id=agent_id, dsl={"components": {"new": {}}})

    assert len(fake_ragflow.requests_to("PUT", f"/api/v1/agents/{agent_id}")) == 1


@pytest.mark.parametrize("version", [(0, 24), (0, 26)])
async def test_agent_session_ids_lists_every_session_of_an_agent(client, fake_ragflow, version):
    fake_ragflow.version = version
    agent_id = await client.agent_create(title="deepsight-nb-sessions", dsl={"components": {}})
    opened = {await client.agent_session_create(agent_id=agent_id) for _ in range(3)}

    assert set(await client.agent_session_ids(agent_id=agent_id)) == opened


# Completion streams
# ------------------------------------------------------------------------------


async def test_a_completion_streams_deltas_then_a_reference_whose_key_is_the_cited_number(client, fake_ragflow):
    agent_id, session_id, document = await agent_with_answer(client, fake_ragflow)

    frames = await frames_of(client, agent_id, session_id)

    text = answer_of(frames)
    assert text.startswith("Your sources say: Photosynthesis converts light energy")
    cited = int(re.search(r"\[ID:(\d+)\]", text).group(1))
    references = [frame for frame in frames if isinstance(frame, References)]
    assert len(references) == 1
    by_index = {chunk["index"]: chunk for chunk in references[0].chunks}
    first = by_index[cited]
    assert first["document_id"] == document["id"]
    assert first["title"] == "notes.txt"
    assert first["snippet"].startswith("Photosynthesis converts light energy")
    assert isinstance(frames[0], SessionSeen)
    assert frames[0].session_id == session_id
    body = fake_ragflow.requests_to("POST", f"/api/v1/agents/{agent_id}/completions")[0].json
    assert body == {"question": body["question"], "query": body["question"], "stream": True, "session_id": session_id}


async def test_node_workflow_and_user_input_events_are_ignored_and_usage_is_kept(client, fake_ragflow):
    agent_id, session_id, _ = await agent_with_answer(client, fake_ragflow)
    fake_ragflow.script(tokens=["Green", " light."], extra_events=True)

    frames = await frames_of(client, agent_id, session_id)

    assert answer_of(frames) == "Green light."
    assert [type(f) for f in frames if not isinstance(f, AnswerText | SessionSeen)] == [References, Usage]
    assert next(f for f in frames if isinstance(f, Usage)).usage["completion_tokens"] == 2


async def test_reasoning_between_start_and_end_to_think_is_kept_apart_from_the_answer(client, fake_ragflow):
    agent_id, session_id, _ = await agent_with_answer(client, fake_ragflow)
    fake_ragflow.script(thinking=["The user asks", " about leaves."], tokens=["Leaves", " are", " green."])

    frames = await frames_of(client, agent_id, session_id)

    assert "".join(f.text for f in frames if isinstance(f, ReasoningText)) == "The user asks about leaves."
    assert answer_of(frames) == "Leaves are green."


@pytest.mark.parametrize(("space", "terminator"), [(True, "done"), (False, "legacy"), (True, "legacy")])
async def test_data_lines_with_a_space_and_the_legacy_terminator_are_read(client, fake_ragflow, space, terminator):
    agent_id, session_id, _ = await agent_with_answer(client, fake_ragflow)
    fake_ragflow.script(tokens=["One", " two."], space_after_data=space, terminator=terminator)

    frames = await frames_of(client, agent_id, session_id)

    assert answer_of(frames) == "One two."


async def test_a_code_500_frame_mid_answer_raises_after_the_tokens_before_it(client, fake_ragflow):
    agent_id, session_id, _ = await agent_with_answer(client, fake_ragflow)
    fake_ragflow.script(tokens=["Half", " an", " answer"], error_after=2)
    received = []

    with pytest.raises(RagFlowStreamError, match="code 500"):
        await collect(client.agent_completion_stream(agent_id=agent_id, session_id=session_id, question="q"), received)

    assert answer_of(received) == "Half an"


async def test_a_connection_dropped_mid_answer_is_an_error_not_a_short_answer(client, fake_ragflow):
    agent_id, session_id, _ = await agent_with_answer(client, fake_ragflow)
    fake_ragflow.script(tokens=["Cut", " off", " here"], drop_after=2)
    received = []

    with pytest.raises(RagFlowStreamError):
        await collect(client.agent_completion_stream(agent_id=agent_id, session_id=session_id, question="q"), received)

    assert answer_of(received) == "Cut off"


async def test_a_first_token_slower_than_the_read_timeout_is_a_timeout(client, fake_ragflow):
    agent_id, session_id, _ = await agent_with_answer(client, fake_ragflow)
    client.stream_read_timeout = 0.3
    fake_ragflow.script(tokens=["Late."], first_token_delay=1.0)

    with pytest.raises(RagFlowTimeout):
        await frames_of(client, agent_id, session_id)


async def test_a_server_that_takes_the_question_and_never_answers_is_a_timeout(client, fake_ragflow):
    """Found by a probe: nothing limited the wait for the headers, so the turn hung for 10 minutes."""
    agent_id, session_id, _ = await agent_with_answer(client, fake_ragflow)
    client.stream_read_timeout = 0.3
    fake_ragflow.script(tokens=["Never."], headers_delay=3.0)
    started = time.monotonic()

    with pytest.raises(RagFlowTimeout):
        await frames_of(client, agent_id, session_id)

    assert time.monotonic() - started < 2.0


async def test_a_slow_first_token_within_the_read_timeout_still_answers(client, fake_ragflow):
    agent_id, session_id, _ = await agent_with_answer(client, fake_ragflow)
    client.stream_read_timeout = 2.0
    fake_ragflow.script(tokens=["Worth", " the", " wait."], first_token_delay=0.5)

    assert answer_of(await frames_of(client, agent_id, session_id)) == "Worth the wait."


async def test_an_unknown_session_is_not_found_rather_than_an_empty_answer(client, fake_ragflow):
    agent_id, _, _ = await agent_with_answer(client, fake_ragflow)

    with pytest.raises(RagFlowNotFound, match="Session not found"):
        await frames_of(client, agent_id, "no-such-session")


# Auth, retries and the key
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [(0, 24), (0, 25), (0, 26)])
async def test_a_bad_api_key_is_an_auth_error_on_every_version(fake_ragflow, version):
    fake_ragflow.version = version
    async with aiohttp.ClientSession() as session:
        wrong = RagFlowClient(base_url=fake_ragflow.url, api_key="ragflow-wrongKEY", session=session)

        with pytest.raises(RagFlowAuthError):
            await wrong.dataset_create(name="deepsight-x")
        with pytest.raises(RagFlowAuthError):
            await wrong.dataset_find(name="deepsight-x")
        with pytest.raises(RagFlowAuthError):
            await frames_of(wrong, "agent", "session")


async def test_a_missing_key_on_v024_is_an_auth_error_despite_code_0(fake_ragflow):
    async with aiohttp.ClientSession() as session:
        keyless = RagFlowClient(base_url=fake_ragflow.url, api_key="", session=session)

        with pytest.raises(RagFlowAuthError, match="Authorization"):
            await keyless.dataset_create(name="deepsight-x")


async def test_the_api_key_appears_in_no_error_and_no_log(fake_ragflow, caplog):
    caplog.set_level(logging.DEBUG)
    fake_ragflow.fail("GET", "/api/v1/datasets", times=10, code=100, message=f"token {RAGFLOW_TEST_KEY} crashed")
    fake_ragflow.fail("POST", "/api/v1/datasets", code=102, message=f"bad {RAGFLOW_TEST_KEY}")
    async with aiohttp.ClientSession() as session:
        client = RagFlowClient(base_url=fake_ragflow.url, api_key=RAGFLOW_TEST_KEY, session=session, retry_backoff=0)
        errors = []
        for call in (client.dataset_find(name="x"), client.dataset_create(name="x")):
            with pytest.raises(Exception) as caught:  # noqa: PT011 - any error, as long as it is redacted
                await call
            errors.append(caught.value)

    assert isinstance(errors[0], RagFlowUnavailable)
    assert isinstance(errors[1], RagFlowNotFound)
    for error in errors:
        assert RAGFLOW_TEST_KEY not in str(error)
        assert RAGFLOW_TEST_KEY not in repr(error)
        assert error.__cause__ is None
        assert "***" in error.message
    assert RAGFLOW_TEST_KEY not in caplog.text
    assert RAGFLOW_TEST_KEY not in repr(client)


async def test_reads_are_retried_through_a_passing_outage(client, fake_ragflow):
    fake_ragflow.fail("GET", "/api/v1/datasets", times=2, status=502, code=None)

    assert await client.dataset_find(name="deepsight-none") is None
    assert len(fake_ragflow.requests_to("GET", "/api/v1/datasets")) == 3


async def test_deletes_are_retried_through_a_dropped_connection(client, fake_ragflow):
    dataset = await client.dataset_create(name="deepsight-retry")
    fake_ragflow.fail("DELETE", "/api/v1/datasets", drop=True)

    await client.dataset_delete(dataset_ids=[dataset["id"]])

    assert len(fake_ragflow.requests_to("DELETE", "/api/v1/datasets")) == 2
    assert fake_ragflow.datasets == {}


async def test_creates_are_never_retried_so_nothing_is_made_twice(client, fake_ragflow):
    fake_ragflow.fail("POST", "/api/v1/datasets", status=503, code=None)

    with pytest.raises(RagFlowUnavailable, match="HTTP 503"):
        await client.dataset_create(name="deepsight-once")

    assert len(fake_ragflow.requests_to("POST", "/api/v1/datasets")) == 1


async def test_an_unknown_route_says_to_check_the_base_url(fake_ragflow):
    async with aiohttp.ClientSession() as session:
        misplaced = RagFlowClient(
            base_url=f"{fake_ragflow.url}/nothing-here", api_key=RAGFLOW_TEST_KEY, session=session
        )

        with pytest.raises(RagFlowRefused, match="RAGFLOW_BASE_URL"):
            await misplaced.dataset_create(name="deepsight-x")


async def test_a_non_json_answer_is_a_protocol_error(client, fake_ragflow):
    fake_ragflow.fail("POST", "/api/v1/datasets", status=200, code=None)

    with pytest.raises(RagFlowProtocolError):
        await client.dataset_create(name="deepsight-x")
