"""The sessions API: tabs opened, listed, read, edited, closed and deleted, only by their owner."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from chat_sessions.agents.base import AgentBackend
from chat_sessions.models import ChatSession, SessionChatMessage, SessionStatus, TitleSource
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, NotebookFactory
from chat_sessions.tests.paths import session_url, sessions_url

pytestmark = pytest.mark.django_db


def make_session(notebook, **kwargs) -> ChatSession:
    return ChatSessionFactory(container=notebook, created_by=notebook.owner, **kwargs)


def test_a_new_session_is_titled_new_chat(owner_client, notebook):
    response = owner_client.post(sessions_url(notebook.id), {}, format="json")

    assert response.status_code == 201
    session = response.json()["session"]
    assert session["title"] == "New Chat"
    assert session["title_source"] == "default"
    assert session["status"] == "active"
    assert session["message_count"] == 0
    for field in ("id", "pinned", "tags", "last_activity", "started_at", "ended_at", "created_at"):
        assert field in session


def test_a_session_opened_with_a_title_keeps_it_as_the_users(owner_client, notebook):
    response = owner_client.post(sessions_url(notebook.id), {"title": "Chloroplasts"}, format="json")

    assert response.json()["session"]["title"] == "Chloroplasts"
    assert response.json()["session"]["title_source"] == "user"


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x" * 201},
        {"message_count": 5},
        {"status": "closed"},
        {"tags": ["x" * 51]},
        {"tags": [f"t{i}" for i in range(21)]},
    ],
)
def test_bad_session_input_gets_a_field_level_400(owner_client, notebook, body):
    response = owner_client.post(sessions_url(notebook.id), body, format="json")

    assert response.status_code == 400
    assert set(body) & set(response.json())
    assert not ChatSession.objects.exists()


class ShelfAgent(AgentBackend):
    """Knows the documents `doc-1` to `doc-3` in every container."""

    def document_ids_unknown(self, *, container, document_ids):
        return [value for value in document_ids if value not in {"doc-1", "doc-2", "doc-3"}]


def test_the_agent_decides_which_document_ids_a_session_may_name(owner_client, notebook, settings):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "AGENT_BACKEND": f"{__name__}.ShelfAgent"}
    ids = [f"doc-{n}" for n in range(1, 15)]

    refused = owner_client.post(sessions_url(notebook.id), {"rag_document_ids": ids}, format="json")
    accepted = owner_client.post(sessions_url(notebook.id), {"rag_document_ids": ["doc-2"]}, format="json")

    assert refused.status_code == 400
    assert refused.json()["rag_document_ids"] == [
        "No such document in this notebook: doc-4, doc-5, doc-6, doc-7, doc-8, doc-9, doc-10, doc-11, doc-12,"
        " doc-13 and 1 more."
    ]
    assert accepted.status_code == 201
    assert accepted.json()["session"]["rag_document_ids"] == ["doc-2"]


def test_by_default_document_ids_are_the_clients_own(owner_client, notebook, settings):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "AGENT_BACKEND": "chat_sessions.agents.base.AgentBackend"}

    response = owner_client.post(sessions_url(notebook.id), {"rag_document_ids": ["anything"]}, format="json")

    assert response.status_code == 201
    assert response.json()["session"]["rag_document_ids"] == ["anything"]


def test_list_shows_active_sessions_most_recent_first(owner_client, notebook):
    now = timezone.now()
    old = make_session(notebook, title="Old", last_activity=now - timedelta(hours=2))
    new = make_session(notebook, title="New", last_activity=now)
    make_session(notebook, title="Closed", status=SessionStatus.CLOSED)

    response = owner_client.get(sessions_url(notebook.id))

    assert response.status_code == 200
    assert [s["id"] for s in response.json()["sessions"]] == [str(new.id), str(old.id)]


def test_closed_chats_are_listed_on_request(owner_client, notebook):
    make_session(notebook, title="Open")
    closed = make_session(notebook, title="Closed", status=SessionStatus.CLOSED)

    response = owner_client.get(sessions_url(notebook.id), {"status": "closed"})

    assert [s["id"] for s in response.json()["sessions"]] == [str(closed.id)]


def test_list_filters_by_pin_tag_title_and_activity(owner_client, notebook):
    now = timezone.now()
    pinned = make_session(notebook, title="Pinned plants", pinned=True, last_activity=now)
    tagged = make_session(notebook, title="Tagged", last_activity=now - timedelta(days=3))
    tagged.tag_set.create(name="biology")

    def ids(**params):
        return [s["id"] for s in owner_client.get(sessions_url(notebook.id), params).json()["sessions"]]

    assert ids(pinned="true") == [str(pinned.id)]
    assert ids(tag="biology") == [str(tagged.id)]
    assert ids(q="plants") == [str(pinned.id)]
    assert ids(last_activity_after=(now - timedelta(days=1)).isoformat()) == [str(pinned.id)]
    assert ids(last_activity_before=(now - timedelta(days=1)).isoformat()) == [str(tagged.id)]


def test_list_rejects_a_malformed_filter(owner_client, notebook):
    response = owner_client.get(sessions_url(notebook.id), {"status": "deleted"})

    assert response.status_code == 400
    assert "status" in response.json()


def test_a_filter_given_twice_is_a_400_rather_than_the_last_one_alone(owner_client, notebook):
    tagged = make_session(notebook, title="Tagged b")
    tagged.tag_set.create(name="b")

    response = owner_client.get(sessions_url(notebook.id) + "?tag=a&tag=b")

    assert response.status_code == 400
    assert response.json() == {"tag": ["Give this filter once."]}


def test_cursor_pagination_walks_every_session_once(owner_client, notebook):
    now = timezone.now()
    created = [make_session(notebook, last_activity=now - timedelta(minutes=i)) for i in range(7)]

    seen, url = [], sessions_url(notebook.id) + "?page_size=3"
    while url:
        page = owner_client.get(url).json()
        seen += [s["id"] for s in page["sessions"]]
        url = page["next"]

    assert seen == [str(s.id) for s in created]


def test_page_size_is_capped(owner_client, notebook):
    for _ in range(105):
        make_session(notebook)

    response = owner_client.get(sessions_url(notebook.id), {"page_size": 1000})

    assert len(response.json()["sessions"]) == 100


def test_session_list_query_count_does_not_grow_with_the_page(owner_client, notebook, django_assert_num_queries):
    for index in range(3):
        make_session(notebook).tag_set.create(name=f"t{index}")
    # One query: the page, scoped to the containers this user may chat in, with its tags.
    with django_assert_num_queries(1) as few:
        owner_client.get(sessions_url(notebook.id))
    for index in range(40):
        make_session(notebook).tag_set.create(name=f"more{index}")

    with django_assert_num_queries(len(few.captured_queries)):
        response = owner_client.get(sessions_url(notebook.id), {"page_size": 50})

    sessions = response.json()["sessions"]
    assert len(sessions) == 43
    assert sorted(name for session in sessions for name in session["tags"]) == sorted(
        [f"t{index}" for index in range(3)] + [f"more{index}" for index in range(40)]
    )


@pytest.mark.parametrize("in_the_page_query", [True, False], ids=["tags-in-the-page-query", "tags-read-apart"])
def test_the_list_shows_each_sessions_own_and_suggested_tags_as_its_detail_does(
    owner_client, notebook, monkeypatch, in_the_page_query
):
    # False: a database `tag_pairs` has no SQL for, whose tags are read in a query of their own.
    monkeypatch.setattr("chat_sessions.tag_pairs.supported", lambda **where: in_the_page_query)
    now = timezone.now()
    tagged = make_session(notebook, last_activity=now)
    for name, source in (("zoology", "user"), ("Écologie", "user"), ("Botany", "user"), ("light", "auto")):
        tagged.tag_set.create(name=name, source=source)
    tagged.tag_set.create(name="light", source="user")  # the same word, taken up by the user
    bare = make_session(notebook, last_activity=now - timedelta(minutes=1))
    other = make_session(NotebookFactory(owner=notebook.owner), last_activity=now)
    other.tag_set.create(name="elsewhere")

    listed = owner_client.get(sessions_url(notebook.id)).json()["sessions"]
    detail = owner_client.get(session_url(tagged)).json()["session"]

    assert [(s["id"], s["tags"], s["suggested_tags"]) for s in listed] == [
        (str(tagged.id), ["Botany", "Écologie", "light", "zoology"], ["light"]),
        (str(bare.id), [], []),
    ]
    assert (detail["tags"], detail["suggested_tags"]) == (listed[0]["tags"], listed[0]["suggested_tags"])


def test_session_detail_has_the_newest_messages_oldest_first(owner_client, notebook):
    session = make_session(notebook, message_count=60)
    for order in range(1, 61):
        MessageFactory(session=session, message_order=order, message=f"m{order}")

    body = owner_client.get(session_url(session)).json()["session"]

    assert [m["message_order"] for m in body["messages"]] == list(range(11, 61))
    assert body["has_older_messages"] is True
    for field in ("id", "sender", "message", "status", "message_order", "timestamp", "metadata"):
        assert field in body["messages"][0]
    older = owner_client.get(body["older_messages"]).json()
    assert [m["message_order"] for m in older["messages"]] == list(range(1, 11))
    assert older["older"] is None


def test_a_short_sessions_detail_has_no_older_messages(owner_client, notebook):
    session = make_session(notebook, message_count=2)
    for order in (1, 2):
        MessageFactory(session=session, message_order=order)

    body = owner_client.get(session_url(session)).json()["session"]

    assert [m["message_order"] for m in body["messages"]] == [1, 2]
    assert (body["has_older_messages"], body["older_messages"]) == (False, None)


def test_rename_marks_the_title_as_the_users(owner_client, notebook):
    session = make_session(notebook)

    response = owner_client.patch(session_url(session), {"title": "Leaves"}, format="json")

    assert response.status_code == 200
    session.refresh_from_db()
    assert (session.title, session.title_source) == ("Leaves", TitleSource.USER)


def test_patch_pins_tags_and_archives(owner_client, notebook):
    session = make_session(notebook)

    response = owner_client.patch(
        session_url(session), {"pinned": True, "tags": ["a", "b"], "status": "archived"}, format="json"
    )

    body = response.json()["session"]
    assert (body["pinned"], body["tags"], body["status"]) == (True, ["a", "b"], "archived")
    assert body["ended_at"] is not None


def test_patch_moves_an_archived_session_to_closed_where_the_tabs_close_leaves_it(owner_client, notebook):
    session = make_session(notebook, status=SessionStatus.ARCHIVED, ended_at=timezone.now() - timedelta(days=2))
    archived_at = session.ended_at

    closing = owner_client.delete(session_url(session))
    after_close = owner_client.get(session_url(session)).json()["session"]["status"]
    patched = owner_client.patch(session_url(session), {"status": "closed"}, format="json")

    assert closing.status_code == 204
    assert after_close == "archived"
    assert patched.status_code == 200
    assert patched.json()["session"]["status"] == "closed"
    session.refresh_from_db()
    assert (session.status, session.ended_at) == (SessionStatus.CLOSED, archived_at)


def test_patch_reopens_a_closed_session(owner_client, notebook):
    session = make_session(notebook, status=SessionStatus.CLOSED, ended_at=timezone.now())

    body = owner_client.patch(session_url(session), {"status": "active"}, format="json").json()["session"]

    assert (body["status"], body["ended_at"]) == ("active", None)


@pytest.mark.parametrize(
    "body",
    [{"message_order": 3}, {"message_count": 0}, {"status": "deleted"}, {"title": ""}, {"title": "x" * 201}],
)
def test_patch_refuses_server_owned_or_invalid_values(owner_client, notebook, body):
    session = make_session(notebook, title="Kept")

    response = owner_client.patch(session_url(session), body, format="json")

    assert response.status_code == 400
    session.refresh_from_db()
    assert session.title == "Kept"


def test_delete_closes_the_tab_and_keeps_the_messages(owner_client, notebook):
    session = make_session(notebook)
    MessageFactory(session=session, message_order=1)

    response = owner_client.delete(session_url(session))

    assert response.status_code == 204
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert session.ended_at is not None
    assert SessionChatMessage.objects.filter(session=session).count() == 1


def test_permanent_delete_removes_the_session_and_its_messages(owner_client, notebook):
    session = make_session(notebook)
    MessageFactory(session=session, message_order=1)

    response = owner_client.delete(session_url(session) + "?permanent=true")

    assert response.status_code == 204
    assert not ChatSession.objects.filter(pk=session.pk).exists()
    assert not SessionChatMessage.objects.exists()


SESSION_ROUTES = [
    ("get", ""),
    ("patch", ""),
    ("delete", ""),
    ("delete", "?permanent=true"),
    ("get", "messages/"),
    ("post", "messages/"),
    ("post", "stop/"),
    ("post", "title/"),
]


@pytest.mark.parametrize(("method", "suffix"), SESSION_ROUTES)
def test_another_users_session_is_not_found(owner_client, other_user, method, suffix):
    session = ChatSessionFactory(container=NotebookFactory(owner=other_user), created_by=other_user, title="Theirs")

    response = getattr(owner_client, method)(session_url(session) + suffix, {"title": "Mine now"}, format="json")

    assert response.status_code == 404
    session.refresh_from_db()
    assert (session.title, session.status) == ("Theirs", SessionStatus.ACTIVE)


@pytest.mark.parametrize(
    ("body", "content_type", "own_status"),
    [
        (b"\x00", "application/json", 400),  # not JSON
        (b'{"message": ""}', "application/json", 400),  # JSON, invalid
        (b"message=hi", "text/plain", 415),  # a type the API does not read
    ],
)
def test_a_bad_send_to_another_users_session_is_not_found_before_it_is_bad(
    owner_client, other_user, notebook, body, content_type, own_status
):
    theirs = ChatSessionFactory(container=NotebookFactory(owner=other_user), created_by=other_user)
    mine = make_session(notebook)

    foreign = owner_client.generic("POST", session_url(theirs) + "messages/", body, content_type=content_type)
    own = owner_client.generic("POST", session_url(mine) + "messages/", body, content_type=content_type)

    assert foreign.status_code == 404
    assert own.status_code == own_status
    assert not SessionChatMessage.objects.exists()


@pytest.mark.parametrize(("method", "suffix"), SESSION_ROUTES)
def test_a_session_reached_through_another_of_the_users_notebooks_is_not_found(
    owner_client, notebook, user, method, suffix
):
    session = make_session(notebook)
    elsewhere = NotebookFactory(owner=user)

    response = getattr(owner_client, method)(f"{sessions_url(elsewhere.id)}{session.id}/{suffix}", {}, format="json")

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_unknown_notebook_has_no_sessions(owner_client, method):
    response = getattr(owner_client, method)(sessions_url(uuid.uuid4()), {}, format="json")

    assert response.status_code == 404


def test_another_users_notebook_sessions_cannot_be_listed_or_created(owner_client, other_user):
    theirs = NotebookFactory(owner=other_user)

    assert owner_client.get(sessions_url(theirs.id)).status_code == 404
    assert owner_client.post(sessions_url(theirs.id), {}, format="json").status_code == 404
    assert not ChatSession.objects.exists()


@pytest.mark.parametrize(("method", "suffix"), [*SESSION_ROUTES, ("get", "LIST"), ("post", "LIST")])
def test_anonymous_clients_are_refused_everywhere(api_client, notebook, method, suffix):
    session = make_session(notebook)
    url = sessions_url(notebook.id) if suffix == "LIST" else session_url(session) + suffix

    response = getattr(api_client, method)(url, {}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_cookie_authenticated_writes_need_the_csrf_token(client, user, notebook):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)

    response = csrf_client.post(sessions_url(notebook.id), {}, content_type="application/json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_token_clients_need_no_csrf_token(api_client, user, user_token, notebook):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {user_token}")

    assert api_client.post(sessions_url(notebook.id), {}, format="json").status_code == 201


def test_message_history_pages_backwards_and_forwards(owner_client, notebook):
    session = make_session(notebook, message_count=7)
    for order in range(1, 8):
        MessageFactory(session=session, message_order=order)
    url = session_url(session) + "messages/?page_size=3"

    newest = owner_client.get(url).json()
    older = owner_client.get(newest["older"]).json()
    oldest = owner_client.get(older["older"]).json()
    back = owner_client.get(oldest["newer"]).json()

    assert [m["message_order"] for m in newest["messages"]] == [5, 6, 7]
    assert [m["message_order"] for m in older["messages"]] == [2, 3, 4]
    assert [m["message_order"] for m in oldest["messages"]] == [1]
    assert oldest["older"] is None
    assert [m["message_order"] for m in back["messages"]] == [2, 3, 4]


def test_message_history_query_count_does_not_grow(owner_client, notebook, django_assert_num_queries):
    session = make_session(notebook)
    for order in range(1, 4):
        MessageFactory(session=session, message_order=order)
    # The session (scoped to the containers this user may chat in, in the same query), then the page.
    with django_assert_num_queries(2) as few:
        owner_client.get(session_url(session) + "messages/")
    for order in range(4, 60):
        MessageFactory(session=session, message_order=order)

    with django_assert_num_queries(len(few.captured_queries)):
        response = owner_client.get(session_url(session) + "messages/?page_size=100")

    assert len(response.json()["messages"]) == 59


def test_browsable_api_renders_the_session_list(client, user, notebook):
    client.force_login(user)
    make_session(notebook, title="<script>alert(1)</script>")

    response = client.get(sessions_url(notebook.id), HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert b"<script>alert(1)</script>" not in response.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.content


def test_the_browsable_apis_message_form_takes_several_lines(client, user, notebook):
    client.force_login(user)
    session = make_session(notebook)

    page = client.get(session_url(session) + "messages/", HTTP_ACCEPT="text/html").content.decode()

    assert re.search(r'<textarea[^>]*name="message"', page)


@pytest.mark.parametrize("query", [{}, {"pinned": "maybe"}, {"cursor": "garbage"}, {"status": "nope"}])
def test_another_users_notebook_list_is_a_404_whatever_the_query(owner_client, other_user, query):
    foreign = NotebookFactory(owner=other_user)
    make_session(foreign)

    response = owner_client.get(sessions_url(foreign.id), query)

    assert response.status_code == 404


def test_an_empty_list_of_ones_own_notebook_is_an_empty_page(owner_client, notebook):
    response = owner_client.get(sessions_url(notebook.id))

    assert response.status_code == 200
    assert response.json()["sessions"] == []


def test_what_the_api_answers_an_event_stream_client_in_json_is_labelled_json(owner_client, notebook, other_user):
    # An EventSource-minded client (Accept: text/event-stream) got its errors, and any list, as
    # JSON labelled `text/event-stream`: a client parsing by content type read them as SSE.
    session = make_session(notebook)
    foreign = make_session(NotebookFactory(owner=other_user))
    stream = {"HTTP_ACCEPT": "text/event-stream"}

    refused = owner_client.post(session_url(session) + "messages/", {"message": ""}, format="json", **stream)
    unknown = owner_client.post(session_url(foreign) + "messages/", {"message": "Hi"}, format="json", **stream)
    listed = owner_client.get(sessions_url(notebook.id), **stream)
    resumed = owner_client.get(session_url(session) + "messages/999999/stream/", **stream)

    for response, code in ((refused, 400), (unknown, 404), (listed, 200), (resumed, 404)):
        assert response.status_code == code, response.content[:200]
        assert response["Content-Type"] == "application/json", (code, response["Content-Type"])
        response.json()
    assert "message" in refused.json()


@pytest.mark.parametrize("status", [SessionStatus.CLOSED, SessionStatus.ARCHIVED])
def test_closing_a_session_out_of_the_tabs_changes_nothing(owner_client, notebook, status):
    # DELETE on an archived session made it `closed`, and the next message then reopened it:
    # closing a tab cannot undo an archive, nor move when a closed one was closed.
    ended = timezone.now() - timedelta(days=3)
    session = make_session(notebook, status=status, ended_at=ended)

    response = owner_client.delete(session_url(session))

    assert response.status_code == 204
    session.refresh_from_db()
    assert (session.status, session.ended_at) == (status, ended)
    if status == SessionStatus.ARCHIVED:
        refused = owner_client.post(session_url(session) + "messages/", {"message": "Hi"}, format="json")
        assert refused.status_code == 409


@pytest.mark.django_db(transaction=True)
def test_under_wsgi_a_send_answers_its_whole_stream_once_the_answer_is_saved(owner_client, notebook):
    # Django's own server (and gunicorn's sync workers) run the send on an event loop that ends
    # with the response: the answer was cut off empty, and the next send waited on it for a minute.
    session = make_session(notebook)
    for question in ("What is photosynthesis?", "And chlorophyll?"):
        response = owner_client.post(
            session_url(session) + "messages/", {"message": question}, format="json", HTTP_ACCEPT="text/event-stream"
        )

        assert response.status_code == 200, response.content[:300]
        assert response["Content-Type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.content.decode().splitlines() if line.startswith("data: ")]
        assert [events[0]["type"], events[-1]["type"]] == ["start", "done"]
        tokens = "".join(event["text"] for event in events if event["type"] == "token")
        saved = SessionChatMessage.objects.get(pk=events[-1]["message"]["id"])
        assert (saved.status, saved.message) == ("complete", tokens)
        assert tokens
    assert SessionChatMessage.objects.filter(session=session).count() == 4
