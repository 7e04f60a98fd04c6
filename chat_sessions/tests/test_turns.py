"""Starting turns: ordered, exactly once, one generation at a time, safe under concurrency."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from chat_sessions.exceptions import (
    ClientMessageIdReused,
    GenerationInProgress,
    GenerationLimitReached,
    SessionArchived,
)
from chat_sessions.models import MessageStatus, SessionChatMessage, SessionStatus
from chat_sessions.services import message_finish, turn_start, turn_start_for_user
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory, UserFactory
from notebooks.models import Notebook


@pytest.fixture
def session(db, user):
    return ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)


def orders(session) -> list[int]:
    return list(
        SessionChatMessage.objects.filter(session=session)
        .order_by("message_order")
        .values_list("message_order", flat=True)
    )


def test_a_turn_stores_the_question_then_a_streaming_answer(session, user):
    started = turn_start(session=session, user=user, text="Why is the sky blue?")

    assert (started.user_message.message_order, started.assistant_message.message_order) == (1, 2)
    assert started.user_message.status == MessageStatus.COMPLETE
    assert started.assistant_message.status == MessageStatus.STREAMING
    session.refresh_from_db()
    assert session.message_count == 2


def test_a_second_send_while_an_answer_streams_is_refused(session, user):
    turn_start(session=session, user=user, text="first")

    with pytest.raises(GenerationInProgress):
        turn_start(session=session, user=user, text="second")

    assert orders(session) == [1, 2]


def test_a_retry_with_the_same_client_id_returns_the_first_turn(session, user):
    first = turn_start(session=session, user=user, text="hello", client_message_id="abc-1")
    message_finish(message_id=first.assistant_message.pk, text="hi", status=MessageStatus.COMPLETE, metadata={})

    again = turn_start(session=session, user=user, text="hello", client_message_id="abc-1")

    assert again.replayed
    assert (again.user_message.pk, again.assistant_message.pk) == (first.user_message.pk, first.assistant_message.pk)
    assert orders(session) == [1, 2]


def test_the_same_client_id_with_another_message_is_refused_and_stores_nothing(session, user):
    first = turn_start(session=session, user=user, text="hello", client_message_id="abc-1")
    message_finish(message_id=first.assistant_message.pk, text="hi", status=MessageStatus.COMPLETE, metadata={})

    with pytest.raises(ClientMessageIdReused):
        turn_start(session=session, user=user, text="a different question", client_message_id="abc-1")

    assert orders(session) == [1, 2]
    # The same id in another session is another turn.
    other = ChatSessionFactory(container=session.container, created_by=user)
    assert not turn_start(session=other, user=user, text="a different question", client_message_id="abc-1").replayed


def test_an_archived_session_refuses_messages(session, user):
    session.status = SessionStatus.ARCHIVED
    session.save()

    with pytest.raises(SessionArchived):
        turn_start(session=session, user=user, text="hello")


def test_a_closed_session_reopens_when_the_user_sends(session, user):
    session.status = SessionStatus.CLOSED
    session.save()

    started = turn_start(session=session, user=user, text="back again")

    assert started.session.status == SessionStatus.ACTIVE
    assert started.session.ended_at is None


def test_the_turn_returned_matches_what_was_stored(session, user):
    session.session_metadata = {"topic": "optics"}
    session.save()

    started = turn_start(session=session, user=user, text="Why?", client_message_id="c-1")

    stored = SessionChatMessage.objects.filter(session=session).order_by("message_order")
    assert [(m.pk, m.message_order, m.sender, m.message, m.client_message_id) for m in stored] == [
        (started.user_message.pk, 1, "user", "Why?", "c-1"),
        (started.assistant_message.pk, 2, "assistant", "", None),
    ]
    session.refresh_from_db()
    assert (started.session.message_count, started.session.last_activity) == (2, session.last_activity)
    assert started.session.session_metadata == {"topic": "optics"}  # JSON decoded, not a string
    assert started.assistant_message.session is started.session


@pytest.mark.skipif(connections["default"].vendor != "postgresql", reason="PostgreSQL's path; CI runs it there")
@pytest.mark.django_db(transaction=True)  # autocommit, as a request runs it (no savepoint around it)
def test_on_postgresql_a_turn_is_one_statement(user, django_assert_num_queries):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)

    with django_assert_num_queries(1):
        started = turn_start(session=session, user=user, text="Why is the sky blue?", client_message_id="c-2")

    assert (started.user_message.message_order, started.assistant_message.message_order) == (1, 2)


@pytest.mark.skipif(connections["default"].vendor != "postgresql", reason="PostgreSQL's path; CI runs it there")
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_send_finds_its_session_and_takes_the_turn_in_one_statement(user, django_assert_num_queries):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)

    with django_assert_num_queries(1):
        started = turn_start_for_user(
            user=user, container_id=session.container_id, session_id=str(session.pk), text="Why is the sky blue?"
        )

    assert started.session.pk == session.pk
    assert (started.user_message.message_order, started.assistant_message.message_order) == (1, 2)


def _not_started(user, *, container_id, session_id) -> bool:
    started = turn_start_for_user(user=user, container_id=container_id, session_id=session_id, text="let me in")
    return started is None and not SessionChatMessage.objects.filter(message="let me in").exists()


def test_a_send_never_reaches_a_session_the_user_may_not_see(session, user):
    other = UserFactory()
    theirs = ChatSessionFactory(container=NotebookFactory(owner=other), created_by=other)
    my_other_notebook = NotebookFactory(owner=user)

    assert _not_started(user, container_id=theirs.container_id, session_id=theirs.pk)  # another user's
    assert _not_started(user, container_id=session.container_id, session_id=theirs.pk)  # theirs, through my notebook
    assert _not_started(user, container_id=my_other_notebook.pk, session_id=session.pk)  # mine, wrong notebook
    assert _not_started(user, container_id=session.container_id, session_id="not-a-uuid")
    assert _not_started(user, container_id="not-a-uuid", session_id=session.pk)
    assert orders(session) == []
    assert orders(theirs) == []


def no_containers(*, user):
    return Notebook.objects.none()


def unlocked_notebooks(*, user):
    return Notebook.objects.filter(owner=user).exclude(name="locked")


@pytest.mark.django_db(transaction=True)  # on PostgreSQL: autocommit, the one-statement path a request takes
def test_a_send_follows_the_configured_access_policy(user, settings):
    locked = ChatSessionFactory(container=NotebookFactory(owner=user, name="locked"), created_by=user)
    unlocked = ChatSessionFactory(container=NotebookFactory(owner=user, name="open"), created_by=user)

    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "ACCESS_POLICY": f"{__name__}.unlocked_notebooks"}
    assert _not_started(user, container_id=locked.container_id, session_id=locked.pk)
    started = turn_start_for_user(user=user, container_id=unlocked.container_id, session_id=unlocked.pk, text="?")
    assert started is not None
    assert started.session.pk == unlocked.pk

    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "ACCESS_POLICY": f"{__name__}.no_containers"}
    assert _not_started(user, container_id=locked.container_id, session_id=locked.pk)


@pytest.mark.skipif(connections["default"].vendor != "postgresql", reason="PostgreSQL's path; CI runs it there")
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_an_answer_is_saved_in_one_statement(user, django_assert_num_queries):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    started = turn_start(session=session, user=user, text="Why?")

    with django_assert_num_queries(1):  # interrupted: no title is asked for (which runs eagerly in tests)
        saved = message_finish(
            message_id=started.assistant_message.pk, text="Rayleigh\x00.", status="interrupted", metadata={"n": 1}
        )

    stored = SessionChatMessage.objects.get(pk=started.assistant_message.pk)
    assert (saved.message, saved.status, saved.metadata, saved.message_order) == (
        "Rayleigh\ufffd.",
        "interrupted",
        {"n": 1},
        2,
    )
    assert (stored.message, stored.status, stored.metadata, stored.updated_at) == (
        saved.message,
        saved.status,
        saved.metadata,
        saved.updated_at,
    )
    session.refresh_from_db()
    assert session.last_activity == stored.updated_at


def test_an_answer_whose_session_was_deleted_is_not_saved(session, user):
    started = turn_start(session=session, user=user, text="Why?")
    session.delete()

    assert message_finish(message_id=started.assistant_message.pk, text="x", status="complete", metadata={}) is None


def test_the_database_holds_one_streaming_answer_per_session(session, user):
    from django.db import IntegrityError, transaction

    from chat_sessions.tests.factories import MessageFactory

    MessageFactory(session=session, sender="assistant", message_order=1, status=MessageStatus.STREAMING)

    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(session=session, sender="assistant", message_order=2, status=MessageStatus.STREAMING)


def test_too_many_generations_for_one_user_is_refused(user, settings):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "MAX_CONCURRENT_GENERATIONS_PER_USER": 2}
    notebook = NotebookFactory(owner=user)
    for _ in range(2):
        turn_start(session=ChatSessionFactory(container=notebook, created_by=user), user=user, text="q")

    with pytest.raises(GenerationLimitReached):
        turn_start(session=ChatSessionFactory(container=notebook, created_by=user), user=user, text="q")


def test_answers_a_dead_process_left_streaming_hold_neither_their_session_nor_the_users_limit(user, settings):
    """A restart mid-answer leaves answers `streaming` that no process writes: once stale, a send
    marks them `interrupted` (text kept) instead of being refused; a live one still refuses it."""
    from datetime import timedelta

    from django.utils import timezone

    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "MAX_CONCURRENT_GENERATIONS_PER_USER": 2}
    notebook = NotebookFactory(owner=user)
    dead, other_dead, live = (ChatSessionFactory(container=notebook, created_by=user) for _ in range(3))
    for session in (dead, other_dead):
        answer = turn_start(session=session, user=user, text="q").assistant_message
        SessionChatMessage.objects.filter(pk=answer.pk).update(
            message="Half an ans", updated_at=timezone.now() - timedelta(minutes=2)
        )

    # The user's limit (2) is taken only by dead answers, and one of them is in this very session.
    started = turn_start(session=dead, user=user, text="Are you back?")

    assert orders(dead) == [1, 2, 3, 4]
    assert started.assistant_message.status == MessageStatus.STREAMING
    halves = SessionChatMessage.objects.filter(message="Half an ans")
    assert sorted(halves.values_list("status", flat=True)) == [MessageStatus.INTERRUPTED] * 2
    turn_start(session=live, user=user, text="q")  # the second of 2 live answers
    with pytest.raises(GenerationLimitReached):
        turn_start(session=other_dead, user=user, text="q")
    with pytest.raises(GenerationInProgress):
        turn_start(session=dead, user=user, text="again")


def _concurrently(workers: int, target) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def run(index: int) -> None:
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_to_one_session_get_gap_free_unique_orders(user):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    turns_each, workers = 5, 6

    def send_turns(index: int) -> None:
        done = 0
        while done < turns_each:
            try:
                started = turn_start(session=session, user=user, text=f"w{index} t{done}")
            except GenerationInProgress:
                continue  # someone else's answer is streaming: try again
            message_finish(
                message_id=started.assistant_message.pk, text="ok", status=MessageStatus.COMPLETE, metadata={}
            )
            done += 1

    errors = _concurrently(workers, send_turns)

    assert errors == []
    expected = workers * turns_each * 2
    assert orders(session) == list(range(1, expected + 1))
    session.refresh_from_db()
    assert session.message_count == expected


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_turn_store_it_once(user):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    results = []

    errors = _concurrently(
        6, lambda index: results.append(turn_start(session=session, user=user, text="same", client_message_id="dup"))
    )

    assert errors == []
    assert orders(session) == [1, 2]
    assert len({r.user_message.pk for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_under_one_client_id_store_one_message_and_refuse_the_other_text(user):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    texts = ["kept or refused", "other text"] * 3
    results: list[tuple[str, object]] = []

    def send(index: int) -> None:
        try:
            results.append(
                (texts[index], turn_start(session=session, user=user, text=texts[index], client_message_id="dup"))
            )
        except ClientMessageIdReused as exc:
            results.append((texts[index], exc))

    errors = _concurrently(len(texts), send)

    assert errors == []
    assert orders(session) == [1, 2]
    stored = SessionChatMessage.objects.get(session=session, message_order=1).message
    for text, outcome in results:
        if text == stored:
            assert not isinstance(outcome, ClientMessageIdReused), text
        else:
            assert isinstance(outcome, ClientMessageIdReused), text
    assert sum(not isinstance(outcome, Exception) and not outcome.replayed for _, outcome in results) == 1


def test_a_session_whose_first_answer_failed_is_named_by_its_first_complete_one(
    session, user, django_capture_on_commit_callbacks
):
    failed = turn_start(session=session, user=user, text="first try")
    with django_capture_on_commit_callbacks(execute=True):
        message_finish(message_id=failed.assistant_message.pk, text="", status=MessageStatus.ERROR, metadata={})
    second = turn_start(session=session, user=user, text="How do plants turn sunlight into sugar?")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        message_finish(
            message_id=second.assistant_message.pk, text="Photosynthesis.", status=MessageStatus.COMPLETE, metadata={}
        )

    session.refresh_from_db()
    assert len(callbacks) == 1
    assert session.title_source == "auto"
    assert session.title != "New Chat"


def test_a_flush_writes_the_growing_text_of_every_answer_still_streaming(user):
    from chat_sessions.services import messages_flush

    sessions = [ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user) for _ in range(3)]
    streaming, thinking, finished = (turn_start(session=s, user=user, text="Why?") for s in sessions)
    message_finish(message_id=finished.assistant_message.pk, text="Done.", status="complete", metadata={"n": 1})

    messages_flush(
        texts={
            streaming.assistant_message.pk: ("Blue light\x00 scatters", ""),
            thinking.assistant_message.pk: ("Because", "Rayleigh?"),
            finished.assistant_message.pk: ("late partial text", ""),
        }
    )

    stored = {m.pk: m for m in SessionChatMessage.objects.filter(sender="assistant")}
    assert (stored[streaming.assistant_message.pk].message, stored[streaming.assistant_message.pk].metadata) == (
        "Blue light\ufffd scatters",
        {},
    )
    assert (stored[thinking.assistant_message.pk].message, stored[thinking.assistant_message.pk].metadata) == (
        "Because",
        {"reasoning": "Rayleigh?"},
    )
    assert (stored[finished.assistant_message.pk].message, stored[finished.assistant_message.pk].status) == (
        "Done.",
        "complete",
    )
    assert all(m.status == MessageStatus.STREAMING for pk, m in stored.items() if pk != finished.assistant_message.pk)


def test_a_flush_of_more_answers_than_one_statement_takes_writes_them_all(db, monkeypatch):
    from chat_sessions import services

    monkeypatch.setattr(services, "FLUSH_ROWS_PER_STATEMENT", 2)
    started = [
        turn_start(
            session=ChatSessionFactory(container=NotebookFactory(owner=owner), created_by=owner), user=owner, text="?"
        )
        for owner in UserFactory.create_batch(5)  # one each: a user has only a few answers at once
    ]

    services.messages_flush(texts={s.assistant_message.pk: (f"text {i}", "") for i, s in enumerate(started)})

    assert sorted(SessionChatMessage.objects.filter(sender="assistant").values_list("message", flat=True)) == [
        f"text {i}" for i in range(5)
    ]
