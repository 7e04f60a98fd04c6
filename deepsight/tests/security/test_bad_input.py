"""Bad input is a 4xx that names what was wrong, never a 500 or silently read as a default.

Found by the negative fuzzing in test_schemathesis.py: `page_size=true` gave the default page,
`pinned=1e308` no filter at all, and `DELETE ...?permanent=garbage` closed the session (a typo of
`true` would have kept data the user meant to delete; of `false`, deleted nothing, silently).
Found by hand against `make run`: a lone surrogate in a JSON body, a forged notebook cursor, and
a JSON body nested a few hundred levels deep were 500s.
"""

from __future__ import annotations

import base64

import pytest

from chat_sessions.models import ChatSession, SessionStatus
from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(user):
    return ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)


def lists(session) -> list[str]:
    chat = f"/api/v1/notebooks/{session.container_id}/chat/sessions/"
    return [
        "/api/v1/notebooks/",
        f"/api/v1/notebooks/{session.container_id}/sources/",
        chat,
        f"{chat}{session.id}/messages/",
    ]


@pytest.mark.parametrize("page_size", ["true", "abc", "0", "-5", "1.5", ""])
def test_a_page_size_that_is_not_a_whole_number_from_one_is_a_400(owner_client, session, page_size):
    for url in lists(session):
        response = owner_client.get(url, {"page_size": page_size})

        assert response.status_code == 400, url
        assert "page_size" in response.json(), url


def test_a_good_page_size_is_used_and_a_greedy_one_capped(owner_client, session):
    for url in lists(session):
        assert owner_client.get(url, {"page_size": "2"}).status_code == 200, url
        assert owner_client.get(url, {"page_size": "100000"}).status_code == 200, url


@pytest.mark.parametrize("value", ["1.7e308", "maybe", "yes please", "2"])
def test_a_pinned_filter_that_is_not_a_boolean_is_a_400(owner_client, session, value):
    response = owner_client.get(f"/api/v1/notebooks/{session.container_id}/chat/sessions/", {"pinned": value})

    assert response.status_code == 400
    assert "pinned" in response.json()


@pytest.mark.parametrize(("value", "pinned_listed"), [("true", True), ("false", False), ("1", True), ("0", False)])
def test_a_pinned_filter_reads_true_and_false(owner_client, session, value, pinned_listed):
    ChatSession.objects.filter(pk=session.pk).update(pinned=True)

    sessions = owner_client.get(f"/api/v1/notebooks/{session.container_id}/chat/sessions/", {"pinned": value})

    assert sessions.status_code == 200
    assert (str(session.pk) in [s["id"] for s in sessions.json()["sessions"]]) == pinned_listed


@pytest.mark.parametrize("value", ["garbage", "-100000000000000001", "2"])
def test_deleting_with_a_permanent_flag_that_is_not_a_boolean_changes_nothing(owner_client, session, value):
    url = f"/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/?permanent={value}"

    response = owner_client.delete(url)

    assert response.status_code == 400
    assert "permanent" in response.json()
    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE


@pytest.mark.parametrize(("value", "gone"), [("true", True), ("1", True), ("false", False), ("0", False)])
def test_deleting_with_a_permanent_flag_reads_true_and_false(owner_client, session, value, gone):
    url = f"/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/?permanent={value}"

    assert owner_client.delete(url).status_code == 204
    assert (not ChatSession.objects.filter(pk=session.pk).exists()) == gone


def test_a_format_query_parameter_does_not_choose_the_representation(client, user, session):
    client.force_login(user)

    response = client.get("/api/v1/notebooks/", {"format": "api"}, HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "moment",
    ["0121-09-25T07:09:31.411-16:01", "2026-01-01T00:00:00+23:59", "1999-12-31T23:59:59.999999-00:01"],
)
def test_a_date_filter_with_any_valid_offset_works_on_every_database(owner_client, session, moment):
    # PostgreSQL refuses UTC offsets past 15:59 that Python and ISO 8601 accept: this was a 500 there.
    for name in ("last_activity_after", "last_activity_before", "created_after", "created_before"):
        response = owner_client.get(f"/api/v1/notebooks/{session.container_id}/chat/sessions/", {name: moment})

        assert response.status_code == 200, (name, response.content[:200])


@pytest.mark.parametrize("moment", ["9999-12-31T23:00:00-16:00", "0001-01-01T00:00:00+16:00", "yesterday"])
def test_a_date_filter_outside_the_calendar_or_not_a_date_is_a_400(owner_client, session, moment):
    response = owner_client.get(
        f"/api/v1/notebooks/{session.container_id}/chat/sessions/", {"last_activity_after": moment}
    )

    assert response.status_code == 400
    assert "last_activity_after" in response.json()


def json_writes(session) -> list[tuple[str, str, str]]:
    """Every API write that reads a JSON body: method, URL, and each field it takes."""
    notebook = f"/api/v1/notebooks/{session.container_id}/"
    chat = f"{notebook}chat/sessions/"
    return [
        ("post", "/api/v1/notebooks/", "name"),
        ("post", "/api/v1/notebooks/", "description"),
        ("patch", notebook, "name"),
        ("post", f"{notebook}sources/", "title"),
        ("post", f"{notebook}sources/", "content"),
        ("post", chat, "title"),
        ("post", chat, "llm_model_name"),
        ("post", chat, "rag_document_ids"),
        ("post", chat, "tags"),
        ("patch", f"{chat}{session.id}/", "title"),
        ("patch", f"{chat}{session.id}/", "tags"),
        ("patch", f"{chat}{session.id}/", "status"),
        ("post", f"{chat}{session.id}/messages/", "message"),
        ("post", f"{chat}{session.id}/messages/", "client_message_id"),
    ]


@pytest.mark.parametrize(
    "spelled", ['"\\ud800"', '["\\udfff"]', '"a\\ud83d"'], ids=["text", "in-a-list", "half-a-pair"]
)
def test_a_lone_surrogate_in_a_json_field_is_a_400_naming_the_field(owner_client, session, spelled):
    # JSON can spell half a UTF-16 pair and Python reads it, but no response can quote it back:
    # a 400 that echoed it ("... is not a valid choice") failed to encode and became a 500.
    for method, url, field in json_writes(session):
        body = f'{{"{field}": {spelled}}}'.encode()

        response = getattr(owner_client, method)(
            url, body, content_type="application/json", HTTP_ACCEPT="application/json"
        )

        assert response.status_code == 400, (method, url, field, response.content[:200])
        assert field in response.json(), (method, url, field)


def test_a_lone_surrogate_in_a_field_name_is_a_400(owner_client, session):
    for method, url, _ in json_writes(session):
        response = getattr(owner_client, method)(
            url, b'{"\\ud800": 1}', content_type="application/json", HTTP_ACCEPT="application/json"
        )

        assert response.status_code == 400, (method, url)
        assert "lone surrogate" in response.json()["non_field_errors"][0]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [600, 5000], ids=["past-python-recursion", "past-the-json-parser"])
def test_a_json_body_nested_past_the_recursion_limit_is_a_400(owner_client, session, depth):
    # A 3 KB body was a 500 (RecursionError): in DRF's parser past ~1,000 levels, and in the
    # surrogate check past ~500.
    for method, url, field in json_writes(session):
        body = f'{{"{field}": {nested(depth)}}}'.encode()

        response = getattr(owner_client, method)(
            url, body, content_type="application/json", HTTP_ACCEPT="application/json"
        )

        assert response.status_code == 400, (method, url, field, response.content[:200])
        if depth > 1000:
            assert response.json() == {"detail": "JSON parse error - the body is nested too deeply."}
        else:
            assert field in response.json(), (method, url, field)


def test_a_nested_body_sent_to_another_users_session_is_a_404(api_client, other_user, session):
    api_client.force_authenticate(other_user)
    url = f"/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/messages/"

    response = api_client.post(
        url, f'{{"message": {nested(5000)}}}'.encode(), content_type="application/json", HTTP_ACCEPT="application/json"
    )

    assert response.status_code == 404


def test_the_chat_api_refuses_a_nested_body_with_drfs_own_json_parser_too(owner_client, session, settings):
    # A host project that lists DRF's parsers still gets a 400 from the reusable app's views.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    }
    url = f"/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/"

    response = owner_client.patch(url, f'{{"title": {nested(5000)}}}'.encode(), content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the body is nested too deeply."}


def test_a_whole_emoji_spelled_as_a_surrogate_pair_is_text(owner_client, session):
    url = f"/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/"

    response = owner_client.patch(url, b'{"title": "Leaves \\ud83c\\udf3f"}', content_type="application/json")

    assert response.status_code == 200
    assert response.json()["session"]["title"] == "Leaves \U0001f33f"


@pytest.mark.parametrize(
    "cursor", ["\x00", "!!!", base64.b64encode(b"hello").decode(), base64.b64encode(b"x=1").decode()]
)
def test_a_cursor_that_holds_nothing_is_an_invalid_cursor_not_the_first_page(owner_client, session, cursor):
    for url in lists(session):
        response = owner_client.get(url, {"cursor": cursor})

        assert response.status_code == 404, (url, response.content[:200])
        assert response.json() == {"detail": "Invalid cursor"}, url
        assert owner_client.get(url, {"cursor": ""}).status_code == 200, url  # an empty one is none


@pytest.mark.parametrize("position", ["garbage", "2026-13-01 00:00:00+00:00", "2026-01-01 00:00:00"])
def test_a_forged_cursor_is_an_invalid_cursor_on_every_list(owner_client, session, position):
    forged = base64.b64encode(f"p={position}".encode()).decode()
    for url in lists(session):
        response = owner_client.get(url, {"cursor": forged})

        assert response.status_code == 404, (url, response.content[:200])
        assert response.json() == {"detail": "Invalid cursor"}, url
