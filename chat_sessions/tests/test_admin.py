"""The admin: staff find sessions by title or owner, read messages in order, close and reopen."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from chat_sessions import services
from chat_sessions.models import ChatSession, MessageStatus, SessionChatMessage, SessionStatus, TitleSource
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, NotebookFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/chat_sessions/chatsession/",
        "/admin/chat_sessions/sessionchatmessage/",
        "/admin/notebooks/notebook/",
        "/admin/notebooks/source/",
        "/admin/notebooks/ragflowdataset/",
        "/admin/notebooks/ragflowagent/",
    ],
)
def test_every_model_is_registered(staff_client, url):
    assert staff_client.get(url).status_code == 200


def test_sessions_are_searchable_by_title_and_owner(staff_client):
    alice = UserFactory(username="alice")
    ChatSessionFactory(title="Photosynthesis notes", container=NotebookFactory(owner=alice), created_by=alice)
    ChatSessionFactory(title="Unrelated")

    by_title = staff_client.get("/admin/chat_sessions/chatsession/", {"q": "photosynth"}).content.decode()
    by_owner = staff_client.get("/admin/chat_sessions/chatsession/", {"q": "alice"}).content.decode()

    assert "Photosynthesis notes" in by_title
    assert "Unrelated" not in by_title
    assert "Photosynthesis notes" in by_owner
    assert "Unrelated" not in by_owner


def test_sessions_filter_by_status_and_notebook(staff_client):
    kept = ChatSessionFactory(title="Closed one", status=SessionStatus.CLOSED)
    ChatSessionFactory(title="Open one")

    page = staff_client.get("/admin/chat_sessions/chatsession/", {"status__exact": "closed"}).content.decode()
    by_notebook = staff_client.get(
        "/admin/chat_sessions/chatsession/", {"container__id__exact": str(kept.container_id)}
    ).content.decode()

    assert "Closed one" in page
    assert "Open one" not in page
    assert "Closed one" in by_notebook
    assert "Open one" not in by_notebook


def test_a_session_page_shows_its_messages_in_order_read_only(staff_client):
    session = ChatSessionFactory()
    MessageFactory(session=session, message_order=2, message="second <b>bold</b>")
    MessageFactory(session=session, message_order=1, message="first")

    page = staff_client.get(f"/admin/chat_sessions/chatsession/{session.pk}/change/").content.decode()

    assert page.index("first") < page.index("second")
    assert "second &lt;b&gt;bold&lt;/b&gt;" in page
    assert 'name="messages-0-message"' not in page  # shown, not editable


def test_a_long_session_page_shows_its_newest_messages_and_links_to_all(staff_client, django_assert_max_num_queries):
    session = ChatSessionFactory(message_count=120)
    for order in range(1, 121):
        MessageFactory(session=session, message_order=order, message=f"message number {order}.")

    with django_assert_max_num_queries(12):
        page = staff_client.get(f"/admin/chat_sessions/chatsession/{session.pk}/change/").content.decode()

    shown = [int(n) for n in re.findall(r"message number (\d+)\.", page)]
    assert shown == list(range(71, 121))  # the newest 50, oldest first
    everything = f"/admin/chat_sessions/sessionchatmessage/?session__id__exact={session.pk}"
    assert f'href="{everything}">All 120 messages</a>' in page
    listed = staff_client.get(everything)
    assert listed.status_code == 200
    assert "120 session chat messages" in listed.content.decode()


def test_sessions_and_messages_are_not_added_or_deleted_one_by_one_but_go_with_their_owner(staff_client):
    session = ChatSessionFactory()
    message = MessageFactory(session=session, message_order=1)
    messages = "/admin/chat_sessions/sessionchatmessage/"

    adding = staff_client.get("/admin/chat_sessions/chatsession/add/")
    deleting = staff_client.post(f"{messages}{message.pk}/delete/", {"post": "yes"})
    by_action = staff_client.post(
        messages, {"action": "delete_selected", "_selected_action": [message.pk], "post": "yes"}
    )
    change_page = staff_client.get(f"{messages}{message.pk}/change/").content.decode()

    assert adding.status_code == 403
    assert deleting.status_code == 403
    assert SessionChatMessage.objects.filter(pk=message.pk).exists()
    assert by_action.status_code == 200  # "No action selected", nothing deleted
    assert SessionChatMessage.objects.filter(pk=message.pk).exists()
    assert f"{message.pk}/delete/" not in change_page

    owner_deleted = staff_client.post(f"/admin/auth/user/{session.created_by_id}/delete/", {"post": "yes"})

    assert owner_deleted.status_code == 302, owner_deleted.content.decode()[:2000]
    assert not SessionChatMessage.objects.exists()


def test_a_message_marked_streaming_by_hand_is_a_form_error(staff_client):
    session = ChatSessionFactory()
    MessageFactory(session=session, message_order=1)
    answer = MessageFactory(session=session, message_order=2, sender="assistant", status=MessageStatus.COMPLETE)
    url = f"/admin/chat_sessions/sessionchatmessage/{answer.pk}/change/"

    response = staff_client.post(url, {**change_form(staff_client, url), "status": MessageStatus.STREAMING})

    assert response.status_code == 200
    assert "Only an answer being generated is streaming" in response.content.decode()
    answer.refresh_from_db()
    assert answer.status == MessageStatus.COMPLETE


def _streaming_answer():
    session = ChatSessionFactory()
    MessageFactory(session=session, message_order=1)
    answer = MessageFactory(
        session=session, message_order=2, sender="assistant", status=MessageStatus.STREAMING, message="The first ha"
    )
    return answer, f"/admin/chat_sessions/sessionchatmessage/{answer.pk}/change/"


def _answer_ends(answer) -> None:
    services.message_finish(
        message_id=answer.pk, text="The first half and the second.", status=MessageStatus.COMPLETE, metadata={}
    )


def test_an_answer_is_not_edited_while_it_is_being_generated(staff_client):
    answer, url = _streaming_answer()

    response = staff_client.post(url, {**change_form(staff_client, url), "message": "Corrected by staff"})

    assert response.status_code == 200
    assert "This answer is still being generated" in response.content.decode()
    answer.refresh_from_db()
    assert (answer.message, answer.status) == ("The first ha", MessageStatus.STREAMING)


def test_a_page_opened_mid_answer_neither_undoes_its_end_nor_edits_the_half_it_showed(staff_client):
    answer, url = _streaming_answer()
    form = change_form(staff_client, url)
    _answer_ends(answer)

    untouched = staff_client.post(url, form)  # "Save" on the page as it was shown

    assert untouched.status_code == 302
    answer.refresh_from_db()
    assert (answer.message, answer.status) == ("The first half and the second.", MessageStatus.COMPLETE)

    edited = staff_client.post(url, {**form, "message": "The first ha, corrected"})

    assert edited.status_code == 200
    assert "reload the page" in edited.content.decode()
    answer.refresh_from_db()
    assert answer.message == "The first half and the second."


def test_a_correction_to_an_ended_answer_is_saved_alone(staff_client):
    answer, url = _streaming_answer()
    _answer_ends(answer)
    form = change_form(staff_client, url)
    SessionChatMessage.objects.filter(pk=answer.pk).update(metadata={"references": [1]})

    response = staff_client.post(url, {**form, "message": "Corrected by staff"})

    assert response.status_code == 302, response.content.decode()[:2000]
    answer.refresh_from_db()
    assert (answer.message, answer.status, answer.metadata) == (
        "Corrected by staff",
        MessageStatus.COMPLETE,
        {"references": [1]},
    )


def test_close_and_reopen_actions_use_the_services(staff_client):
    first, second = ChatSessionFactory(), ChatSessionFactory()
    ids = [str(first.pk), str(second.pk)]

    staff_client.post("/admin/chat_sessions/chatsession/", {"action": "close_sessions", "_selected_action": ids})
    closed = list(ChatSession.objects.filter(pk__in=ids).values_list("status", "ended_at"))
    staff_client.post("/admin/chat_sessions/chatsession/", {"action": "reopen_sessions", "_selected_action": ids})

    assert all(status == SessionStatus.CLOSED and ended for status, ended in closed)
    assert set(ChatSession.objects.filter(pk__in=ids).values_list("status", flat=True)) == {SessionStatus.ACTIVE}
    assert not ChatSession.objects.filter(pk__in=ids, ended_at__isnull=False).exists()


class _FormFields(HTMLParser):
    """The values a browser would submit from a page's form (inputs, selects, textareas)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button", "file"):
            if attrs.get("type") == "checkbox":
                if "checked" in attrs:
                    self.fields[name] = "on"
            else:
                self.fields[name] = attrs.get("value") or ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields[self._select] = attrs.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data.lstrip("\n")


def change_form(client, url) -> dict[str, str]:
    parser = _FormFields()
    parser.feed(client.get(url).content.decode())
    return parser.fields


@pytest.mark.parametrize("status", [SessionStatus.CLOSED, SessionStatus.ARCHIVED])
def test_a_status_changed_on_the_session_form_goes_through_the_services(staff_client, status):
    session = ChatSessionFactory()
    url = f"/admin/chat_sessions/chatsession/{session.pk}/change/"
    form = change_form(staff_client, url)

    response = staff_client.post(url, {**form, "status": status})

    assert response.status_code == 302, response.content.decode()[:2000]
    session.refresh_from_db()
    assert session.status == status
    assert session.ended_at is not None  # as closing or archiving from the API or the action sets it

    form = change_form(staff_client, url)
    staff_client.post(url, {**form, "status": SessionStatus.ACTIVE})

    session.refresh_from_db()
    assert (session.status, session.ended_at) == (SessionStatus.ACTIVE, None)


def test_an_archived_session_set_to_closed_on_the_form_is_closed(staff_client):
    session = ChatSessionFactory(status=SessionStatus.ARCHIVED)
    url = f"/admin/chat_sessions/chatsession/{session.pk}/change/"

    staff_client.post(url, {**change_form(staff_client, url), "status": SessionStatus.CLOSED})

    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED


def test_a_form_saves_only_what_it_changed_and_a_title_typed_there_is_the_users(staff_client):
    session = ChatSessionFactory(title="New Chat", title_source=TitleSource.DEFAULT)
    url = f"/admin/chat_sessions/chatsession/{session.pk}/change/"
    form = change_form(staff_client, url)
    ChatSession.objects.filter(pk=session.pk).update(title="The user's own", title_source=TitleSource.USER)

    staff_client.post(url, {**form, "pinned": "on"})  # opened before the user's rename

    session.refresh_from_db()
    assert (session.title, session.title_source, session.pinned) == ("The user's own", TitleSource.USER, True)

    ChatSession.objects.filter(pk=session.pk).update(title="New Chat", title_source=TitleSource.DEFAULT)
    staff_client.post(url, {**change_form(staff_client, url), "title": "Named by staff"})

    session.refresh_from_db()
    assert (session.title, session.title_source) == ("Named by staff", TitleSource.USER)
    assert not services.session_title_apply(session_id=session.pk, title="From the first exchange")


def test_users_who_are_not_staff_cannot_open_the_admin(client, user):
    client.force_login(user)

    response = client.get("/admin/chat_sessions/chatsession/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
