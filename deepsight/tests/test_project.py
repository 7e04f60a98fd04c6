"""The project shell: deployment files and production settings are right without running them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def compose_file() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_specification():
    schema = json.loads((Path(__file__).parent / "data" / "compose-spec.json").read_text())

    jsonschema.Draft201909Validator(schema).validate(compose_file())


def test_the_compose_schema_check_catches_a_broken_file():
    schema = json.loads((Path(__file__).parent / "data" / "compose-spec.json").read_text())
    broken = compose_file()
    broken["services"]["web"]["healthcheck"]["interval"] = ["not", "a", "duration"]
    broken["services"]["worker"]["restart_policy"] = "always"

    errors = list(jsonschema.Draft201909Validator(schema).iter_errors(broken))

    assert len(errors) >= 2


def test_compose_runs_postgres_redis_web_worker_and_exactly_one_beat_with_health_checks():
    services = compose_file()["services"]

    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis", "web", "worker", "beat"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["web"]["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://")


def test_production_settings_pass_the_deployment_checklist():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deepsight.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "deepsight.example.com",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_openapi_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    schema = yaml.safe_load(target.read_text())
    paths = schema["paths"]
    assert "/api/v1/notebooks/{container_id}/chat/sessions/{session_id}/messages/" in paths
    assert "post" in paths["/api/v1/notebooks/{container_id}/chat/sessions/{session_id}/messages/"]


def test_swagger_ui_is_served_without_a_cdn(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader", password="pw-123456789"))

    page = client.get("/api/v1/docs/").content.decode()

    assert "swagger-ui" in page
    assert "cdn" not in page.lower()
    assert "/static/drf_spectacular_sidecar/" in page


def test_collected_chat_modules_import_their_hashed_siblings(tmp_path, settings):
    settings.STATIC_ROOT = str(tmp_path)
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "deepsight.storage.StaticFilesStorage"}}

    call_command("collectstatic", "--noinput", "-v0")

    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    hashed_chat = (tmp_path / manifest["chat_sessions/chat.js"]).read_text()
    assert f'from "./{Path(manifest["chat_sessions/api.js"]).name}"' in hashed_chat
    assert 'from "./api.js"' not in hashed_chat


def test_api_url_names_do_not_clash_with_page_names():
    from django.urls import reverse

    assert reverse("notebook-list") == "/"
    assert reverse("notebooks_api:notebook-list") == "/api/v1/notebooks/"


def test_every_middleware_runs_async_under_asgi(caplog, settings):
    """A sync-only middleware makes Django send every request through a thread and back."""
    import logging

    from django.core.handlers.asgi import ASGIHandler

    settings.DEBUG = True  # Django logs each adapted middleware in DEBUG only

    with caplog.at_level(logging.DEBUG, logger="django.request"):
        ASGIHandler()

    adapted = [record.getMessage() for record in caplog.records if "adapted" in record.getMessage()]
    assert adapted == []


def test_static_files_are_served_through_the_async_chain(settings):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    settings.WHITENOISE_AUTOREFRESH = settings.WHITENOISE_USE_FINDERS = True  # nothing is collected in tests

    url = f"{settings.STATIC_URL}chat_sessions/chat.js"
    on_disk = (Path(__file__).resolve().parents[2] / "chat_sessions/static/chat_sessions/chat.js").read_bytes()

    response = async_to_sync(AsyncClient().get)(url)
    body = async_to_sync(_joined)(response.streaming_content)
    etag = response["ETag"]
    unchanged = async_to_sync(AsyncClient().get)(url, headers={"If-None-Match": etag})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response.is_async  # else Django reads the whole file in a thread first, and warns
    assert body == on_disk
    assert unchanged.status_code == 304


async def _joined(chunks) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def test_the_security_middleware_check_accepts_subclasses_and_catches_a_missing_one(settings):
    from deepsight.checks import security_middleware_check

    assert security_middleware_check(None) == []

    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if not path.endswith("CsrfViewMiddleware")]

    assert [warning.id for warning in security_middleware_check(None)] == ["deepsight.W003"]


def _middleware_thread_hops(settings, middleware: list[str], **request) -> int:
    """How many times Django's middleware hooks were sent to a thread during one async request."""
    from unittest import mock

    from asgiref.sync import async_to_sync, sync_to_async
    from django.test import AsyncClient
    from django.utils import deprecation

    settings.MIDDLEWARE = middleware
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0])
        return sync_to_async(*args, **kwargs)

    with mock.patch.object(deprecation, "sync_to_async", counting):
        response = async_to_sync(AsyncClient().get)("/no-such-page/", **request)
    assert response.status_code == 404
    return len(calls)


def test_an_async_request_runs_the_middleware_hooks_on_the_event_loop(settings, db):
    stock = [
        path.replace("deepsight.async_middleware.SecurityMiddleware", "django.middleware.security.SecurityMiddleware")
        for path in settings.MIDDLEWARE
    ]

    assert _middleware_thread_hops(settings, list(settings.MIDDLEWARE)) == 0
    assert _middleware_thread_hops(settings, stock) == 2  # Django's own: request and response hooks


def test_a_session_is_saved_in_a_thread_only_when_it_changed(settings, django_user_model):
    from unittest import mock

    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from deepsight.async_middleware import SessionMiddleware

    django_user_model.objects.create_user("alice", password="a long password 1")
    decisions = []
    original = SessionMiddleware.response_may_block

    def spy(self, request, response):
        decisions.append(original(self, request, response))
        return decisions[-1]

    async_client = AsyncClient()
    with mock.patch.object(SessionMiddleware, "response_may_block", spy):
        logged_in = async_to_sync(async_client.post)(
            "/accounts/login/", {"username": "alice", "password": "a long password 1"}
        )
        page = async_to_sync(async_client.get)("/")

    assert (logged_in.status_code, page.status_code) == (302, 200)
    assert decisions == [True, False]  # the login wrote the session (in a thread); the page did not


def test_the_web_process_freezes_its_start_up_heap_and_collects_less_often():
    """Full collections over thousands of open streams stopped the event loop (see deepsight/asgi.py)."""
    probe = "import gc, deepsight.asgi; print(gc.get_threshold(), gc.get_freeze_count() > 10_000)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "deepsight.settings", "WEB_GC_THRESHOLDS": "20000,5,5"}

    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)

    assert out.stdout.split("\n")[-2:] == ["(20000, 5, 5) True", ""]


def test_every_beat_job_names_a_task_the_worker_knows(settings):
    from deepsight.celery import app

    app.loader.import_default_modules()  # what a worker imports at start: every app's tasks.py

    jobs = settings.CELERY_BEAT_SCHEDULE
    assert {job["task"] for job in jobs.values()} <= set(app.tasks)
    assert "notebooks.tasks.agents_outdated_update" in {job["task"] for job in jobs.values()}
