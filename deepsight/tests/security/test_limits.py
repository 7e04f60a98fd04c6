"""Limits with clear 4xx answers: body sizes on every door, page sizes, generations at once, throttles, uploads.

Bodies are tested twice: through Django's test client (the WSGI path and the middleware) and over
a real socket to uvicorn (the ASGI path, where Django itself would read any body whole), with a
declared length over the limit, a chunked body with no length, and a length that lies.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.request
from pathlib import PurePosixPath

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile

from chat_sessions.api.throttling import ChatRateThrottle
from chat_sessions.models import ChatSession, SessionChatMessage
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, NotebookFactory, SourceFactory
from deepsight.testing.sse import sse_request
from notebooks.models import Source

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


@pytest.fixture
def notebook(user):
    return NotebookFactory(owner=user)


@pytest.fixture
def session(notebook, user):
    return ChatSessionFactory(container=notebook, created_by=user)


def sessions_path(notebook) -> str:
    return f"/api/v1/notebooks/{notebook.id}/chat/sessions/"


def messages_path(session) -> str:
    return f"{sessions_path(session.container)}{session.id}/messages/"


def assert_too_large(status: int, body: bytes) -> None:
    assert status == 413
    payload = json.loads(body)
    assert payload["code"] == "request_too_large"
    assert payload["detail"]


# Bodies through Django (WSGI path and test client)
# ------------------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_a_413_and_nothing_is_created(owner_client, notebook, settings):
    body = {"title": "x" * (settings.REQUEST_BODY_MAX_BYTES + 1)}

    response = owner_client.post(sessions_path(notebook), body, format="json")

    assert_too_large(response.status_code, response.content)
    assert not ChatSession.objects.exists()


def test_a_message_body_over_the_limit_is_a_413_on_the_streaming_route(owner_client, session, settings):
    body = {"message": "x" * (settings.REQUEST_BODY_MAX_BYTES + 1)}

    response = owner_client.post(messages_path(session), body, format="json")

    assert_too_large(response.status_code, response.content)
    assert not SessionChatMessage.objects.exists()


def test_a_body_just_under_the_limit_reaches_validation(owner_client, notebook, settings):
    response = owner_client.post(
        sessions_path(notebook), {"title": "x" * (settings.REQUEST_BODY_MAX_BYTES - 100)}, format="json"
    )

    assert response.status_code == 400
    assert "title" in response.json()


def test_an_upload_gets_more_room_than_json_but_not_unbounded(owner_client, notebook, settings):
    url = f"/api/v1/notebooks/{notebook.id}/sources/"
    fits = SimpleUploadedFile("big.txt", b"a" * (2 * MIB), content_type="text/plain")
    too_big = SimpleUploadedFile("huge.txt", b"a" * settings.REQUEST_BODY_UPLOAD_MAX_BYTES, content_type="text/plain")

    accepted = owner_client.post(url, {"file": fits}, format="multipart")
    refused = owner_client.post(url, {"file": too_big}, format="multipart")

    assert accepted.status_code == 201, accepted.content[:300]
    assert_too_large(refused.status_code, refused.content)
    assert Source.objects.count() == 1


def test_a_form_field_django_itself_finds_too_large_is_a_413_not_a_400(client, user, notebook, settings):
    client.force_login(user)
    content = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    assert len(content) < settings.REQUEST_BODY_UPLOAD_MAX_BYTES  # under our limit: Django's own check fires

    response = client.post(f"/notebooks/{notebook.id}/sources/text/", {"title": "t", "content": content})

    assert_too_large(response.status_code, response.content)
    assert not Source.objects.exists()


# Bodies over a real socket (ASGI path)
# ------------------------------------------------------------------------------


def _head(method: str, path: str, token: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Token {token}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_exchange(server, head: bytes, chunks, *, pause: float = 0.0) -> tuple[int, bytes, int]:
    """Send `head` then `chunks` while reading the answer; (status, body, bytes the server let us send)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    sent = 0

    def send_body() -> None:
        nonlocal sent
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                sent += len(chunk)
                if pause:
                    time.sleep(pause)
        except OSError:
            pass  # the server answered and closed: it stopped reading, which is the point

    sock.sendall(head)
    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        body = response.read()
    finally:
        sender.join(timeout=15)
        sock.close()
    return response.status, body, sent


def server_is_healthy(server) -> bool:
    with urllib.request.urlopen(f"{server.url}/healthz/", timeout=5) as response:
        return response.status == 200


@pytest.mark.django_db(transaction=True)
def test_over_asgi_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    live_server_asgi, session, user_token, settings
):
    head = _head(
        "POST",
        messages_path(session),
        user_token,
        Content_Type="application/json",
        Content_Length=str(settings.REQUEST_BODY_MAX_BYTES + 1),
    )

    status, body, _ = raw_exchange(live_server_asgi, head, [])

    assert_too_large(status, body)
    assert not SessionChatMessage.objects.exists()
    assert server_is_healthy(live_server_asgi)


@pytest.mark.django_db(transaction=True)
def test_over_asgi_a_chunked_body_with_no_length_is_cut_off_at_the_limit(
    live_server_asgi, session, user_token, settings
):
    head = _head(
        "POST", messages_path(session), user_token, Content_Type="application/json", Transfer_Encoding="chunked"
    )
    piece = b"x" * (64 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    chunks = [chunk] * (4 * settings.REQUEST_BODY_MAX_BYTES // len(piece))

    status, body, sent = raw_exchange(live_server_asgi, head, chunks, pause=0.002)

    assert_too_large(status, body)
    assert sent < 4 * settings.REQUEST_BODY_MAX_BYTES  # the server stopped reading long before the end
    assert not SessionChatMessage.objects.exists()
    assert server_is_healthy(live_server_asgi)


@pytest.mark.django_db(transaction=True)
def test_over_asgi_a_length_that_understates_the_body_reads_no_more_than_declared(
    live_server_asgi, session, user_token
):
    declared = b'{"message": "short"}'
    head = _head(
        "POST",
        messages_path(session),
        user_token,
        Content_Type="application/json",
        Content_Length=str(len(declared) - 5),
        Accept="application/json",
    )

    status, body, _ = raw_exchange(live_server_asgi, head, [declared + b"x" * (3 * MIB)])

    # The body Django saw is the declared 15 bytes: broken JSON, a 400; the rest was never a body.
    assert status == 400, body[:300]
    assert not SessionChatMessage.objects.exists()
    assert server_is_healthy(live_server_asgi)


@pytest.mark.django_db(transaction=True)
def test_over_asgi_a_length_that_overstates_the_body_stores_nothing_when_the_client_leaves(
    live_server_asgi, session, user_token
):
    sock = socket.create_connection(("127.0.0.1", live_server_asgi.port), timeout=10)
    sock.sendall(
        _head("POST", messages_path(session), user_token, Content_Type="application/json", Content_Length="5000")
    )
    sock.sendall(b'{"message": "never finished"')
    time.sleep(0.3)
    sock.close()
    time.sleep(0.3)

    assert not SessionChatMessage.objects.exists()
    assert server_is_healthy(live_server_asgi)


# Page sizes, lengths, generations at once, throttles
# ------------------------------------------------------------------------------


def test_every_list_caps_its_page_size(owner_client, user, notebook, session):
    for _ in range(105):
        NotebookFactory(owner=user)
        SourceFactory(notebook=notebook)
        ChatSessionFactory(container=notebook, created_by=user)
    for order in range(1, 106):
        MessageFactory(session=session, message_order=order)
    lists = {
        "/api/v1/notebooks/": "notebooks",
        f"/api/v1/notebooks/{notebook.id}/sources/": "sources",
        sessions_path(notebook): "sessions",
        messages_path(session): "messages",
    }

    for url, key in lists.items():
        body = owner_client.get(url, {"page_size": 100_000}).json()
        items = body[key] if key in body else body["results"]
        assert len(items) == 100, url


def test_a_title_over_its_length_is_refused_on_rename(owner_client, session):
    response = owner_client.patch(
        f"{sessions_path(session.container)}{session.id}/", {"title": "t" * 201}, format="json"
    )

    assert response.status_code == 400
    assert "title" in response.json()


@pytest.mark.django_db(transaction=True)
def test_more_generations_at_once_than_allowed_is_a_429_until_one_ends(
    live_server_asgi, openai_agent, user, user_token, settings
):
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, "MAX_CONCURRENT_GENERATIONS_PER_USER": 2}
    notebook = NotebookFactory(owner=user)
    sessions = [ChatSessionFactory(container=notebook, created_by=user) for _ in range(3)]
    for _ in range(2):
        openai_agent.script(tokens=[f"t{i} " for i in range(15)], delay=0.05)
    headers = {"Authorization": f"Token {user_token}"}

    def send(session):
        url = f"{live_server_asgi.url}{messages_path(session)}"
        return sse_request("POST", url, json_body={"message": "Q"}, headers=headers)

    running = [iter(send(session)) for session in sessions[:2]]
    for stream in running:
        next(stream)  # `start`: both generations are under way
    refused = send(sessions[2])
    refusal = json.loads(refused.body())
    for stream in running:
        assert list(stream)[-1].type == "done"
    openai_agent.script(tokens=["Now", " it", " fits."])
    accepted = list(send(sessions[2]))

    assert refused.status == 429
    assert refusal["code"] == "too_many_generations"
    assert refused.headers["Retry-After"] == "5"  # when to try again, as the throttles' 429s say
    assert accepted[-1].type == "done"


@pytest.fixture
def tight_throttles(monkeypatch):
    # DRF reads the rates into the class when it is imported; the test settings set them very high.
    monkeypatch.setattr(ChatRateThrottle, "THROTTLE_RATES", {"chat_send": "2/min", "chat_create": "2/min"})


def test_opening_sessions_too_fast_is_throttled_per_user_with_a_retry_after(
    tight_throttles, api_client, user, other_user, notebook
):
    api_client.force_authenticate(user)
    statuses = [api_client.post(sessions_path(notebook), {}, format="json").status_code for _ in range(3)]
    throttled = api_client.post(sessions_path(notebook), {}, format="json")
    api_client.force_authenticate(other_user)
    others = api_client.post(sessions_path(NotebookFactory(owner=other_user)), {}, format="json")

    assert statuses == [201, 201, 429]
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert others.status_code == 201
    assert ChatSession.objects.filter(created_by=user).count() == 2


def test_sending_too_fast_is_throttled_before_anything_is_read_or_stored(tight_throttles, owner_client, session):
    url = messages_path(session)

    # The throttle runs before validation: two refused bodies use up the rate, the third is a 429.
    statuses = [owner_client.post(url, {"message": "hi", "sender": "x"}, format="json").status_code for _ in range(3)]

    assert statuses == [400, 400, 429]
    assert not SessionChatMessage.objects.exists()


def test_throttle_counts_live_in_the_shared_cache(tight_throttles, owner_client, user, notebook, settings):
    owner_client.post(sessions_path(notebook), {}, format="json")

    if settings.REDIS_URL:
        import redis

        keys = redis.Redis.from_url(settings.REDIS_URL).keys(f"*throttle_chat_create_{user.pk}:window")
        assert keys, "with REDIS_URL the throttle must count in Redis, shared by every web process"
        assert redis.Redis.from_url(settings.REDIS_URL).zcard(keys[0]) == 1
        assert settings.CACHES["default"]["BACKEND"] == "deepsight.cache.SharedPoolRedisCache"
    else:
        assert len(cache.get(f"throttle_chat_create_{user.pk}") or []) == 1


# Uploads
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../../../etc/cron.d/evil.txt",
        "/etc/passwd.txt",
        "..\\..\\windows\\win.ini.txt",
        "notes\x00.exe.txt",
        "line\nbreak\r\ttab.txt",
        "CON.txt",
        "a" * 400 + ".txt",
        "invoice\u202etxt.exe.txt",
    ],
)
def test_an_upload_name_is_only_a_label_never_a_path(owner_client, notebook, name):
    upload = SimpleUploadedFile(name, b"Harmless text.", content_type="text/plain")

    response = owner_client.post(f"/api/v1/notebooks/{notebook.id}/sources/", {"file": upload}, format="multipart")

    assert response.status_code == 201, response.content[:300]
    source = Source.objects.get(pk=response.json()["id"])
    stored = PurePosixPath(source.file.name)
    assert stored.name == f"{source.id}.txt"
    assert ".." not in stored.parts
    assert not stored.is_absolute()
    assert not any(char in source.title for char in "/\\\x00\n\r\t\u202e")
    assert len(source.title) <= 255


def test_a_text_file_with_a_nul_anywhere_is_refused_as_not_text(owner_client, notebook):
    # Only the first 8 KB were looked at: a NUL after them was a 500 on PostgreSQL (no NUL in text).
    upload = SimpleUploadedFile("late.txt", b"a" * 9000 + b"\x00tail", content_type="text/plain")

    response = owner_client.post(f"/api/v1/notebooks/{notebook.id}/sources/", {"file": upload}, format="multipart")

    assert response.status_code == 400
    assert "not text" in str(response.json())
    assert not Source.objects.exists()
