"""Security settings: the headers every response carries, the CSP the pages keep, production's cookies and HSTS.

`manage.py check --deploy` with production settings is proven clean by
deepsight/tests/test_project.py::test_production_settings_pass_the_deployment_checklist.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from chat_sessions.tests.factories import ChatSessionFactory, NotebookFactory
from deepsight.tests.security.xss import elements

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


def csp(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    directives = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        directives[name] = sources
    return directives


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def notebook(user):
    notebook = NotebookFactory(owner=user)
    ChatSessionFactory(container=notebook, created_by=user)
    return notebook


def pages(notebook) -> list[str]:
    return ["/", f"/notebooks/{notebook.id}/", f"/notebooks/{notebook.id}/delete/"]


def test_web_pages_carry_a_policy_that_allows_no_inline_or_foreign_script(logged_in, notebook):
    for url in [*pages(notebook), "/accounts/login/"]:
        response = logged_in.get(url)
        policy = csp(response)

        assert policy["default-src"] == ["'self'"], url
        assert policy["script-src"] == ["'self'"], url
        assert policy["style-src"] == ["'self'"], url
        assert policy["object-src"] == ["'none'"], url
        assert policy["frame-ancestors"] == ["'none'"], url
        assert policy["base-uri"] == ["'self'"], url
        assert policy["form-action"] == ["'self'"], url


def test_the_admin_and_api_pages_allow_inline_styles_but_never_inline_script(client, staff_user, notebook):
    client.force_login(staff_user)

    for url in ("/admin/", "/api/v1/docs/", f"/api/v1/notebooks/{notebook.id}/"):
        policy = csp(client.get(url, HTTP_ACCEPT="text/html"))
        assert policy["script-src"][0] == "'self'", url
        assert "'unsafe-inline'" not in policy["script-src"], url
        assert "'unsafe-eval'" not in policy["script-src"], url
        assert all(
            source in ("'self'", "'unsafe-hashes'") or source.startswith("'sha256-") for source in policy["script-src"]
        )
        assert "'unsafe-inline'" in policy["style-src"], url


def test_no_page_needs_an_inline_script_or_handler_its_policy_blocks(client, staff_user, user, notebook):
    """What the CSP forbids, no page of ours (or of the libraries we serve) may rely on."""
    anonymous = ["/accounts/login/", "/admin/login/"]
    owner = [*pages(notebook), f"/api/v1/notebooks/{notebook.id}/"]
    staff = ["/admin/", "/admin/chat_sessions/chatsession/", "/admin/notebooks/notebook/", "/api/v1/docs/"]

    checked = []
    for who, urls in ((None, anonymous), (user, owner), (staff_user, staff)):
        browser = Client()
        if who is not None:
            browser.force_login(who)
        for url in urls:
            response = browser.get(url, HTTP_ACCEPT="text/html")
            assert response.status_code == 200, url
            allowed_hashes = (
                set(csp(response)["script-src"]) if "'unsafe-hashes'" in csp(response)["script-src"] else set()
            )
            for tag, attributes in elements(response.content.decode()):
                for name, value in attributes.items():
                    if name.startswith("on"):
                        digest = base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()
                        assert f"'sha256-{digest}'" in allowed_hashes, f"{url}: <{tag} {name}={value!r}> is blocked"
                if tag == "script":
                    runs = attributes.get("type", "").lower() in ("", "module", "text/javascript")
                    assert "src" in attributes or not runs, f"{url}: an inline <script>"
                for name in ("href", "src", "action"):
                    assert not attributes.get(name, "").lower().startswith("javascript:"), f"{url}: <{tag} {name}>"
            checked.append(url)
    assert len(checked) == len(anonymous) + len(owner) + len(staff)


def test_every_response_carries_the_basic_security_headers(logged_in, notebook):
    for url in ["/", "/api/v1/notebooks/", "/healthz/", "/api/v1/schema/", "/no-such-page/"]:
        response = logged_in.get(url)

        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["Referrer-Policy"] == "same-origin", url
        assert response["X-Frame-Options"] == "DENY", url
        assert response["Cross-Origin-Opener-Policy"] == "same-origin", url
        assert response["Cross-Origin-Resource-Policy"] == "same-origin", url
        assert "camera=()" in response["Permissions-Policy"], url
        assert "Content-Security-Policy" in response, url


def test_a_413_carries_the_security_headers_too(logged_in, notebook, settings):
    response = logged_in.post(
        "/api/v1/notebooks/", {"name": "x" * settings.REQUEST_BODY_MAX_BYTES}, content_type="application/json"
    )

    assert response.status_code == 413
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response


@pytest.mark.django_db(transaction=True)
def test_the_asgi_server_sends_the_same_headers(live_server_asgi):
    with urllib.request.urlopen(f"{live_server_asgi.url}/accounts/login/", timeout=10) as response:
        headers = response.headers

    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


def production_settings() -> dict:
    """The settings a production deployment gets from its environment (DEBUG off, nothing else set)."""
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({"
        "name: getattr(s, name) for name in ('DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SESSION_COOKIE_HTTPONLY', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', "
        "'SECURE_SSL_REDIRECT', 'SECURE_CONTENT_TYPE_NOSNIFF', 'SECURE_REFERRER_POLICY', 'X_FRAME_OPTIONS', "
        "'MIDDLEWARE')}))"
    )
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")},
        "DJANGO_SETTINGS_MODULE": "deepsight.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "deepsight.example.com",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_defaults_are_secure_cookies_https_and_a_year_of_hsts():
    prod = production_settings()

    assert prod["DEBUG"] is False
    assert prod["SESSION_COOKIE_SECURE"] is True
    assert prod["CSRF_COOKIE_SECURE"] is True
    assert prod["SESSION_COOKIE_HTTPONLY"] is True
    assert prod["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert prod["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert prod["SECURE_SSL_REDIRECT"] is True
    assert prod["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert prod["SECURE_REFERRER_POLICY"] == "same-origin"
    assert prod["X_FRAME_OPTIONS"] == "DENY"
    assert "deepsight.middleware.SecurityHeadersMiddleware" in prod["MIDDLEWARE"]
    assert "deepsight.middleware.RequestBodyLimitMiddleware" in prod["MIDDLEWARE"]


def test_with_production_security_settings_https_is_enforced_and_cookies_are_secure(settings, user):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 365 * 24 * 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    browser = Client()

    plain = browser.get("/accounts/login/")
    secure = browser.get("/accounts/login/", secure=True)
    logged_in = browser.post(
        "/accounts/login/", {"username": user.username, "password": "correct horse battery staple"}, secure=True
    )

    assert plain.status_code == 301
    assert plain["Location"].startswith("https://")
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert logged_in.status_code == 302
    session_cookie = logged_in.cookies["sessionid"]
    assert session_cookie["secure"]
    assert session_cookie["httponly"]
    assert session_cookie["samesite"] == "Lax"
    assert secure.cookies["csrftoken"]["secure"]
