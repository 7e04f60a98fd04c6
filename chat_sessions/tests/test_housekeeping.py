"""Housekeeping: idle sessions closed after IDLE_TIMEOUT of elapsed time, stale streams interrupted."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from chat_sessions import services
from chat_sessions.conf import chat_settings
from chat_sessions.models import ChatSession, MessageStatus, Sender, SessionChatMessage, SessionStatus, TitleSource
from chat_sessions.tasks import sessions_housekeeping
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, NotebookFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
DAY = timedelta(hours=24)
SECOND = timedelta(seconds=1)


@pytest.fixture
def no_llm(settings):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "TITLE_BACKEND": None}


def session_active_since(last_activity: datetime, **fields) -> ChatSession:
    notebook = NotebookFactory()
    session = ChatSessionFactory(container=notebook, created_by=notebook.owner, **fields)
    MessageFactory(session=session, sender=Sender.USER, message="What is RuBisCO?", message_order=1)
    MessageFactory(session=session, sender=Sender.ASSISTANT, message="An enzyme.", message_order=2)
    ChatSession.objects.filter(pk=session.pk).update(last_activity=last_activity, message_count=2)
    session.refresh_from_db()
    return session


def housekeeping_at(moment: datetime) -> dict[str, int]:
    with time_machine.travel(moment, tick=False):
        return sessions_housekeeping.delay().get()


# The 24-hour boundary
# ------------------------------------------------------------------------------


def test_a_session_idle_for_23h59m59s_stays_active():
    session = session_active_since(T0)

    result = housekeeping_at(T0 + DAY - SECOND)

    session.refresh_from_db()
    assert result["closed"] == 0
    assert session.status == SessionStatus.ACTIVE
    assert session.ended_at is None


def test_a_session_idle_for_24h00m01s_is_closed_with_its_messages_kept():
    session = session_active_since(T0)

    result = housekeeping_at(T0 + DAY + SECOND)

    session.refresh_from_db()
    assert result["closed"] == 1
    assert session.status == SessionStatus.CLOSED
    assert session.ended_at == T0 + DAY + SECOND
    assert session.last_activity == T0
    assert list(session.messages.order_by("message_order").values_list("message", flat=True)) == [
        "What is RuBisCO?",
        "An enzyme.",
    ]
    assert session.message_count == 2


def test_the_idle_timeout_comes_from_settings(settings):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "IDLE_TIMEOUT": timedelta(hours=2)}
    session = session_active_since(T0)

    assert housekeeping_at(T0 + timedelta(hours=2) - SECOND)["closed"] == 0
    assert housekeeping_at(T0 + timedelta(hours=2) + SECOND)["closed"] == 1
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED


# Time zones: the cutoff is elapsed time, whatever the server's zone or its clock changes
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Pacific/Chatham"])
def test_the_servers_time_zone_does_not_move_the_cutoff(settings, zone):
    settings.TIME_ZONE = zone
    local = ZoneInfo(zone)
    # The last message, as the server's local clock showed it.
    session = session_active_since(T0.astimezone(local))

    assert housekeeping_at((T0 + DAY - SECOND).astimezone(local))["closed"] == 0
    assert housekeeping_at((T0 + DAY + SECOND).astimezone(local))["closed"] == 1
    session.refresh_from_db()
    assert session.ended_at == T0 + DAY + SECOND


@pytest.mark.parametrize(
    ("last_message_local", "wall_clock_hours_at_24h"),
    [
        # Spring forward in Berlin (30 March 2025, 02:00 -> 03:00): 24 hours later the wall clock
        # has moved 25 hours.
        (datetime(2025, 3, 29, 12, 0), 25),
        # Fall back (26 October 2025, 03:00 -> 02:00): 24 hours later it has moved 23 hours.
        (datetime(2025, 10, 25, 12, 0), 23),
    ],
)
def test_a_daylight_saving_change_neither_shortens_nor_lengthens_the_24_hours(
    settings, last_message_local, wall_clock_hours_at_24h
):
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    last_activity = last_message_local.replace(tzinfo=berlin)
    session = session_active_since(last_activity)
    just_before = (last_activity.astimezone(UTC) + DAY - SECOND).astimezone(berlin)
    just_after = (last_activity.astimezone(UTC) + DAY + SECOND).astimezone(berlin)
    # The wall clock disagrees with the elapsed time; the elapsed time decides.
    wall_clock = just_after.replace(tzinfo=None) - last_message_local
    assert round(wall_clock.total_seconds() / 3600) == wall_clock_hours_at_24h

    assert housekeeping_at(just_before)["closed"] == 0
    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE
    assert housekeeping_at(just_after)["closed"] == 1
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED


def test_closing_needs_an_aware_time():
    with pytest.raises(ValueError, match="aware"):
        services.sessions_close_idle(now=datetime(2025, 6, 3, 12, 0))


# What is skipped
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(("exempt", "closed"), [(True, 0), (False, 1)])
def test_pinned_sessions_are_exempt_only_when_the_setting_says_so(settings, exempt, closed):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "AUTO_CLOSE_EXEMPTS_PINNED": exempt}
    pinned = session_active_since(T0, pinned=True)

    result = housekeeping_at(T0 + DAY + SECOND)

    pinned.refresh_from_db()
    assert result["closed"] == closed
    assert pinned.status == (SessionStatus.ACTIVE if exempt else SessionStatus.CLOSED)


def test_a_session_with_an_answer_being_generated_is_not_closed():
    session = session_active_since(T0)
    MessageFactory(session=session, sender=Sender.USER, message="One more?", message_order=3)
    MessageFactory(
        session=session,
        sender=Sender.ASSISTANT,
        message="Still wri",
        message_order=4,
        status=MessageStatus.STREAMING,
        updated_at=T0 + DAY,
    )

    closed = services.sessions_close_idle(now=T0 + DAY + SECOND)

    session.refresh_from_db()
    assert closed == 0
    assert session.status == SessionStatus.ACTIVE


@pytest.mark.parametrize("status", [SessionStatus.CLOSED, SessionStatus.ARCHIVED])
def test_sessions_already_put_away_are_left_as_they_are(status):
    ended = T0 + timedelta(hours=1)
    session = session_active_since(T0, status=status, ended_at=ended)

    result = housekeeping_at(T0 + 3 * DAY)

    session.refresh_from_db()
    assert result["closed"] == 0
    assert (session.status, session.ended_at) == (status, ended)


# Set-based, idempotent, logged
# ------------------------------------------------------------------------------


def test_many_idle_sessions_are_closed_by_one_update(django_assert_num_queries):
    sessions = [session_active_since(T0 - timedelta(minutes=n)) for n in range(5)]
    recent = session_active_since(T0 + DAY)

    with django_assert_num_queries(1):
        closed = services.sessions_close_idle(now=T0 + DAY + SECOND)

    assert closed == 5
    assert ChatSession.objects.filter(pk__in=[s.pk for s in sessions], status=SessionStatus.CLOSED).count() == 5
    recent.refresh_from_db()
    assert recent.status == SessionStatus.ACTIVE


def test_running_housekeeping_twice_closes_nothing_the_second_time():
    session = session_active_since(T0)

    first = housekeeping_at(T0 + DAY + SECOND)
    second = housekeeping_at(T0 + DAY + 10 * SECOND)

    session.refresh_from_db()
    assert (first["closed"], second["closed"]) == (1, 0)
    assert session.ended_at == T0 + DAY + SECOND


def test_closing_logs_how_many_sessions_it_closed(caplog):
    session_active_since(T0)
    session_active_since(T0)

    with caplog.at_level(logging.INFO, logger="chat_sessions.services"):
        housekeeping_at(T0 + DAY + SECOND)

    assert "Closed 2 chat sessions idle since before 2025-06-02T09:30:01+00:00" in caplog.text


def test_a_closed_session_reopens_when_the_user_sends_to_it():
    session = session_active_since(T0)
    housekeeping_at(T0 + DAY + SECOND)

    with time_machine.travel(T0 + 2 * DAY, tick=False):
        started = services.turn_start(session=session, user=session.created_by, text="Back again")

    session.refresh_from_db()
    assert started.user_message.message_order == 3
    assert session.status == SessionStatus.ACTIVE
    assert session.ended_at is None
    assert session.last_activity == T0 + 2 * DAY


# Stale streams
# ------------------------------------------------------------------------------


def streaming_answer(session: ChatSession, *, written_at: datetime, text: str) -> SessionChatMessage:
    order = session.message_count + 1
    MessageFactory(session=session, sender=Sender.USER, message="Tell me more", message_order=order)
    return MessageFactory(
        session=session,
        sender=Sender.ASSISTANT,
        message=text,
        message_order=order + 1,
        status=MessageStatus.STREAMING,
        updated_at=written_at,
    )


def test_an_answer_left_streaming_past_the_limit_is_interrupted_with_its_text_kept():
    limit = chat_settings.STALE_STREAM_AFTER
    session = session_active_since(T0)
    stale = streaming_answer(session, written_at=T0 - limit - SECOND, text="Half an ans")
    other = session_active_since(T0)
    alive = streaming_answer(other, written_at=T0 - limit + SECOND, text="Still comi")

    result = housekeeping_at(T0)

    stale.refresh_from_db()
    alive.refresh_from_db()
    assert result["interrupted"] == 1
    assert (stale.status, stale.message) == (MessageStatus.INTERRUPTED, "Half an ans")
    assert (alive.status, alive.message) == (MessageStatus.STREAMING, "Still comi")


def test_an_answer_whose_process_died_no_longer_keeps_its_idle_session_open():
    session = session_active_since(T0)
    streaming_answer(session, written_at=T0, text="Cut o")

    result = housekeeping_at(T0 + DAY + SECOND)

    session.refresh_from_db()
    assert (result["interrupted"], result["closed"]) == (1, 1)
    assert session.status == SessionStatus.CLOSED
    assert session.messages.get(message_order=4).message == "Cut o"


# Titles that never came
# ------------------------------------------------------------------------------


def test_housekeeping_asks_again_for_a_title_that_was_lost(no_llm):
    lost = session_active_since(T0)
    SessionChatMessage.objects.filter(session=lost).update(updated_at=T0 - timedelta(minutes=5))
    in_flight = session_active_since(T0)
    SessionChatMessage.objects.filter(session=in_flight).update(updated_at=T0 - timedelta(minutes=1))
    named = session_active_since(T0, title="Mine", title_source=TitleSource.USER)
    SessionChatMessage.objects.filter(session=named).update(updated_at=T0 - timedelta(minutes=5))

    result = housekeeping_at(T0)

    lost.refresh_from_db()
    in_flight.refresh_from_db()
    named.refresh_from_db()
    assert result["titles_requested"] == 1
    assert (lost.title, lost.title_source) == ("RuBisCO", TitleSource.AUTO)
    assert in_flight.title_source == TitleSource.DEFAULT
    assert named.title == "Mine"
