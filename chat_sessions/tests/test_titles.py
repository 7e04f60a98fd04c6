"""Auto-naming: the LLM's title cleaned and checked, retried, the heuristic behind it, the user's rename winning."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from chat_sessions import services, titles
from chat_sessions.models import ChatSession, MessageStatus, Sender, TagSource, TitleSource
from chat_sessions.tasks import session_title_generate
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, NotebookFactory

pytestmark = pytest.mark.django_db

QUESTION = "How do plants turn sunlight into sugar?"
ANSWER = "Through photosynthesis: chloroplasts capture light and fix carbon dioxide into glucose."


@pytest.fixture
def title_llm(settings, fake_openai, monkeypatch):
    """Titles come from the fake OpenAI-compatible server, retried without waiting."""
    settings.CHAT_SESSIONS = {
        **settings.CHAT_SESSIONS,
        "TITLE_BACKEND": "chat_sessions.agents.openai.OpenAICompatibleAgent",
        "OPENAI": {"BASE_URL": fake_openai.base_url, "API_KEY": "sk-test", "MODEL": "title-model"},
    }
    monkeypatch.setattr(titles, "TITLE_RETRY_DELAY", 0.0)
    return fake_openai


@pytest.fixture
def no_llm(settings):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "TITLE_BACKEND": None}


def answered_session(*, question=QUESTION, answer=ANSWER, status=MessageStatus.COMPLETE, owner=None, **session_fields):
    notebook = NotebookFactory(owner=owner) if owner else NotebookFactory()
    session = ChatSessionFactory(container=notebook, created_by=notebook.owner, **session_fields)
    MessageFactory(session=session, sender=Sender.USER, message=question, message_order=1)
    MessageFactory(session=session, sender=Sender.ASSISTANT, message=answer, message_order=2, status=status)
    ChatSession.objects.filter(pk=session.pk).update(message_count=2)
    return session


def title_url(session) -> str:
    return f"/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/title/"


# Cleaning and checking a model's answer
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ('"Light Into Sugar."', "Light Into Sugar"),
        ("'Photosynthesis Basics'!", "Photosynthesis Basics"),
        ("Title: \u201cHow Leaves Make Food\u201d\u2026", "How Leaves Make Food"),
        ("**Chloroplasts at Work**", "Chloroplasts at Work"),
        ('"Plants and Light?"', "Plants and Light"),
        ("<think>The user asks about plants.</think>\nSunlight to Glucose", "Sunlight to Glucose"),
        ("  Carbon   Fixation Explained  \nThis conversation is about...", "Carbon Fixation Explained"),
    ],
)
def test_a_models_title_loses_quotes_labels_and_trailing_punctuation(raw, title):
    assert titles.title_clean(raw=raw) == title


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   \n  ",
        '""',
        "...",
        "<think>still thinking about it",
        "One two three four five six seven",
        "Photosynthesis" * 6,
    ],
)
def test_an_empty_or_overlong_answer_is_not_a_title(raw):
    assert titles.title_clean(raw=raw) is None


def test_six_words_are_still_a_title():
    assert titles.title_clean(raw="One two three four five six") == "One two three four five six"


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("What does chlorophyll absorb?", "What does chlorophyll absorb"),
        ("why are leaves green?", "Why are leaves green"),
        ("Where does photosynthesis happen, and what does chlorophyll absorb?", "Where does photosynthesis happen"),
        ("Hi! I'm studying botany. Why are leaves green?", "Why are leaves green"),
        ("Hello, could you please tell me about photosynthesis?", "Photosynthesis"),
        ("I\u2019d like to know about stomata in desert plants and how they close at noon", "Stomata in desert plants"),
        ("What is RuBisCO?", "RuBisCO"),
        ("What is it?", "What is it"),
        ("Hello there", "Hello there"),
        # Too long and no short first clause: its first words from the first that is not a stopword.
        (
            "what is the role of chlorophyll in photosynthesis and respiration of plants?",
            "Role of chlorophyll in photosynthesis",
        ),
        (QUESTION, "Plants turn sunlight into sugar"),
    ],
)
def test_the_heuristic_title_is_the_question_in_its_own_words_without_the_asking(question, title):
    assert titles.title_heuristic(question=question) == title


def test_a_question_without_words_gives_a_plain_title():
    assert titles.title_heuristic(question="??? !!!") == titles.FALLBACK_TITLE


# The title task with an LLM
# ------------------------------------------------------------------------------


def test_the_first_complete_exchange_gets_the_llms_title(title_llm):
    session = answered_session()
    title_llm.script(completion='"Light Into Sugar."')

    result = session_title_generate.delay(session_id=str(session.pk)).get()

    session.refresh_from_db()
    assert result == "Light Into Sugar"
    assert session.title == "Light Into Sugar"
    assert session.title_source == TitleSource.AUTO
    [request] = title_llm.requests
    assert request["stream"] is False
    assert request["model"] == "title-model"
    assert request["max_tokens"] == titles.TITLE_MAX_TOKENS <= 32
    prompt = request["messages"][0]["content"]
    assert QUESTION in prompt
    assert ANSWER in prompt


def test_a_long_exchange_is_cut_before_it_reaches_the_model(title_llm):
    session = answered_session(question="q" * 10_000, answer="a" * 10_000)
    title_llm.script(completion="Letters Repeated")

    session_title_generate.delay(session_id=str(session.pk))

    prompt = title_llm.requests[0]["messages"][0]["content"]
    assert len(prompt) < 2 * titles.TITLE_PROMPT_CHARS + len(titles.TITLE_PROMPT)
    assert set(session.tag_set.values_list("name", flat=True)) == {"letters", "repeated"}


def test_a_suggested_tag_is_never_longer_than_a_tag_may_be():
    text = "photosynthesis " + "chlorofluorocarbonsandmoreletters" * 3

    assert titles.tags_suggest(text=text) == ["photosynthesis"]


def test_an_overlong_title_is_asked_again_and_after_three_refusals_the_heuristic_is_used(title_llm):
    session = answered_session()
    for _ in range(3):
        title_llm.script(completion="This is a far too long title for one small chat tab")

    session_title_generate.delay(session_id=str(session.pk))

    session.refresh_from_db()
    assert len(title_llm.requests) == 3
    assert session.title == titles.title_heuristic(question=QUESTION) == "Plants turn sunlight into sugar"
    assert session.title_source == TitleSource.AUTO


def test_a_failing_model_is_retried_twice_then_the_heuristic_is_used(title_llm):
    session = answered_session()
    for _ in range(3):
        title_llm.script(status=500)

    session_title_generate.delay(session_id=str(session.pk))

    session.refresh_from_db()
    assert len(title_llm.requests) == 3
    assert session.title == "Plants turn sunlight into sugar"


def test_a_good_answer_on_a_retry_is_used(title_llm):
    session = answered_session()
    title_llm.script(status=500)
    title_llm.script(completion="   ")
    title_llm.script(completion="Sunlight Becomes Sugar")

    session_title_generate.delay(session_id=str(session.pk))

    session.refresh_from_db()
    assert len(title_llm.requests) == 3
    assert session.title == "Sunlight Becomes Sugar"


def test_a_model_too_slow_to_answer_costs_an_attempt(title_llm, monkeypatch):
    monkeypatch.setattr(titles, "TITLE_ATTEMPT_SECONDS", 0.2)
    session = answered_session()
    # Far slower than the attempt's limit, so waiting for it could not pass even on a loaded
    # machine; the fake's shutdown cancels the abandoned reply.
    title_llm.script(completion="Too Late", completion_delay=30)
    title_llm.script(completion="Just In Time")

    started = time.monotonic()
    session_title_generate.delay(session_id=str(session.pk))
    elapsed = time.monotonic() - started

    session.refresh_from_db()
    assert session.title == "Just In Time"
    assert len(title_llm.requests) == 2
    assert elapsed < 10


def test_without_an_llm_the_first_question_gives_the_title(no_llm):
    session = answered_session(question="Explain the Calvin cycle, briefly")

    session_title_generate.delay(session_id=str(session.pk))

    session.refresh_from_db()
    assert session.title == "Calvin cycle"
    assert session.title_source == TitleSource.AUTO


@pytest.mark.parametrize("status", [MessageStatus.INTERRUPTED, MessageStatus.ERROR, MessageStatus.STREAMING])
def test_an_unfinished_or_failed_answer_is_never_titled_from(title_llm, status):
    session = answered_session(answer="Photosynthesis is the proc", status=status)

    result = session_title_generate.delay(session_id=str(session.pk)).get()

    session.refresh_from_db()
    assert result is None
    assert (session.title, session.title_source) == ("New Chat", TitleSource.DEFAULT)
    assert title_llm.requests == []


def test_after_a_failed_first_answer_the_first_complete_exchange_gives_the_title(title_llm):
    session = answered_session(answer="", status=MessageStatus.ERROR)
    MessageFactory(session=session, sender=Sender.USER, message="Why are leaves green?", message_order=3)
    MessageFactory(session=session, sender=Sender.ASSISTANT, message="Chlorophyll reflects green.", message_order=4)
    title_llm.script(completion="Why Leaves Are Green")

    session_title_generate.delay(session_id=str(session.pk))

    session.refresh_from_db()
    assert session.title == "Why Leaves Are Green"
    assert "Why are leaves green?" in title_llm.requests[0]["messages"][0]["content"]


def test_a_session_the_user_named_is_not_retitled(title_llm):
    session = answered_session(title="My photosynthesis notes", title_source=TitleSource.USER)

    result = session_title_generate.delay(session_id=str(session.pk)).get()

    session.refresh_from_db()
    assert result is None
    assert session.title == "My photosynthesis notes"
    assert title_llm.requests == []


def test_running_the_task_twice_writes_the_title_once(title_llm):
    session = answered_session()
    title_llm.script(completion="First Title")
    title_llm.script(completion="Second Title")

    session_title_generate.delay(session_id=str(session.pk))
    session_title_generate.delay(session_id=str(session.pk))

    session.refresh_from_db()
    assert session.title == "First Title"
    assert len(title_llm.requests) == 1


def test_a_deleted_session_is_simply_skipped(title_llm):
    session = answered_session()
    session_id = str(session.pk)
    session.delete()

    assert session_title_generate.delay(session_id=session_id).get() is None
    assert title_llm.requests == []


def test_suggested_tags_are_stored_apart_from_the_users_own(title_llm):
    session = answered_session()
    services.session_update(session=session, tags=["biology", "homework"])
    title_llm.script(completion="Photosynthesis Turns Sunlight Into Sugar")

    session_title_generate.delay(session_id=str(session.pk))

    user_tags = set(session.tag_set.filter(source=TagSource.USER).values_list("name", flat=True))
    suggested = list(session.tag_set.filter(source=TagSource.AUTO).values_list("name", flat=True))
    assert user_tags == {"biology", "homework"}
    assert set(suggested) == {"sugar", "sunlight", "photosynthesis"}


def test_the_session_list_shows_the_title_and_suggested_tags_without_a_reload(title_llm, owner_client, user):
    session = answered_session(owner=user)
    title_llm.script(completion="Sunlight Into Sugar")
    session_title_generate.delay(session_id=str(session.pk))

    response = owner_client.get(f"/api/v1/notebooks/{session.container_id}/chat/sessions/")

    [listed] = response.json()["sessions"]
    assert listed["title"] == "Sunlight Into Sugar"
    assert listed["title_source"] == "auto"
    assert listed["tags"] == []
    assert sorted(listed["suggested_tags"]) == ["plants", "sugar", "sunlight"]


# The race with a rename
# ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_rename_while_the_title_is_generated_wins(title_llm):
    session = answered_session()
    title_llm.script(completion="Generated Too Late", completion_delay=1.0)
    results = []

    def run_task():
        try:
            results.append(session_title_generate.delay(session_id=str(session.pk)).get())
        finally:
            connection.close()

    worker = threading.Thread(target=run_task)
    worker.start()
    deadline = time.monotonic() + 5
    while not title_llm.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert title_llm.requests, "the title task never asked the model"
    services.session_rename(session=ChatSession.objects.get(pk=session.pk), title="My own name")
    worker.join(timeout=60)  # generous: a loaded machine (CI) must not fail it

    session.refresh_from_db()
    assert results == [None]
    assert (session.title, session.title_source) == ("My own name", TitleSource.USER)
    assert not session.tag_set.filter(source=TagSource.AUTO).exists()


def test_a_rename_after_the_title_was_generated_replaces_it(title_llm):
    session = answered_session()
    title_llm.script(completion="Generated First")
    session_title_generate.delay(session_id=str(session.pk))

    services.session_rename(session=ChatSession.objects.get(pk=session.pk), title="Renamed Later")

    session.refresh_from_db()
    assert (session.title, session.title_source) == ("Renamed Later", TitleSource.USER)


# Regenerating on demand: POST .../sessions/{sid}/title/
# ------------------------------------------------------------------------------


def test_asking_for_a_new_title_regenerates_it(title_llm, owner_client, user, django_capture_on_commit_callbacks):
    session = answered_session(owner=user, title="Old Generated Title", title_source=TitleSource.AUTO)
    title_llm.script(completion="Fresh Title")

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(title_url(session))

    session.refresh_from_db()
    assert response.status_code == 202
    assert (session.title, session.title_source) == ("Fresh Title", TitleSource.AUTO)


def test_asking_for_a_new_title_replaces_the_users_own(
    title_llm, owner_client, user, django_capture_on_commit_callbacks
):
    session = answered_session(owner=user, title="Mine", title_source=TitleSource.USER)
    title_llm.script(completion="Fresh Title")

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(title_url(session))

    session.refresh_from_db()
    assert (session.title, session.title_source) == ("Fresh Title", TitleSource.AUTO)


def test_asking_for_a_title_before_any_answer_changes_nothing(title_llm, owner_client, user):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user, title="Mine")
    ChatSession.objects.filter(pk=session.pk).update(title_source=TitleSource.USER)

    response = owner_client.post(title_url(session))

    session.refresh_from_db()
    assert response.status_code == 409
    assert response.json()["code"] == "nothing_to_title"
    assert (session.title, session.title_source) == ("Mine", TitleSource.USER)
    assert title_llm.requests == []


def test_asking_for_a_title_of_another_users_session_is_not_found(
    title_llm, owner_client, django_capture_on_commit_callbacks
):
    session = answered_session(title="Theirs", title_source=TitleSource.USER)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = owner_client.post(title_url(session))

    session.refresh_from_db()
    assert response.status_code == 404
    assert callbacks == []
    assert session.title == "Theirs"


def test_a_one_shot_completion_that_never_answers_is_ended_by_the_read_timeout(title_llm, settings):
    # Streams keep their idle timeout with a ReadWatch; a one-shot answer keeps aiohttp's.
    import asyncio

    from chat_sessions.agents.base import AgentError
    from chat_sessions.agents.http import http_session_close
    from chat_sessions.agents.openai import OpenAICompatibleAgent

    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "HTTP_READ_TIMEOUT": 0.3}
    title_llm.script(completion="Never", completion_delay=30)

    async def ask() -> None:
        try:
            await OpenAICompatibleAgent().complete(prompt="Name this.")
        finally:
            await http_session_close()

    started = time.monotonic()
    with pytest.raises(AgentError) as refused:
        asyncio.run(ask())

    assert refused.value.code == "upstream_unavailable"
    assert time.monotonic() - started < 10
