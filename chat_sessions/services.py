"""Chat writes: sessions opened, renamed, closed, reopened and deleted; turns started and finished.

Every function here is the only way its change happens, so its rules (ordering, counters, status
transitions, title provenance) hold whichever door the request came in by: API, admin or task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from chat_sessions.agents.base import AgentError
from chat_sessions.agents.http import http_session_close
from chat_sessions.agents.registry import agent_backend
from chat_sessions.conf import chat_settings
from chat_sessions.exceptions import (
    ChatError,
    ClientMessageIdReused,
    GenerationInProgress,
    GenerationLimitReached,
    SessionArchived,
)
from chat_sessions.models import (
    ChatSession,
    ChatSessionTag,
    CleanupStatus,
    MessageStatus,
    RemoteCleanupBase,
    RemoteSessionCleanup,
    Sender,
    SessionChatMessage,
    SessionStatus,
    TagSource,
    TitleSource,
)
from chat_sessions.rows import model_from_row
from chat_sessions.selectors import running_generation_exists, session_for_user, streaming_messages
from chat_sessions.text import text_unicode_only
from chat_sessions.turn_sql import finish_sql, flush_sql, turn_sql, visible_condition

logger = logging.getLogger(__name__)


# Sessions
# ------------------------------------------------------------------------------


@transaction.atomic
def session_create(
    *,
    container: Any,
    user: Any,
    title: str | None = None,
    llm_model_name: str = "",
    rag_document_ids: Sequence[str] = (),
    tags: Sequence[str] = (),
) -> ChatSession:
    """Open a new session (a new tab) in a container the caller has already checked access to."""
    title = (title or "").strip()
    session = ChatSession.objects.create(
        container=container,
        created_by=user,
        title=title or chat_settings.DEFAULT_TITLE,
        title_source=TitleSource.USER if title else TitleSource.DEFAULT,
        llm_model_name=llm_model_name,
        rag_document_ids=list(rag_document_ids),
    )
    _tags_replace(session=session, names=tags, source=TagSource.USER)
    transaction.on_commit(lambda: agent_backend().on_session_created(session=session), robust=True)
    return session


@transaction.atomic
def session_rename(*, session: ChatSession, title: str) -> ChatSession:
    """Give a session the user's own title; auto-naming will never overwrite it."""
    session.title = title.strip() or chat_settings.DEFAULT_TITLE
    session.title_source = TitleSource.USER
    session.save(update_fields=["title", "title_source", "updated_at"])
    return session


@transaction.atomic
def session_update(
    *,
    session: ChatSession,
    title: str | None = None,
    pinned: bool | None = None,
    tags: Sequence[str] | None = None,
    status: str | None = None,
) -> ChatSession:
    """Apply a user's edits: any of title, pin, tags and status, each with its own rule."""
    if title is not None:
        session_rename(session=session, title=title)
    if pinned is not None and pinned != session.pinned:
        session.pinned = pinned
        session.save(update_fields=["pinned", "updated_at"])
    if tags is not None:
        _tags_replace(session=session, names=tags, source=TagSource.USER)
    if status is not None and status != session.status:
        {
            SessionStatus.ACTIVE: session_reopen,
            SessionStatus.CLOSED: _session_unarchive if session.status == SessionStatus.ARCHIVED else session_close,
            SessionStatus.ARCHIVED: session_archive,
        }[SessionStatus(status)](session=session)
    return session


def _session_unarchive(*, session: ChatSession) -> ChatSession:
    """Archived to closed, asked for by name: out of the tabs still, but a new message reopens it.

    Not `session_close`, which leaves an archived session as it is (the tab's x must not undo an
    archive); choosing `closed` for one is the user saying so.
    """
    return _session_put_away(session=session, status=SessionStatus.CLOSED)


def _session_put_away(*, session: ChatSession, status: str) -> ChatSession:
    """Out of the tabs as `status`, keeping when it first left them."""
    session.status = status
    session.ended_at = session.ended_at or timezone.now()
    session.save(update_fields=["status", "ended_at", "updated_at"])
    return session


@transaction.atomic
def session_close(*, session: ChatSession, now: datetime | None = None) -> ChatSession:
    """Close the tab: the session leaves the tab list, its messages stay, a new message reopens it.

    A session already out of the tab list is left as it is: closing a closed one again keeps when
    it was closed, and an archived one stays archived (closing it made it reopen on a message).
    """
    if session.status != SessionStatus.ACTIVE:
        return session
    session.status = SessionStatus.CLOSED
    session.ended_at = now or timezone.now()
    session.save(update_fields=["status", "ended_at", "updated_at"])
    return session


@transaction.atomic
def session_reopen(*, session: ChatSession) -> ChatSession:
    """Bring a closed or archived session back to the tab list."""
    now = timezone.now()
    session.status = SessionStatus.ACTIVE
    session.ended_at = None
    session.started_at = now
    session.last_activity = now
    session.save(update_fields=["status", "ended_at", "started_at", "last_activity", "updated_at"])
    return session


@transaction.atomic
def session_archive(*, session: ChatSession) -> ChatSession:
    """Put a session away: kept and listed under `archived`, refusing messages until reopened."""
    return _session_put_away(session=session, status=SessionStatus.ARCHIVED)


@transaction.atomic
def session_delete(*, session: ChatSession) -> None:
    """Delete a session and its messages for good; its remote conversation is removed by a worker.

    The clean-up is recorded in the same transaction, so it is never forgotten: a broker that is
    down, or a remote that keeps refusing, leaves a `pending` or `failed` row in the admin.
    """
    # Locked first, as a turn takes it, before the cascade deletes its messages (see message_finish).
    ChatSession.objects.select_for_update().filter(pk=session.pk).values_list("pk").first()
    cleanup = None
    if session.remote_session_id:
        cleanup = RemoteSessionCleanup.objects.create(
            session_id=session.pk,
            container_id=str(session.container_id),
            remote_agent_id=session.remote_agent_id,
            remote_session_id=session.remote_session_id,
        )
    session.delete()
    if cleanup is not None:
        remote_session_cleanup_schedule(cleanup_id=cleanup.pk)


def session_remote_ids_set(*, session_id: Any, remote_session_id: str, remote_agent_id: str = "") -> None:
    """Remember the upstream conversation a session maps to (first answer of a session)."""
    fields: dict[str, Any] = {"remote_session_id": remote_session_id, "updated_at": timezone.now()}
    if remote_agent_id:
        fields["remote_agent_id"] = remote_agent_id
    ChatSession.objects.filter(pk=session_id).update(**fields)


def _tags_replace(*, session: ChatSession, names: Iterable[str], source: str) -> None:
    wanted = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    session.tag_set.filter(source=source).exclude(name__in=wanted).delete()
    existing = set(session.tag_set.filter(source=source).values_list("name", flat=True))
    ChatSessionTag.objects.bulk_create(
        [ChatSessionTag(session=session, name=name, source=source) for name in wanted if name not in existing]
    )
    session.__dict__.pop("loaded_tags", None)  # tags loaded for showing it are stale now


def session_suggested_tags_set(*, session_id: Any, names: Sequence[str]) -> None:
    """Store tags suggested by the auto-namer, apart from the user's own (which stay untouched)."""
    with transaction.atomic():
        session = ChatSession.objects.select_for_update().filter(pk=session_id).first()
        if session is not None:
            fitting = [name for name in _storable(names) if len(name.strip()) <= chat_settings.MAX_TAG_LENGTH]
            _tags_replace(session=session, names=fitting[: chat_settings.MAX_TAGS], source=TagSource.AUTO)


def session_title_apply(*, session_id: Any, title: str) -> bool:
    """Write a generated title only while the title is still the default; True if it was written.

    One conditional UPDATE, so a user's rename that lands first always wins, and one that lands
    later simply replaces the generated title.
    """
    title = _storable(title).strip()[: chat_settings.MAX_TITLE_LENGTH]
    if not title:
        return False
    updated = ChatSession.objects.filter(pk=session_id, title_source=TitleSource.DEFAULT).update(
        title=title, title_source=TitleSource.AUTO, updated_at=timezone.now()
    )
    return bool(updated)


# Turns
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnStarted:
    """The two messages of a turn; `replayed` when a retry found the turn already there."""

    session: ChatSession
    user_message: SessionChatMessage
    assistant_message: SessionChatMessage
    replayed: bool = False


def turn_start(*, session: ChatSession, user: Any, text: str, client_message_id: str | None = None) -> TurnStarted:
    """Store the user's message and an empty `streaming` answer, in order, exactly once.

    On PostgreSQL the common case is one statement (`turn_sql`); anything it cannot decide alone
    (a retry, an archived session, an answer already streaming, the user's limit, a race) takes
    the locked path, which gives the precise answer.
    """
    if connection.vendor == "postgresql":
        started = _turn_start_in_one_statement(
            session_id=session.pk, user=user, text=text, client_message_id=client_message_id
        )
        if started is not None:
            return started
    return _turn_start_locked(session=session, user=user, text=text, client_message_id=client_message_id)


def turn_start_for_user(
    *, user: Any, container_id: Any, session_id: Any, text: str, client_message_id: str | None = None
) -> TurnStarted | None:
    """`turn_start` in a session named by id, if the user may see it there; None if not.

    On PostgreSQL the lookup is part of the turn's one statement (`turn_sql.visible_condition`, the
    access policy's query included): a send finds its session and stores its turn in one round
    trip. Whatever that statement cannot decide, the lookup and `turn_start`'s locked path do.
    """
    try:
        session_id = ChatSession._meta.pk.to_python(session_id)
    except ValidationError:
        return None
    if connection.vendor == "postgresql":
        visible = visible_condition(user=user, container_id=container_id)
        if visible is not None:
            started = _turn_start_in_one_statement(
                session_id=session_id, user=user, text=text, client_message_id=client_message_id, visible=visible
            )
            if started is not None:
                return started
    session = session_for_user(user=user, container_id=container_id, session_id=session_id)
    if session is None:
        return None
    return _turn_start_locked(session=session, user=user, text=text, client_message_id=client_message_id)


def _turn_start_in_one_statement(
    *,
    session_id: Any,
    user: Any,
    text: str,
    client_message_id: str | None,
    visible: tuple[str, list[Any]] | None = None,
) -> TurnStarted | None:
    """The turn in one round trip, or None when the locked path must decide.

    Its `UPDATE` takes the session row's lock, so concurrent turns of a session get consecutive
    orders; a failed statement rolls its counter back, so orders have no gaps. What the statement
    reads besides that row it reads as of its start, so two racing sends could both find no answer
    streaming: `chat_msg_one_streaming_unique` refuses the second, which then takes the locked path.
    """
    now = timezone.now()
    question, answer = _turn_messages(session_id=session_id, text=text, client_message_id=client_message_id, now=now)
    sql, params, session_fields = turn_sql(
        session_id=session_id,
        user_id=user.pk,
        messages=(question, answer),
        client_message_id=client_message_id or None,
        limit=chat_settings.MAX_CONCURRENT_GENERATIONS_PER_USER,
        now=now,
        visible=visible,
    )
    # In autocommit the statement is its own transaction; inside one, a savepoint keeps a refusal
    # from breaking the caller's transaction.
    scope = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    try:
        with scope, connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    except IntegrityError:
        return None
    if not rows:
        return None
    locked = model_from_row(ChatSession, session_fields, rows[0][2:])
    for message, (pk, order, *_) in zip((question, answer), rows, strict=True):
        message.pk, message.message_order, message.session = pk, order, locked
        message._state.adding, message._state.db = False, connection.alias
    return TurnStarted(session=locked, user_message=question, assistant_message=answer)


def _generation_refusal(*, session: ChatSession, user: Any) -> ChatError | None:
    """Why a new answer cannot start now: one streaming in the session, or the user's limit reached."""
    if streaming_messages().filter(session=session).exists():
        return GenerationInProgress()
    limit = chat_settings.MAX_CONCURRENT_GENERATIONS_PER_USER
    if limit and streaming_messages().filter(session__created_by=user).count() >= limit:
        return GenerationLimitReached()
    return None


def _turn_messages(
    *, session_id: Any, text: str, client_message_id: str | None, now: datetime
) -> tuple[SessionChatMessage, SessionChatMessage]:
    """A turn's two messages, unsaved and without their orders."""
    return (
        SessionChatMessage(
            session_id=session_id,
            sender=Sender.USER,
            message=text,
            status=MessageStatus.COMPLETE,
            client_message_id=client_message_id or None,
            timestamp=now,
            updated_at=now,
        ),
        SessionChatMessage(
            session_id=session_id,
            sender=Sender.ASSISTANT,
            message="",
            status=MessageStatus.STREAMING,
            timestamp=now,
            updated_at=now,
        ),
    )


@transaction.atomic
def _turn_start_locked(
    *, session: ChatSession, user: Any, text: str, client_message_id: str | None = None
) -> TurnStarted:
    """The turn under `SELECT ... FOR UPDATE` of the session row, every rule checked in turn.

    Concurrent sends to one session queue on the lock: the check for a running generation and the
    next `message_order` are both decided under it. A rollback undoes the counter too.
    """
    locked = ChatSession.objects.select_for_update().get(pk=session.pk)
    if client_message_id:
        first = SessionChatMessage.objects.filter(
            session=locked, client_message_id=client_message_id, sender=Sender.USER
        ).first()
        if first is not None:
            if first.message != text:
                # A retry repeats its message; another message under the same id would otherwise
                # get the first one's answer back, and be lost without a word.
                raise ClientMessageIdReused()
            answer = SessionChatMessage.objects.get(session=locked, message_order=first.message_order + 1)
            return TurnStarted(session=locked, user_message=first, assistant_message=answer, replayed=True)
    if locked.status == SessionStatus.ARCHIVED:
        raise SessionArchived()
    refusal = _generation_refusal(session=locked, user=user)
    # Answers a dead process left `streaming` (a restart mid-answer) hold neither the session
    # nor the user's limit: they are marked `interrupted` here rather than by the next sweep.
    if refusal is not None and messages_interrupt_stale(user=user):
        refusal = _generation_refusal(session=locked, user=user)
    if refusal is not None:
        raise refusal

    now = timezone.now()
    order = locked.message_count
    question, answer = _turn_messages(session_id=locked.pk, text=text, client_message_id=client_message_id, now=now)
    question.message_order, answer.message_order = order + 1, order + 2
    question.session = answer.session = locked
    SessionChatMessage.objects.bulk_create([question, answer])
    locked.message_count = order + 2
    locked.last_activity = now
    fields = ["message_count", "last_activity", "updated_at"]
    if locked.status == SessionStatus.CLOSED:
        locked.status, locked.ended_at, locked.started_at = SessionStatus.ACTIVE, None, now
        fields += ["status", "ended_at", "started_at"]
    locked.save(update_fields=fields)
    return TurnStarted(session=locked, user_message=question, assistant_message=answer)


def _storable(value: Any) -> Any:
    """Text (or JSON) a model wrote, made storable: PostgreSQL refuses NUL in text and \\u0000 in jsonb,
    and no database takes half of a UTF-16 surrogate pair (`chat_sessions.text`).

    A NUL or a half becomes U+FFFD, the replacement character, so what was there stays visible.
    """
    if isinstance(value, str):
        return text_unicode_only(value).replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


#: Answers one flush statement writes (three parameters each; PostgreSQL takes at most 65,535).
FLUSH_ROWS_PER_STATEMENT = 5000


def messages_flush(*, texts: Mapping[int, tuple[str, str]]) -> None:
    """Save the growing text (and reasoning) of many streaming answers in one short transaction.

    On PostgreSQL one statement writes them all (`turn_sql.flush_sql`): with thousands of open
    answers, a statement each was the persistence threads' largest cost.
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        rows = [(pk, _storable(text), _storable(reasoning) or None) for pk, (text, reasoning) in texts.items()]
        with connection.cursor() as cursor:
            for start in range(0, len(rows), FLUSH_ROWS_PER_STATEMENT):
                cursor.execute(*flush_sql(texts=rows[start : start + FLUSH_ROWS_PER_STATEMENT], now=now))
        return
    with transaction.atomic():
        for message_id, (text, reasoning) in texts.items():
            fields: dict[str, Any] = {"message": _storable(text), "updated_at": now}
            if reasoning:
                fields["metadata"] = {"reasoning": _storable(reasoning)}
            SessionChatMessage.objects.filter(pk=message_id, status=MessageStatus.STREAMING).update(**fields)


def message_finish(
    *, message_id: int, text: str, status: str, metadata: Mapping[str, Any]
) -> SessionChatMessage | None:
    """Save an answer's final text and status; a complete answer in an untitled session asks for a title.

    Not only the first exchange: when the first answer failed, the first one that completes names
    the session.
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _message_finish_in_one_statement(message_id=message_id, text=text, status=status, metadata=metadata)
    with transaction.atomic():
        # The session row first, as a turn takes them: a turn holding it may be waiting on this
        # answer's row (one streaming answer per session), so the other order could deadlock.
        ChatSession.objects.filter(messages__pk=message_id).update(last_activity=now)
        SessionChatMessage.objects.filter(pk=message_id).update(
            message=_storable(text), status=status, metadata=_storable(metadata), updated_at=now
        )
        message = SessionChatMessage.objects.select_related("session").filter(pk=message_id).first()
        if message is None:  # the session was deleted while it streamed
            return None
        if status == MessageStatus.COMPLETE and message.session.title_source == TitleSource.DEFAULT:
            session_title_schedule(session_id=message.session_id)
    return message


def _message_finish_in_one_statement(
    *, message_id: int, text: str, status: str, metadata: Mapping[str, Any]
) -> SessionChatMessage | None:
    """`message_finish` in one round trip (`turn_sql.finish_sql`): what the locked path does in four."""
    sql, params, message_fields = finish_sql(
        message_id=message_id, text=_storable(text), status=status, metadata=_storable(metadata), now=timezone.now()
    )
    # In autocommit the statement is its own transaction; inside one, the title waits for its commit.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:  # the session was deleted while it streamed
        return None
    title_source, *columns = row
    message = model_from_row(SessionChatMessage, message_fields, tuple(columns))
    if status == MessageStatus.COMPLETE and title_source == TitleSource.DEFAULT:
        session_title_schedule(session_id=message.session_id)
    return message


def session_title_schedule(*, session_id: Any) -> None:
    """Ask a worker for a title, after the current transaction commits.

    `robust`: a broker that is down must not fail the answer that was just saved; housekeeping
    finds sessions left untitled and asks again.
    """
    from chat_sessions.tasks import session_title_generate

    transaction.on_commit(lambda: session_title_generate.delay(session_id=str(session_id)), robust=True)


# Housekeeping
# ------------------------------------------------------------------------------


def sessions_close_idle(*, now: datetime | None = None) -> int:
    """Close active sessions idle past `IDLE_TIMEOUT`, in one set-based update; safe to repeat.

    Messages are kept. A session with an answer streaming is skipped, and so is a pinned one when
    `AUTO_CLOSE_EXEMPTS_PINNED` is set. Idle time is elapsed time between aware datetimes, so the
    server's time zone and daylight-saving changes do not move the cutoff.
    """
    now = now or timezone.now()
    if timezone.is_naive(now):
        raise ValueError("sessions_close_idle needs an aware datetime")
    cutoff = now - chat_settings.IDLE_TIMEOUT
    idle = ChatSession.objects.filter(status=SessionStatus.ACTIVE, last_activity__lt=cutoff).filter(
        ~running_generation_exists()
    )
    if chat_settings.AUTO_CLOSE_EXEMPTS_PINNED:
        idle = idle.exclude(pinned=True)
    # The status and age are checked again by the UPDATE itself, so a message sent meanwhile
    # (it bumps `last_activity` under a row lock) keeps its session open.
    closed = idle.update(status=SessionStatus.CLOSED, ended_at=now, updated_at=now)
    logger.info("Closed %d chat sessions idle since before %s", closed, cutoff.isoformat())
    return closed


def messages_interrupt_stale(*, now: datetime | None = None, user: Any = None, message_id: int | None = None) -> int:
    """Mark answers left `streaming` by a dead process as `interrupted`, keeping their text; the number.

    All of them (the housekeeping sweep), or only `user`'s, or only `message_id`. A live generation's
    answer is written at least every `HEARTBEAT_INTERVAL`, its agent silent or not
    (`streaming.heartbeat`), so one unwritten for `STALE_STREAM_AFTER` has no writer left.
    """
    now = now or timezone.now()
    stale = streaming_messages().filter(updated_at__lt=now - chat_settings.STALE_STREAM_AFTER)
    if user is not None:
        stale = stale.filter(session__created_by=user)
    if message_id is not None:
        stale = stale.filter(pk=message_id)
    count = stale.update(status=MessageStatus.INTERRUPTED, updated_at=now)
    if count:
        logger.warning("Marked %d stale streaming answers as interrupted", count)
    return count


def messages_touch(*, message_ids: Collection[int]) -> int:
    """Mark live answers as written now, their agents silent or not (`streaming.heartbeat`).

    Answers a flush wrote within the last heartbeat are left alone: rows streaming tokens are not
    written twice.
    """
    ids, now, touched = list(message_ids), timezone.now(), 0
    silent = streaming_messages().filter(updated_at__lt=now - timedelta(seconds=chat_settings.HEARTBEAT_INTERVAL))
    for start in range(0, len(ids), FLUSH_ROWS_PER_STATEMENT):
        touched += silent.filter(pk__in=ids[start : start + FLUSH_ROWS_PER_STATEMENT]).update(updated_at=now)
    return touched


def message_interrupt(*, message_id: int) -> bool:
    """Mark one answer `interrupted` if it is still `streaming` (its generation is gone)."""
    return bool(
        streaming_messages().filter(pk=message_id).update(status=MessageStatus.INTERRUPTED, updated_at=timezone.now())
    )


def session_title_regenerate(*, session: ChatSession) -> bool:
    """The user asked for a new title: make the title replaceable again and ask a worker for one.

    Asking is the user's latest word, so it replaces their own earlier title too; a rename made
    while the new title is generated wins again. A session with no complete answer yet has
    nothing to be titled from and is left as it is (False).
    """
    answered = SessionChatMessage.objects.filter(
        session=session, sender=Sender.ASSISTANT, status=MessageStatus.COMPLETE
    ).exists()
    if not answered:
        return False
    with transaction.atomic():
        ChatSession.objects.filter(pk=session.pk).update(title_source=TitleSource.DEFAULT, updated_at=timezone.now())
        session_title_schedule(session_id=session.pk)
    return True


# Remote clean-up
# ------------------------------------------------------------------------------


def remote_session_cleanup_schedule(*, cleanup_id: int) -> None:
    """Ask a worker to delete a remote conversation, after the current transaction commits.

    `robust`: the local deletion stands even if the broker is down; the row stays `pending`.
    """
    from chat_sessions.tasks import remote_session_delete

    transaction.on_commit(lambda: remote_session_delete.delay(cleanup_id=cleanup_id), robust=True)


def remote_session_cleanup_run(*, cleanup_id: int, last_attempt: bool) -> bool:
    """Delete one remote conversation and record the attempt; True once it is gone.

    Safe to repeat: a clean-up already `done` (or removed) is not attempted again. When the remote
    refuses, the error is recorded and `AgentError` raised for the caller to retry, except on the
    last attempt, which leaves the row `failed` and returns False.
    """
    cleanup = RemoteSessionCleanup.objects.filter(pk=cleanup_id).first()
    if cleanup is None or cleanup.status == CleanupStatus.DONE:
        return True
    rows = RemoteSessionCleanup.objects.filter(pk=cleanup_id)
    try:
        asyncio.run(
            _remote_session_close(remote_agent_id=cleanup.remote_agent_id, remote_session_id=cleanup.remote_session_id)
        )
    except AgentError as exc:
        status = CleanupStatus.FAILED if last_attempt else CleanupStatus.PENDING
        rows.update(status=status, attempts=F("attempts") + 1, last_error=exc.message, updated_at=timezone.now())
        if last_attempt:
            logger.error(
                "Giving up deleting remote session %s of deleted session %s: %s",
                cleanup.remote_session_id,
                cleanup.session_id,
                exc.message,
            )
            return False
        raise
    now = timezone.now()
    rows.update(status=CleanupStatus.DONE, attempts=F("attempts") + 1, last_error="", finished_at=now, updated_at=now)
    return True


#: A pending clean-up untouched this long lost its task (a broker restart, a killed worker).
CLEANUP_STUCK_AFTER = timedelta(hours=1)
#: A pending clean-up never attempted this long after it was written (or last asked for) had no
#: task: its upstream was switched off when it was written. It is asked for at the next sweep
#: rather than an hour later, since until then RAGFlow still answers from what was deleted here.
CLEANUP_NEVER_TRIED_AFTER = timedelta(minutes=1)


def remote_cleanups_claim_stuck(*, model: type[RemoteCleanupBase], now: datetime, limit: int = 100) -> list[int]:
    """Ids of pending clean-ups (of any `RemoteCleanupBase` model) whose task was lost.

    They are marked as touched, so the next sweep leaves them to the task asked for now.
    """
    stuck = list(
        model.objects.filter(
            Q(updated_at__lt=now - CLEANUP_STUCK_AFTER) | Q(attempts=0, updated_at__lt=now - CLEANUP_NEVER_TRIED_AFTER),
            status=CleanupStatus.PENDING,
        ).values_list("pk", flat=True)[:limit]
    )
    model.objects.filter(pk__in=stuck).update(updated_at=now)
    return stuck


def remote_session_cleanups_resume(*, now: datetime | None = None) -> int:
    """Ask again for pending session clean-ups whose task was lost; the number asked for."""
    stuck = remote_cleanups_claim_stuck(model=RemoteSessionCleanup, now=now or timezone.now())
    for cleanup_id in stuck:
        remote_session_cleanup_schedule(cleanup_id=cleanup_id)
    return len(stuck)


def remote_session_cleanup_retry(*, cleanup: RemoteSessionCleanup) -> None:
    """Try a failed (or stuck) clean-up again, from the admin."""
    with transaction.atomic():
        RemoteSessionCleanup.objects.filter(pk=cleanup.pk).exclude(status=CleanupStatus.DONE).update(
            status=CleanupStatus.PENDING, updated_at=timezone.now()
        )
        remote_session_cleanup_schedule(cleanup_id=cleanup.pk)


async def _remote_session_close(*, remote_agent_id: str, remote_session_id: str) -> None:
    try:
        await agent_backend().session_close(remote_agent_id=remote_agent_id, remote_session_id=remote_session_id)
    finally:
        # This event loop ends with the call: close the HTTP pool it opened.
        await http_session_close()
