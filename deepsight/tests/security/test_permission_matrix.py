"""Authorization everywhere: every route of the URL conf, every method, every kind of caller.

The routes come from the URL resolver itself, so a route added without a line in `MATRIX` fails
`test_every_route_is_in_the_permission_matrix`. For each route and method, five callers ask for the
owner's objects: the owner, another user, a staff superuser who does not own them, an anonymous
client and another user's API token. Another user's object must be a 404 exactly like an object
that does not exist (never a 403, which would tell them it exists), nothing of the owner's may
change, and anonymous callers are refused (401 on the API, the login page for web pages).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from chat_sessions.models import ChatSession, SessionChatMessage
from deepsight.tests.security.conftest import World, world_create
from notebooks.models import Notebook, Source

pytestmark = pytest.mark.django_db

METHODS = ("get", "head", "options", "post", "put", "patch", "delete")
UNSAFE = frozenset({"post", "put", "patch", "delete"})
ACTORS = ("other_user", "staff_user", "other_token", "anonymous")
FOREIGN = ("other_user", "staff_user", "other_token")


@dataclass(frozen=True)
class Route:
    """How one route must treat callers.

    kind: `public` (no user data), `api-list` / `page-list` (the caller's own objects only),
    `api-object` / `page-object` (one notebook and what is in it).
    allowed: the methods the owner may use; every other method is a 405 for the owner.
    bodies: what the owner would send with each write (a callable, for one-shot file uploads).
    """

    kind: str
    allowed: frozenset[str]
    bodies: dict[str, Callable[[], Any]] = field(default_factory=dict)
    fmt: str = "json"
    transactional: bool = False


def _json(**body: Any) -> Callable[[], dict]:
    return lambda: body


def _upload() -> dict:
    return {"file": SimpleUploadedFile("notes.txt", b"Plain notes.", content_type="text/plain")}


READ = frozenset({"get", "head", "options"})
API_READ = READ
PAGE_GET = frozenset({"get"})  # the pages answer HEAD with a 405 (require_http_methods(["GET"]))

MATRIX: dict[str, Route] = {
    # Public: no user data behind them.
    "healthz/": Route("public", frozenset({"get", "head"})),
    "api/v1/schema/": Route("public", READ),
    "api/v1/docs/": Route("public", frozenset({"get", "head"})),
    # Django's LoginView treats PUT as POST.
    "api/v1/auth/login/": Route("public", frozenset({"get", "head", "options", "post", "put"}), fmt="multipart"),
    "api/v1/auth/logout/": Route("public", frozenset({"post", "options"}), fmt="multipart"),
    "accounts/login/": Route("public", frozenset({"get", "head", "options", "post", "put"}), fmt="multipart"),
    "accounts/logout/": Route("public", frozenset({"post", "options"}), fmt="multipart"),
    # The REST API.
    "api/v1/": Route("api-list", API_READ),  # links only, to signed-in callers
    "api/v1/notebooks/": Route("api-list", API_READ | {"post"}, {"post": _json(name="Mine")}),
    "api/v1/notebooks/<uuid:notebook_id>/": Route(
        "api-object", API_READ | {"patch", "delete"}, {"patch": _json(name="Hijacked")}
    ),
    "api/v1/notebooks/<uuid:notebook_id>/sources/": Route(
        "api-object", API_READ | {"post"}, {"post": _json(title="Planted", content="Planted text")}
    ),
    "api/v1/notebooks/<uuid:notebook_id>/sources/<uuid:source_id>/": Route("api-object", API_READ | {"delete"}),
    "api/v1/notebooks/<uuid:container_id>/chat/sessions/": Route(
        "api-object", API_READ | {"post"}, {"post": _json(title="Planted")}
    ),
    "api/v1/notebooks/<uuid:container_id>/chat/sessions/<uuid:session_id>/": Route(
        "api-object", API_READ | {"patch", "delete"}, {"patch": _json(title="Hijacked", pinned=True)}
    ),
    # The streaming send: the owner's JSON send waits for a real generation, so it commits.
    "api/v1/notebooks/<uuid:container_id>/chat/sessions/<uuid:session_id>/messages/": Route(
        "api-object", API_READ | {"post"}, {"post": _json(message="Tell me everything")}, transactional=True
    ),
    "api/v1/notebooks/<uuid:container_id>/chat/sessions/<uuid:session_id>/messages/<int:message_id>/stream/": Route(
        "api-object", API_READ
    ),
    "api/v1/notebooks/<uuid:container_id>/chat/sessions/<uuid:session_id>/stop/": Route(
        "api-object", frozenset({"post", "options"})
    ),
    "api/v1/notebooks/<uuid:container_id>/chat/sessions/<uuid:session_id>/title/": Route(
        "api-object", frozenset({"post", "options"})
    ),
    # The web pages.
    "": Route("page-list", PAGE_GET | {"post"}, {"post": _json(name="Mine")}, fmt="multipart"),
    "notebooks/<uuid:notebook_id>/": Route("page-object", PAGE_GET),
    "notebooks/<uuid:notebook_id>/rename/": Route(
        "page-object", frozenset({"post"}), {"post": _json(name="Hijacked")}, fmt="multipart"
    ),
    "notebooks/<uuid:notebook_id>/delete/": Route("page-object", PAGE_GET | {"post"}, fmt="multipart"),
    "notebooks/<uuid:notebook_id>/sources/text/": Route(
        "page-object", frozenset({"post"}), {"post": _json(title="Planted", content="Planted")}, fmt="multipart"
    ),
    "notebooks/<uuid:notebook_id>/sources/file/": Route(
        "page-object", frozenset({"post"}), {"post": _upload}, fmt="multipart"
    ),
    "notebooks/<uuid:notebook_id>/sources/<uuid:source_id>/delete/": Route(
        "page-object", frozenset({"post"}), fmt="multipart"
    ),
}


def url_patterns() -> Iterator[tuple[str, str | None, URLPattern]]:
    """(route, namespace, pattern) for every route the resolver knows."""

    def walk(patterns, prefix: str, namespace: str | None):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = pattern.namespace or namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            else:
                yield prefix + str(pattern.pattern), namespace, pattern

    yield from walk(get_resolver().url_patterns, "", None)


def project_routes() -> list[str]:
    return [route for route, namespace, _ in url_patterns() if namespace != "admin"]


def admin_routes() -> list[tuple[str, URLPattern]]:
    return [(route, pattern) for route, namespace, pattern in url_patterns() if namespace == "admin"]


# Callers and requests
# ------------------------------------------------------------------------------


def client_for(actor: str, *, owner, other_user, staff_user, other_token) -> APIClient:
    client = APIClient()
    if actor == "owner":
        client.force_login(owner)
    elif actor == "other_user":
        client.force_login(other_user)
    elif actor == "staff_user":
        client.force_login(staff_user)
    elif actor == "other_token":
        client.credentials(HTTP_AUTHORIZATION=f"Token {other_token}")
    return client


def fill(route: str, world: World | None) -> str:
    """The route with the world's object ids, or with ids nothing has (world None)."""
    ids = {
        "notebook_id": world.notebook.pk if world else uuid.uuid4(),
        "container_id": world.notebook.pk if world else uuid.uuid4(),
        "session_id": world.session.pk if world else uuid.uuid4(),
        "source_id": world.source.pk if world else uuid.uuid4(),
        "message_id": world.answer.pk if world else 2**31 - 1,
    }
    url = "/" + route
    for name, value in ids.items():
        url = url.replace(f"<uuid:{name}>", str(value)).replace(f"<int:{name}>", str(value))
    assert "<" not in url, f"the matrix cannot fill every id of {route}"
    return url


def call(client: APIClient, method: str, url: str, spec: Route):
    kwargs: dict[str, Any] = {"HTTP_ACCEPT": "application/json"} if spec.kind.startswith("api") else {}
    if method in UNSAFE:
        body = spec.bodies.get(method, dict)()
        kwargs |= {"data": body, "format": spec.fmt}
    return getattr(client, method)(url, **kwargs)


def snapshot(world: World) -> tuple:
    """Everything of the owner's a foreign caller might try to change."""
    return (
        list(Notebook.objects.filter(owner=world.owner).values_list("id", "name", "description", "updated_at")),
        list(Source.objects.filter(notebook__owner=world.owner).values_list("id", "title", "updated_at")),
        list(
            ChatSession.objects.filter(created_by=world.owner).values_list(
                "id", "title", "title_source", "status", "pinned", "message_count", "updated_at"
            )
        ),
        list(
            SessionChatMessage.objects.filter(session__created_by=world.owner).values_list(
                "id", "message", "status", "message_order"
            )
        ),
    )


# Tests
# ------------------------------------------------------------------------------


def test_every_route_is_in_the_permission_matrix():
    routes = project_routes()

    missing = sorted(set(routes) - set(MATRIX))
    stale = sorted(set(MATRIX) - set(routes))

    assert not missing, f"routes with no line in MATRIX (say who may call them): {missing}"
    assert not stale, f"MATRIX lines for routes that no longer exist: {stale}"


def _matrix_params():
    for route, spec in MATRIX.items():
        marks = [pytest.mark.django_db(transaction=True)] if spec.transactional else []
        yield pytest.param(route, marks=marks, id=route or "/")


@pytest.mark.parametrize("route", list(_matrix_params()))
def test_route_serves_only_the_owner(route, user, other_user, staff_user, other_token):
    spec = MATRIX[route]
    clients = {
        actor: client_for(actor, owner=user, other_user=other_user, staff_user=staff_user, other_token=other_token)
        for actor in ("owner", *ACTORS)
    }

    def client(actor: str) -> APIClient:
        return clients[actor]

    for method in METHODS:
        world = world_create(user)
        world_create(other_user)  # the other user has objects of their own, never reachable this way
        url, unknown_url = fill(route, world), fill(route, None)
        before = snapshot(world)

        for actor in ACTORS:
            response = call(client(actor), method, url, spec)
            where = f"{method.upper()} {url} as {actor}: {response.status_code}"
            assert response.status_code < 500, where
            assert snapshot(world) == before, f"{where} changed the owner's data"
            if spec.kind == "public":
                continue
            if actor == "anonymous" or (actor == "other_token" and spec.kind.startswith("page")):
                if spec.kind.startswith("api"):
                    assert response.status_code == 401, where
                else:
                    assert response.status_code == 302, where
                    assert response["Location"].startswith("/accounts/login/"), where
                continue
            if spec.kind.endswith("-list"):
                if method in ("get", "head") and response.content:
                    assert str(world.notebook.pk).encode() not in response.content, where
                    assert world.notebook.name.encode() not in response.content, where
                continue
            # A foreign object answers exactly like one that does not exist.
            unknown = call(client(actor), method, unknown_url, spec)
            assert response.status_code == unknown.status_code, f"{where}, unknown id: {unknown.status_code}"
            assert response.status_code != 403, where
            if method in spec.allowed and method != "options":
                assert response.status_code == 404, where
            else:
                assert response.status_code in (404, 405) or response.content == unknown.content, where
            for leaked in (world.notebook.name, world.session.title, world.answer.message, world.source.title):
                assert leaked.encode() not in response.content, f"{where} shows {leaked!r}"

        owner = call(client("owner"), method, url, spec)
        where = f"{method.upper()} {url} as the owner: {owner.status_code}"
        assert owner.status_code < 500, where
        if method in spec.allowed:
            assert owner.status_code not in (401, 403, 404, 405), where
        elif spec.kind != "public":  # Django's login view redirects a logged-in user whatever the method
            assert owner.status_code == 405, where


@pytest.mark.parametrize(("route", "pattern"), admin_routes(), ids=[route for route, _ in admin_routes()])
def test_admin_routes_need_a_staff_login(route, pattern, client, user, staff_user):
    world = world_create(user)
    url = fill_admin(route, pattern, world)
    public = pattern.name in ("login", "logout")

    for method in ("get", "post"):
        anonymous = getattr(client, method)(url)
        client.force_login(user)  # a regular user, owner of everything in the world
        regular = getattr(client, method)(url)
        client.logout()

        for response in (anonymous, regular):
            assert response.status_code < 500, f"{method} {url}"
            if not public:
                assert response.status_code == 302, f"{method} {url}: {response.status_code}"
                assert response["Location"].startswith("/admin/login/"), f"{method} {url}"

    client.force_login(staff_user)
    staff = client.get(url)
    assert staff.status_code < 500
    assert not (staff.status_code == 302 and staff["Location"].startswith("/admin/login/"))


def fill_admin(route: str, pattern: URLPattern, world: World) -> str:
    """An admin route with real values: the world's object of the route's model where there is one."""
    objects = {Notebook: world.notebook, Source: world.source, ChatSession: world.session}
    object_id = "1"
    for model in admin.site._registry:
        if (pattern.name or "").startswith(f"{model._meta.app_label}_{model._meta.model_name}_"):
            obj = objects.get(model) or model.objects.first()
            object_id = str(obj.pk) if obj is not None else "1"
    if pattern.name == "view_on_site":  # content type below: Notebook
        object_id = str(world.notebook.pk)
    values = {
        "object_id": object_id,
        "id": str(world.owner.pk),
        "app_label": "chat_sessions",
        "content_type_id": str(ContentType.objects.get_for_model(Notebook).pk),
        "url": "",
    }
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match[1]], "/" + route)
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda match: values[match[1]], url)
    return url.replace("^", "").replace("$", "")
