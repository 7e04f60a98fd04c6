"""The tabs' session list read by its fixed-shape statement gives what the ORM's read gives.

A list with no filter is read by `session_list_sql.SessionListRead`; `?status=active` asks for the
same sessions through django-filter and the ORM. Walking both, page by page in both directions,
must show the same sessions in the same pages, whatever the ties, tags and page size.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIRequestFactory, force_authenticate

from chat_sessions import tag_pairs
from chat_sessions.api.views import ChatSessionViewSet
from chat_sessions.models import SessionStatus, TagSource
from chat_sessions.session_list_sql import SessionListRead
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, NotebookFactory
from chat_sessions.tests.paths import messages_url, sessions_url
from notebooks.models import Notebook

pytestmark = pytest.mark.django_db


def cursor(**tokens: str) -> str:
    """A cursor as DRF encodes one, holding whatever we put in it."""
    return base64.b64encode(urlencode(tokens).encode()).decode()


@pytest.fixture
def tabs(notebook, user, other_user):
    """Eleven active sessions, six of them sharing two moments, with tags; and sessions not to list."""
    now = timezone.now()
    moments = [now, now, now, now - timedelta(minutes=1), now - timedelta(minutes=2)]
    moments += [now - timedelta(minutes=3)] * 3 + [now - timedelta(minutes=4 + i) for i in range(3)]
    shown = []
    for index, moment in enumerate(moments):
        session = ChatSessionFactory(
            container=notebook, created_by=user, last_activity=moment, pinned=index % 4 == 0, title=f"Tab {index}"
        )
        if index % 3 == 0:
            session.tag_set.create(name=f"Zeta {index}")
            session.tag_set.create(name="alpha")
            session.tag_set.create(name="idea", source=TagSource.AUTO)
        shown.append(session)
    ChatSessionFactory(container=notebook, created_by=user, status=SessionStatus.CLOSED, last_activity=now)
    ChatSessionFactory(container=notebook, created_by=other_user, last_activity=now)
    ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user, last_activity=now)
    ChatSessionFactory(container=NotebookFactory(owner=other_user), created_by=other_user, last_activity=now)
    return shown


def walk(client, first_url: str, *, most: int = 30) -> tuple[list[list[dict]], list[list[dict]]]:
    """Every page following `next` from the first, then every page following `previous` back.

    At most `most` pages each way: a list that never ends is a failure, not a hung test.
    """
    forward, url = [], first_url
    while url:
        page = client.get(url).json()
        forward.append(page["sessions"])
        last, url = page, page["next"]
        assert len(forward) <= most, "the pages never end"
    backward, url = [], last["previous"]
    while url:
        page = client.get(url).json()
        backward.append(page["sessions"])
        url = page["previous"]
        assert len(backward) <= most, "the pages never end"
    return forward, backward


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 11, 50])
@pytest.mark.parametrize("in_the_page_query", [True, False], ids=["tags-in-the-page-query", "tags-read-apart"])
def test_the_tabs_read_and_the_orm_read_walk_the_same_pages(
    owner_client, notebook, tabs, page_size, in_the_page_query, monkeypatch
):
    if not in_the_page_query:
        monkeypatch.setattr(tag_pairs, "supported", lambda **where: False)
    expected = sorted(tabs, key=lambda session: (session.last_activity, session.pk), reverse=True)

    fixed = walk(owner_client, f"{sessions_url(notebook.id)}?page_size={page_size}")
    orm = walk(owner_client, f"{sessions_url(notebook.id)}?page_size={page_size}&status=active")

    assert fixed == orm
    forward, backward = fixed
    assert [session["id"] for page in forward for session in page] == [str(session.pk) for session in expected]
    assert backward == forward[-2::-1]
    with_tags = next(session for page in forward for session in page if session["title"] == "Tab 9")
    assert (with_tags["tags"], with_tags["suggested_tags"]) == (["alpha", "Zeta 9"], ["idea"])


def test_a_list_with_no_filter_is_the_fixed_shape_read_and_a_filtered_one_is_not(owner_client, notebook, tabs):
    # The comparison above means something only if the two requests take different reads.
    with CaptureQueriesContext(connection) as plain:
        owner_client.get(sessions_url(notebook.id))
    with CaptureQueriesContext(connection) as filtered:
        owner_client.get(sessions_url(notebook.id), {"status": "active"})

    assert [query["sql"].count("listed_session") > 0 for query in plain.captured_queries] == [True]
    assert [query["sql"].count("listed_session") > 0 for query in filtered.captured_queries] == [False]


def only_unlocked(*, user):
    return Notebook.objects.filter(owner=user).exclude(name="locked").order_by("-created_at")


def no_notebooks(*, user):
    return Notebook.objects.none()


def test_the_tabs_read_follows_the_configured_access_policy(owner_client, user, settings):
    locked = ChatSessionFactory(container=NotebookFactory(owner=user, name="locked"), created_by=user)
    unlocked = ChatSessionFactory(container=NotebookFactory(owner=user, name="open"), created_by=user)
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "ACCESS_POLICY": f"{__name__}.only_unlocked"}

    assert owner_client.get(sessions_url(locked.container_id)).status_code == 404
    listed = owner_client.get(sessions_url(unlocked.container_id)).json()["sessions"]
    assert [session["id"] for session in listed] == [str(unlocked.pk)]

    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "ACCESS_POLICY": f"{__name__}.no_notebooks"}
    assert owner_client.get(sessions_url(unlocked.container_id)).status_code == 404


class PinnedOnly(ChatSessionViewSet):
    def get_queryset(self):
        return super().get_queryset().filter(pinned=True)


def test_a_subclass_that_narrows_the_queryset_keeps_its_narrowing(user, notebook, tabs):
    request = APIRequestFactory().get(sessions_url(notebook.id))
    force_authenticate(request, user=user)

    response = PinnedOnly.as_view({"get": "list"})(request, container_id=notebook.id)

    listed = response.data["sessions"]
    assert {session["id"] for session in listed} == {str(session.pk) for session in tabs if session.pinned}
    assert len(listed) == 3


class EveryTab(ChatSessionViewSet):
    pagination_class = None


def test_a_subclass_without_pagination_lists_every_session_with_its_tags(user, notebook, tabs):
    request = APIRequestFactory().get(sessions_url(notebook.id))
    force_authenticate(request, user=user)

    response = EveryTab.as_view({"get": "list"})(request, container_id=notebook.id)

    assert response.status_code == 200
    listed = response.data["sessions"]
    assert [session["id"] for session in listed] == [session["id"] for session in paged_tabs(user, notebook)]
    assert len(listed) == len(tabs)
    tagged = next(session for session in listed if session["id"] == str(tabs[3].pk))
    assert (tagged["tags"], tagged["suggested_tags"]) == (["alpha", "Zeta 3"], ["idea"])


def test_a_subclass_without_pagination_still_hides_a_foreign_notebook(other_user, notebook):
    request = APIRequestFactory().get(sessions_url(notebook.id))
    force_authenticate(request, user=other_user)

    response = EveryTab.as_view({"get": "list"})(request, container_id=notebook.id)

    assert response.status_code == 404


def paged_tabs(user, notebook) -> list[dict]:
    """The tabs as the product's paginated list shows them, in one page."""
    request = APIRequestFactory().get(sessions_url(notebook.id), {"page_size": 50})
    force_authenticate(request, user=user)
    return ChatSessionViewSet.as_view({"get": "list"})(request, container_id=notebook.id).data["sessions"]


def test_the_read_refuses_what_it_cannot_answer_rather_than_answer_something_else(user, notebook):
    read = SessionListRead(user=user, container_id=notebook.id)

    with pytest.raises(TypeError):
        read.order_by("title")
    with pytest.raises(TypeError):
        read.filter(pinned=True)
    with pytest.raises(TypeError):
        read.filter(last_activity__lt=timezone.now()).filter(last_activity__gt=timezone.now())
    with pytest.raises(TypeError):
        read[3]


@pytest.mark.parametrize(
    "position",
    [
        "garbage",
        "2026-13-01 00:00:00+00:00",
        "2026-01-01 00:00:00",  # no UTC offset: DRF always writes one
        "9999-12-31 23:59:59-14:00",  # after the last moment of the calendar, in UTC
        "",
    ],
)
@pytest.mark.parametrize("status", [None, "active"], ids=["tabs-read", "orm-read"])
def test_a_forged_session_cursor_is_an_invalid_cursor_not_a_server_error(owner_client, notebook, position, status):
    params = {"cursor": cursor(p=position)}
    if status:
        params["status"] = status

    response = owner_client.get(sessions_url(notebook.id), params)

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize("position", ["garbage", "-3", "1.5", "99999999999999999999999"])
def test_a_forged_message_cursor_is_an_invalid_cursor_not_a_server_error(owner_client, notebook, position):
    session = ChatSessionFactory(container=notebook, created_by=notebook.owner)
    MessageFactory(session=session, message_order=1)

    response = owner_client.get(messages_url(session), {"cursor": cursor(p=position)})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_a_cursor_with_a_position_from_another_time_zone_pages_as_its_utc_moment(owner_client, notebook, tabs):
    newest = max(session.last_activity for session in tabs)
    elsewhere = (newest + timedelta(seconds=1)).astimezone(timezone.get_fixed_timezone(-300))

    listed = owner_client.get(sessions_url(notebook.id), {"cursor": cursor(p=str(elsewhere))}).json()["sessions"]

    assert listed[0]["last_activity"] == newest.isoformat().replace("+00:00", "Z")
