"""A Hypothesis state machine over the whole session lifecycle, checking the invariants after every step.

Steps: open, send (and retry a send), the answer finishing, failing or being stopped, rename,
close, reopen, archive, delete, auto-close (housekeeping), auto-title (the title task's write) and
the stale-stream sweep, in any order Hypothesis finds. User actions go through the REST API;
what workers do goes through the services they call. After every step:

- `message_order` is 1..n in every session: unique, no gap;
- `message_count` equals the messages stored;
- no message is `streaming` unless a generation runs in that session (at most one);
- a title the user gave is never overwritten by an automatic one;
- closed (and archived) sessions keep every message; only a permanent delete removes them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule, run_state_machine_as_test
from rest_framework.test import APIClient

from chat_sessions import services
from chat_sessions.conf import chat_settings
from chat_sessions.exceptions import (
    ClientMessageIdReused,
    GenerationInProgress,
    GenerationLimitReached,
    SessionArchived,
)
from chat_sessions.models import ChatSession, MessageStatus, SessionChatMessage, SessionStatus, TitleSource
from chat_sessions.tests.factories import NotebookFactory, UserFactory

pytestmark = pytest.mark.django_db

TITLES = st.text(min_size=0, max_size=210)
#: What a model writes (answers, titles): any text, NUL included.
WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)
#: What a user sends: the API refuses NUL (DRF's ProhibitNullCharactersValidator), so no NUL here.
USER_WORDS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40
)


class Model:
    """What the machine expects of one session."""

    def __init__(self, session_id: str, *, title: str | None) -> None:
        self.id = session_id
        self.messages = 0
        self.running = False
        self.status = SessionStatus.ACTIVE
        self.user_title = title
        #: The client message ids sent, and the text each was sent with.
        self.sent_ids: dict[str, str] = {}


class SessionLifecycle(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.user = UserFactory()
        self.notebook = NotebookFactory(owner=self.user)
        self.api = APIClient()
        self.api.force_authenticate(self.user)
        self.models: dict[str, Model] = {}
        self.clock = timezone.now()

    def teardown(self) -> None:
        self.notebook.delete()
        self.user.delete()

    def url(self, model: Model | None = None) -> str:
        base = f"/api/v1/notebooks/{self.notebook.id}/chat/sessions/"
        return base if model is None else f"{base}{model.id}/"

    def session(self, model: Model) -> ChatSession:
        return ChatSession.objects.get(pk=model.id)

    def running_count(self) -> int:
        return sum(model.running for model in self.models.values())

    # User actions, through the API
    # --------------------------------------------------------------------------

    @rule(target=sessions, title=st.none() | TITLES)
    def open(self, title):
        response = self.api.post(self.url(), {} if title is None else {"title": title}, format="json")
        acceptable = title is None or (len(title) <= 200 and "\x00" not in title)
        if not acceptable:
            assert response.status_code == 400, response.content
            return multiple()  # refused: no session to add
        assert response.status_code == 201, response.content
        data = response.json()["session"]
        given = (title or "").strip()
        model = Model(data["id"], title=given or None)
        assert data["title_source"] == (TitleSource.USER if given else TitleSource.DEFAULT)
        self.models[model.id] = model
        return model

    @rule(model=sessions, title=TITLES)
    def rename(self, model, title):
        if model.id not in self.models:
            return
        response = self.api.patch(self.url(model), {"title": title}, format="json")
        if not title.strip() or len(title.strip()) > 200 or "\x00" in title:
            assert response.status_code == 400, response.content
            return
        assert response.status_code == 200, response.content
        model.user_title = title.strip()

    @rule(model=sessions)
    def close(self, model):
        if model.id not in self.models:
            return
        assert self.api.delete(self.url(model)).status_code == 204
        if model.status == SessionStatus.ACTIVE:  # closed and archived ones stay as they are
            model.status = SessionStatus.CLOSED

    @rule(model=sessions, status=st.sampled_from(list(SessionStatus)))
    def set_status(self, model, status):
        """PATCH names the status: `closed` moves even an archived session (the tab's x does not)."""
        if model.id not in self.models:
            return
        response = self.api.patch(self.url(model), {"status": status}, format="json")
        assert response.status_code == 200, response.content
        model.status = status

    @rule(model=sessions)
    def delete(self, model):
        if model.id not in self.models:
            return
        assert self.api.delete(self.url(model) + "?permanent=true").status_code == 204
        del self.models[model.id]
        assert not SessionChatMessage.objects.filter(session_id=model.id).exists()

    # A turn: the send, then what the generation does
    # --------------------------------------------------------------------------

    @rule(model=sessions, text=USER_WORDS, retry=st.booleans(), same_text=st.booleans())
    def send(self, model, text, retry, same_text):
        if model.id not in self.models:
            return
        client_id = sorted(model.sent_ids)[0] if retry and model.sent_ids else f"c{len(model.sent_ids)}"
        replay = client_id in model.sent_ids
        if replay and same_text:
            text = model.sent_ids[client_id]
        try:
            started = services.turn_start(
                session=self.session(model), user=self.user, text=text, client_message_id=client_id
            )
        except ClientMessageIdReused:
            assert replay
            assert text != model.sent_ids[client_id]
            return
        except SessionArchived:
            assert not replay
            assert model.status == SessionStatus.ARCHIVED
            return
        except GenerationInProgress:
            assert not replay
            assert model.running
            return
        except GenerationLimitReached:
            assert not replay
            assert self.running_count() >= chat_settings.MAX_CONCURRENT_GENERATIONS_PER_USER
            return
        assert started.replayed == replay
        if replay:
            assert text == model.sent_ids[client_id]
            return
        assert model.status != SessionStatus.ARCHIVED
        assert not model.running
        model.sent_ids[client_id] = text
        model.messages += 2
        model.running = True
        model.status = SessionStatus.ACTIVE  # sending to a closed session reopens it

    def _streaming(self, model) -> SessionChatMessage:
        return SessionChatMessage.objects.get(session_id=model.id, status=MessageStatus.STREAMING)

    @rule(model=sessions, text=WORDS, outcome=st.sampled_from(["complete", "error", "interrupted"]))
    def generation_ends(self, model, text, outcome):
        if model.id not in self.models or not model.running:
            return
        answer = self._streaming(model)
        services.messages_flush(texts={answer.pk: (text[: len(text) // 2], "")})
        services.message_finish(message_id=answer.pk, text=text, status=outcome, metadata={})
        model.running = False

    @rule(model=sessions)
    def stopped_with_no_generation_left(self, model):
        """The stop endpoint's fallback when the generation's process is gone."""
        if model.id not in self.models or not model.running:
            return
        assert services.message_interrupt(message_id=self._streaming(model).pk)
        model.running = False

    # Workers
    # --------------------------------------------------------------------------

    @rule(hours=st.sampled_from([1, 25, 25, 25]))
    def auto_close(self, hours):
        self.clock += timedelta(hours=hours)
        services.sessions_close_idle(now=self.clock)
        cutoff = self.clock - chat_settings.IDLE_TIMEOUT
        for model in self.models.values():
            session = self.session(model)
            if model.status == SessionStatus.ACTIVE and not model.running and session.last_activity < cutoff:
                model.status = SessionStatus.CLOSED

    @rule(model=sessions, title=WORDS)
    def auto_title(self, model, title):
        if model.id not in self.models:
            return
        written = services.session_title_apply(session_id=model.id, title=title)
        if model.user_title is not None:
            assert not written

    @rule()
    def stale_sweep(self):
        far = timezone.now() + chat_settings.STALE_STREAM_AFTER + timedelta(seconds=1)
        swept = services.messages_interrupt_stale(now=far)
        assert swept == self.running_count()
        for model in self.models.values():
            model.running = False

    # Invariants (two queries per step: every session of the notebook, every message of them)
    # --------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self):
        sessions = {
            str(row["id"]): row
            for row in ChatSession.objects.filter(container=self.notebook).values(
                "id", "status", "title", "title_source", "message_count"
            )
        }
        orders: dict[str, list[int]] = {key: [] for key in sessions}
        streaming: dict[str, int] = dict.fromkeys(sessions, 0)
        for session_id, order, status in (
            SessionChatMessage.objects.filter(session__container=self.notebook)
            .order_by("session_id", "message_order")
            .values_list("session_id", "message_order", "status")
        ):
            orders[str(session_id)].append(order)
            streaming[str(session_id)] += status == MessageStatus.STREAMING

        assert set(sessions) == set(self.models)  # only a permanent delete removes a session
        for key, model in self.models.items():
            row = sessions[key]
            # message_order gap-free and unique; message_count equals the messages
            assert orders[key] == list(range(1, len(orders[key]) + 1)), orders[key]
            assert row["message_count"] == len(orders[key]) == model.messages
            # nothing streaming when no generation runs (and never two at once)
            assert streaming[key] == (1 if model.running else 0)
            # a title the user gave is never overwritten
            if model.user_title is not None:
                assert (row["title"], row["title_source"]) == (model.user_title, TitleSource.USER)
            # the status is what the steps made it; closing or archiving kept every message (above)
            assert row["status"] == model.status


def test_the_session_lifecycle_keeps_its_invariants_whatever_the_order_of_steps():
    run_state_machine_as_test(
        SessionLifecycle,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            derandomize=True,
        ),
    )
